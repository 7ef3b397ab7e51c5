"""A compose service in canonical form, and how override files merge into it.

The shape `docker compose config --format json` prints (per service: image, build,
container_name, working_dir, volumes, labels, profiles, depends_on with its conditions, user,
command, entrypoint, ports, develop, restart), following compose-go's rules: relative paths
resolved against the folder of the file that defines them, short syntaxes expanded, mappings
merged, `volumes` by target, `labels` by key, `!reset` and `!override` (`RESET`, `Override`)
honoured. Pure: `reader` reads the files.
"""

from __future__ import annotations

import os
import posixpath
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar_gen.errors import InputError

_KEPT = ("image", "container_name", "working_dir", "user", "command", "entrypoint", "ports",
         "develop", "restart")


class _Reset:
    """`!reset`: the value is removed from what earlier files defined."""


RESET = _Reset()


@dataclass(frozen=True)
class Override:
    """`!override`: the value replaces what earlier files defined instead of merging."""

    value: Any


def absolute_path(path: str, base: Path, home: str | None) -> str:
    """`path` as compose resolves it: `~` is the home folder, relative is under `base`."""
    if path == "~" or path.startswith("~/"):
        path = (home or os.path.expanduser("~")) + path[1:]
    joined = path if path.startswith("/") else os.path.join(base, path)
    return posixpath.normpath(joined)


def is_remote(context: str) -> bool:
    """A build context compose fetches (git or URL) rather than a folder."""
    return "://" in context or context.startswith(("git@", "github.com/"))


def _key_values(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    if isinstance(value, list):
        pairs = (str(item).partition("=") for item in value)
        return {key: val for key, _, val in pairs}
    return {}


def _volume(entry: Any, base: Path, home: str | None) -> dict[str, Any] | None:
    if isinstance(entry, str):
        parts = entry.split(":")
        if len(parts) == 1:
            return {"type": "volume", "target": posixpath.normpath(parts[0])}
        source, target = parts[0], parts[1]
        if source.startswith((".", "/", "~")):
            return {"type": "bind", "source": absolute_path(source, base, home),
                    "target": posixpath.normpath(target)}
        return {"type": "volume", "source": source, "target": posixpath.normpath(target)}
    if isinstance(entry, dict) and entry.get("target"):
        out = {"type": str(entry.get("type", "volume")),
               "target": posixpath.normpath(str(entry["target"]))}
        if entry.get("source"):
            source = str(entry["source"])
            out["source"] = absolute_path(source, base, home) if out["type"] == "bind" else source
        return out
    return None


def _build_args(value: Any, environ: Mapping[str, str]) -> dict[str, str]:
    # An argument without a value takes the environment's (compose leaves it out otherwise).
    pairs = value.items() if isinstance(value, dict) else (
        (item.partition("=")[0], item.partition("=")[2] if "=" in item else None)
        for item in map(str, value or []))
    out = {}
    for key, val in pairs:
        if val is None:
            if key in environ:
                out[str(key)] = environ[key]
        else:
            out[str(key)] = str(val)
    return out


def _canonical(value: Any, key: str, base: Path, environ: Mapping[str, str]) -> Any:
    """One service field in the form `docker compose config` prints it."""
    home = environ.get("HOME")
    if value is RESET:
        return value
    if isinstance(value, Override):
        return Override(_canonical(value.value, key, base, environ))
    if key == "build":
        build = {"context": value} if isinstance(value, str) else dict(value or {})
        context = str(build.get("context") or ".")
        out: dict[str, Any] = {"context": context if is_remote(context)
                               else absolute_path(context, base, home)}
        for name in ("dockerfile", "dockerfile_inline", "target"):
            if build.get(name) is not None:
                out[name] = str(build[name])
        if build.get("args") is not None:
            out["args"] = _build_args(build["args"], environ)
        return out
    if key == "volumes":
        volumes = [_volume(v, base, home) for v in value or []]
        return [v for v in volumes if v is not None]
    if key == "labels":
        return _key_values(value)
    if key == "depends_on":  # name -> the condition compose waits for (as `config` prints it)
        if isinstance(value, list):
            return {str(n): {"condition": "service_started"} for n in value}
        return {str(n): {"condition": str(spec.get("condition") or "service_started")
                         if isinstance(spec, dict) else "service_started"}
                for n, spec in (value or {}).items()}
    if key == "profiles":
        return [str(p) for p in value or []]
    if key == "develop":  # `docker compose watch`: only where it syncs files to matters here
        raw = value.get("watch") if isinstance(value, dict) else None
        watch = [w for w in raw if isinstance(w, dict) and isinstance(w.get("path"), str)
                 ] if isinstance(raw, list) else []
        return {"watch": [{**w, "path": absolute_path(w["path"], base, home)} for w in watch]}
    if key in ("command", "entrypoint") and isinstance(value, str):
        try:  # compose splits the string form like a shell would, without running one
            return shlex.split(value)
        except ValueError:
            return value.split()
    return value


# The shapes compose accepts for the fields read here; anything else is refused, as compose
# refuses it (other fields are left to compose).
_SHAPES: dict[str, tuple[type, ...]] = {
    "image": (str,), "container_name": (str,), "working_dir": (str,), "user": (str, int),
    "build": (str, dict), "volumes": (list,), "labels": (dict, list),
    "depends_on": (list, dict), "profiles": (list,), "extends": (str, dict),
    "command": (str, list), "entrypoint": (str, list), "ports": (list,), "develop": (dict,),
    "restart": (str,),
}
_BUILD_SHAPES: dict[str, tuple[type, ...]] = {
    "context": (str,), "dockerfile": (str,), "dockerfile_inline": (str,), "target": (str,),
    "args": (dict, list),
}
_KINDS = {str: "a string", int: "a number", dict: "a mapping", list: "a list"}


def _check_shapes(spec: dict[str, Any], shapes: dict[str, tuple[type, ...]], where: str) -> None:
    for key, kinds in shapes.items():
        value = spec.get(key)
        if value is None or value is RESET:
            continue
        inner = value.value if isinstance(value, Override) else value
        if not isinstance(inner, kinds) or isinstance(inner, bool):
            wanted = " or ".join(_KINDS[k] for k in kinds)
            raise InputError(where, f"{key} must be {wanted}")
    for key in ("volumes", "profiles"):
        items = spec.get(key)
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, str | dict) or (key == "profiles" and
                                                   not isinstance(item, str)):
                raise InputError(where, f"{key} entries must be strings"
                                 + (" or mappings" if key == "volumes" else ""))
    extends = spec.get("extends")
    if isinstance(extends, dict) and not isinstance(extends.get("service"), str):
        raise InputError(where, "extends.service must be a string")
    build = spec.get("build")
    if isinstance(build, dict):
        _check_shapes(build, _BUILD_SHAPES, f"{where}.build")


