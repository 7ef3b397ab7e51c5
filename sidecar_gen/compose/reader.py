"""Our own reader of a compose project, for when `docker compose config` is not available.

It builds the part of compose's resolved model that init and validate use (per service: image,
build, container_name, working_dir, volumes, labels, profiles, depends_on, user, command,
entrypoint, ports, develop), in the shape
`docker compose config --format json` prints it, following compose-go's rules: interpolation
per file, `include` (each included project with its own folder and `.env`), `extends` (same
file or another), override files merged in order (mappings merged, `volumes` by target,
`labels` by key, `!reset` and `!override`), relative paths resolved against the project folder
(an extended or included file's own folder for what it defines), then profiles
(`COMPOSE_PROFILES`) and the project name
(`COMPOSE_PROJECT_NAME`, else `name:`, else the folder's name, normalized).
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar_gen.compose.env import (
    ComposeSetup,
    InterpolationError,
    Lookup,
    interpolate,
    load_dotenv,
    read_bounded,
)
from sidecar_gen.errors import InputError
from sidecar_gen.yamlio import Tagged, bounds_problem, load_plain

MAX_FILES = 64  # include/extends chains of a real project are a handful of files
_PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_KEPT = ("image", "container_name", "working_dir", "user", "command", "entrypoint", "ports",
         "develop")


class _Reset:
    """`!reset`: the value is removed from what earlier files defined."""


RESET = _Reset()


@dataclass(frozen=True)
class _Override:
    """`!override`: the value replaces what earlier files defined instead of merging."""

    value: Any


def normalize_project_name(name: str) -> str:
    """Normalize a folder name like compose: lowercase, keep [a-z0-9_-], no leading '_'/'-'."""
    kept = "".join(c for c in name.lower() if c.isascii() and (c.isalnum() or c in "-_"))
    return kept.lstrip("_-")


# --- one file -----------------------------------------------------------------------------------

def _markers(data: Any) -> Any:
    """Plain data with compose's `!reset` and `!override` turned into markers."""
    if isinstance(data, Tagged):
        if data.tag == "!reset":
            return RESET
        if data.tag == "!override":
            return _Override(_markers(data.value))
        return _markers(data.value)  # other tags: compose reads the value as it is
    if isinstance(data, dict):
        return {str(k): _markers(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_markers(v) for v in data]
    return data


def _interpolated(data: Any, lookup: Lookup, where: str) -> Any:
    if isinstance(data, dict):
        return {k: _interpolated(v, lookup, f"{where}.{k}" if where else k)
                for k, v in data.items()}
    if isinstance(data, list):
        return [_interpolated(v, lookup, where) for v in data]
    if isinstance(data, _Override):
        return _Override(_interpolated(data.value, lookup, where))
    if isinstance(data, str):
        try:
            return interpolate(data, lookup)
        except InterpolationError as exc:
            raise InputError(where, str(exc)) from None
    return data


def check_bounds(files: Iterable[Path]) -> None:
    """Refuse (InputError naming the file) a compose file over our loader's bounds: size,
    nesting, values once aliases are expanded. `docker compose` has none of them: an alias
    bomb in an override file kept `docker compose config` busy for over ten minutes. Files
    that are absent or not YAML are left to compose, which says why."""
    for file in files:
        try:
            text = read_bounded(file)
        except InputError as exc:
            if exc.reason == "no such file" or exc.reason.startswith(
                    ("not UTF-8", "cannot read", "is a directory")):
                continue
            raise
        problem = bounds_problem(text, str(file))
        if problem is not None:
            raise InputError(str(file), f"line {problem.line}: {problem.message} (refused "
                                        "before docker compose reads it)")


def _read_file(file: Path, lookup: Lookup) -> dict[str, Any]:
    loaded = load_plain(read_bounded(file), str(file))
    errors = loaded.findings  # duplicate keys included: compose refuses them too
    if loaded.plain is None or errors:
        first = errors[0] if errors else None
        reason = f"line {first.line}: {first.message}" if first else "cannot read it as YAML"
        raise InputError(str(file), reason)
    doc = _markers(loaded.plain)
    if not isinstance(doc, dict):
        raise InputError(str(file), "a compose file must be a mapping")
    try:
        result = _interpolated(doc, lookup, "")
    except InputError as exc:
        raise InputError(str(file), f"error while interpolating {exc.message}") from None
    return dict(result)


# --- services: canonical form, merging ----------------------------------------------------------

def _absolute(path: str, base: Path, home: str | None) -> str:
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
            return {"type": "bind", "source": _absolute(source, base, home),
                    "target": posixpath.normpath(target)}
        return {"type": "volume", "source": source, "target": posixpath.normpath(target)}
    if isinstance(entry, dict) and entry.get("target"):
        out = {"type": str(entry.get("type", "volume")),
               "target": posixpath.normpath(str(entry["target"]))}
        if entry.get("source"):
            source = str(entry["source"])
            out["source"] = _absolute(source, base, home) if out["type"] == "bind" else source
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
    if isinstance(value, _Override):
        return _Override(_canonical(value.value, key, base, environ))
    if key == "build":
        build = {"context": value} if isinstance(value, str) else dict(value or {})
        context = str(build.get("context") or ".")
        out: dict[str, Any] = {"context": context if is_remote(context)
                               else _absolute(context, base, home)}
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
    if key == "depends_on":
        names = value if isinstance(value, list) else list(value or {})
        return [str(n) for n in names]
    if key == "profiles":
        return [str(p) for p in value or []]
    if key == "develop":  # `docker compose watch`: only where it syncs files to matters here
        raw = value.get("watch") if isinstance(value, dict) else None
        watch = [w for w in raw if isinstance(w, dict) and isinstance(w.get("path"), str)
                 ] if isinstance(raw, list) else []
        return {"watch": [{**w, "path": _absolute(w["path"], base, home)} for w in watch]}
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
        inner = value.value if isinstance(value, _Override) else value
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


def _canonical_service(raw: Any, base: Path, environ: Mapping[str, str],
                       where: str) -> dict[str, Any]:
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
        elif isinstance(value, _Override) or key not in out or out[key] is RESET:
            out[key] = value.value if isinstance(value, _Override) else value
        elif key == "volumes":
            out[key] = _merge_volumes(out[key], value)
        elif key == "labels":
            out[key] = {**out[key], **value}
        elif key == "build":
            args = {**out[key].get("args", {}), **value.get("args", {})}
            out[key] = {**out[key], **value, **({"args": args} if args else {})}
        elif key in ("profiles", "depends_on"):
            out[key] = list(dict.fromkeys([*out[key], *value]))
        else:
            out[key] = value
    return out


def _strip_markers(service: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.value if isinstance(v, _Override) else v) for k, v in service.items()
            if v is not RESET}