def canonical_service(raw: Any, base: Path, environ: Mapping[str, str],
                      where: str) -> dict[str, Any]:
    """One service of one file in canonical form (`where` names it in errors)."""
    if raw is not None and not isinstance(raw, dict):
        raise InputError(where, "a service must be a mapping")
    spec = raw or {}
    _check_shapes(spec, _SHAPES, where)
    develop = spec.get("develop")
    if isinstance(develop, dict) and not isinstance(develop.get("watch") or [], list | _Reset):
        raise InputError(where, "develop.watch must be a list")
    out = {key: _canonical(spec[key], key, base, environ)
           for key in (*_KEPT, "build", "volumes", "labels", "depends_on", "profiles")
           if key in spec}
    if "extends" in spec:
        out["extends"] = spec["extends"]
    return out


def _merge_volumes(base: list[Any], over: list[Any]) -> list[Any]:
    merged = list(base)
    for volume in over:
        at = next((i for i, v in enumerate(merged) if v.get("target") == volume.get("target")),
                  None)
        if at is None:
            merged.append(volume)
        else:
            merged[at] = volume
    return merged


def merge_service(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` applied on `base` the way compose merges a later file (or an extending service)."""
    out = dict(base)
    for key, value in over.items():
        if value is RESET:
            out.pop(key, None)
        elif isinstance(value, Override) or key not in out or out[key] is RESET:
            out[key] = value.value if isinstance(value, Override) else value
        elif key == "volumes":
            out[key] = _merge_volumes(out[key], value)
        elif key == "labels":
            out[key] = {**out[key], **value}
        elif key == "build":
            args = {**out[key].get("args", {}), **value.get("args", {})}
            out[key] = {**out[key], **value, **({"args": args} if args else {})}
        elif key == "profiles":
            out[key] = list(dict.fromkeys([*out[key], *value]))
        elif key == "depends_on":
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def strip_markers(service: dict[str, Any]) -> dict[str, Any]:
    """A merged service without `!reset` and `!override` markers: the values compose keeps."""
    return {k: (v.value if isinstance(v, Override) else v) for k, v in service.items()
            if v is not RESET}