# --- a project: files, include, extends ---------------------------------------------------------

@dataclass
class _Context:
    """Where one set of files is loaded: relative paths resolve against `base`."""

    base: Path
    environ: dict[str, str]
    budget: list[int]  # files left to read, shared by the whole project

    def read(self, file: Path) -> dict[str, Any]:
        self.budget[0] -= 1
        if self.budget[0] < 0:
            raise InputError(str(file), f"more than {MAX_FILES} compose files through "
                                        "include/extends")
        return _read_file(file, self.environ.get)


def _extends_base(name: str, spec: dict[str, Any], services: dict[str, Any], file: Path, *,
                  ctx: _Context, chain: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    extends = spec["extends"]
    ref = extends if isinstance(extends, str) else str((extends or {}).get("service", ""))
    other = None if isinstance(extends, str) else (extends or {}).get("file")
    if other:
        ref_file = Path(_absolute(str(other), ctx.base, ctx.environ.get("HOME")))
        doc = ctx.read(ref_file)
        raw = doc.get("services") or {}
        if not isinstance(raw, dict) or ref not in raw:
            raise InputError(str(file), f"cannot extend service {name!r}: service {ref!r} "
                                        f"not found in {other}")
        sub = _Context(ref_file.parent, ctx.environ, ctx.budget)
        pool = {k: _canonical_service(v, sub.base, ctx.environ, f"{ref_file}: services.{k}")
                for k, v in raw.items()}
        return _resolve_extends(ref, pool, ref_file, sub, chain)
    if ref not in services:
        raise InputError(str(file), f"cannot extend service {name!r}: service {ref!r} not found")
    return _resolve_extends(ref, services, file, ctx, chain)


def _resolve_extends(name: str, services: dict[str, Any], file: Path, ctx: _Context,
                     chain: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    spec = services[name]
    if "extends" not in spec:
        return dict(spec)
    link = (str(file), name)
    if link in chain:
        raise InputError(str(file), f"circular extends of service {name!r}")
    base = _extends_base(name, spec, services, file, ctx=ctx, chain=(*chain, link))
    merged = merge_service(base, {k: v for k, v in spec.items() if k != "extends"})
    services[name] = merged
    return merged


def _include(entry: Any, ctx: _Context, into: dict[str, Any], file: Path) -> None:
    if not isinstance(entry, str | dict):
        raise InputError(str(file), "an include entry must be a path or a mapping")
    spec = {"path": entry} if isinstance(entry, str) else dict(entry)
    paths = spec.get("path")
    paths = [paths] if isinstance(paths, str) else paths
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise InputError(str(file), "an include entry names no file")
    home = ctx.environ.get("HOME")
    files = [Path(_absolute(str(p), ctx.base, home)) for p in paths]
    project_dir = spec.get("project_directory")
    base = Path(_absolute(str(project_dir), ctx.base, home)) if project_dir else files[0].parent
    env = dict(ctx.environ)
    env_files = spec.get("env_file")
    env_paths = ([env_files] if isinstance(env_files, str) else list(env_files or [])) or (
        [str(base / ".env")] if (base / ".env").is_file() else [])
    for env_file in env_paths:
        if env_file != "/dev/null":
            for key, value in load_dotenv(Path(_absolute(env_file, ctx.base, home)),
                                          env).items():
                env.setdefault(key, value)
    sub = _Context(base, env, ctx.budget)
    for name, service in _load_files(files, sub)["services"].items():
        if name in into and into[name] != service:
            raise InputError(str(file), f"service {name!r} from include {paths[0]} conflicts "
                                        "with a service of the same name")
        into[name] = service


def _load_files(files: list[Path], ctx: _Context) -> dict[str, Any]:
    """Read `files` in order and merge them: the project model before profiles."""
    model: dict[str, Any] = {"services": {}}
    for file in files:
        doc = ctx.read(file)
        raw = doc.get("services") or {}
        if not isinstance(raw, dict):
            raise InputError(str(file), "'services' must be a mapping")
        included: dict[str, Any] = {}
        include = doc.get("include") or []
        if not isinstance(include, list):
            raise InputError(str(file), "'include' must be a list")
        for entry in include:
            _include(entry, ctx, included, file)
        services = {str(k): _canonical_service(v, ctx.base, ctx.environ, f"{file}: services.{k}")
                    for k, v in raw.items()}
        for name in list(services):
            _resolve_extends(name, services, file, ctx)
        merged = model["services"]
        for name, service in {**included, **services}.items():
            merged[name] = merge_service(merged.get(name, {}), service)
        if doc.get("name") is not None:
            model["name"] = str(doc["name"])
    model["services"] = {k: _strip_markers(v) for k, v in model["services"].items()}
    return model


def _active(services: dict[str, Any], profiles: list[str]) -> dict[str, Any]:
    # As `docker compose config` prints it: a service whose profiles are all inactive is left
    # out, even when an active one depends on it.
    return {name: spec for name, spec in services.items()
            if not spec.get("profiles") or "*" in profiles
            or set(spec["profiles"]) & set(profiles)}


def project_name(setup: ComposeSetup, declared: str | None) -> tuple[str, str]:
    """(name, where it came from: "environment", "name" or "folder"), like compose decides."""
    for name, source in ((setup.environ.get("COMPOSE_PROJECT_NAME"), "environment"),
                         (declared, "name")):
        if name:
            if not _PROJECT_NAME.match(name):
                raise InputError(name, "invalid project name: must consist only of lowercase "
                                       "alphanumeric characters, hyphens and underscores, and "
                                       "start with a letter or digit")
            return name, source
    return normalize_project_name(setup.working_dir.name), "folder"


def load_model(setup: ComposeSetup) -> dict[str, Any]:
    """The project model (`name`, `services`) as `docker compose config` would resolve it."""
    ctx = _Context(setup.working_dir, setup.environ, [MAX_FILES])
    model = _load_files(list(setup.files), ctx)
    # Like compose: an unset COMPOSE_PROFILES is the one empty profile, which a service with
    # `profiles: [""]` (an unset variable in its list) has.
    profiles = [p.strip() for p in setup.environ.get("COMPOSE_PROFILES", "").split(",")]
    name, _ = project_name(setup, model.get("name"))
    return {"name": name, "services": _active(model["services"], profiles),
            "declared_name": model.get("name")}
