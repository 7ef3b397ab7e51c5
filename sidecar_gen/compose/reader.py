"""Our own reader of a compose project, for when `docker compose config` is not available.

It builds the part of compose's resolved model that init and validate use (per service: image,
build, container_name, working_dir, volumes, labels, profiles, depends_on and its conditions,
user, command, entrypoint, ports, develop, restart), in the shape
`docker compose config --format json` prints it, following compose-go's rules: interpolation
per file, `include` (each included project with its own folder and `.env`), `extends` (same
file or another), override files merged in order (mappings merged, `volumes` by target,
`labels` by key, `!reset` and `!override`), relative paths resolved against the project folder
(an extended or included file's own folder for what it defines), then profiles
(`COMPOSE_PROFILES`) and the project name
(`COMPOSE_PROJECT_NAME`, else `name:`, else the folder's name, normalized).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
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
from sidecar_gen.compose.services import (
    RESET,
    Override,
    absolute_path,
    canonical_service,
    merge_service,
    strip_markers,
)
from sidecar_gen.errors import InputError
from sidecar_gen.yamlio import Tagged, bounds_problem, load_plain

MAX_FILES = 64  # include/extends chains of a real project are a handful of files
_PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

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
            return Override(_markers(data.value))
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
    if isinstance(data, Override):
        return Override(_interpolated(data.value, lookup, where))
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


# --- a project: files, include, extends ---------------------------------------------------------

@dataclass
class _LoadContext:
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
                  ctx: _LoadContext, chain: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    extends = spec["extends"]
    ref = extends if isinstance(extends, str) else str((extends or {}).get("service", ""))
    other = None if isinstance(extends, str) else (extends or {}).get("file")
    if other:
        ref_file = Path(absolute_path(str(other), ctx.base, ctx.environ.get("HOME")))
        doc = ctx.read(ref_file)
        raw = doc.get("services") or {}
        if not isinstance(raw, dict) or ref not in raw:
            raise InputError(str(file), f"cannot extend service {name!r}: service {ref!r} "
                                        f"not found in {other}")
        sub = _LoadContext(ref_file.parent, ctx.environ, ctx.budget)
        pool = {k: canonical_service(v, sub.base, ctx.environ, f"{ref_file}: services.{k}")
                for k, v in raw.items()}
        return _resolve_extends(ref, pool, ref_file, sub, chain)
    if ref not in services:
        raise InputError(str(file), f"cannot extend service {name!r}: service {ref!r} not found")
    return _resolve_extends(ref, services, file, ctx, chain)


def _resolve_extends(name: str, services: dict[str, Any], file: Path, ctx: _LoadContext,
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


def _include(entry: Any, ctx: _LoadContext, into: dict[str, Any], file: Path) -> None:
    if not isinstance(entry, str | dict):
        raise InputError(str(file), "an include entry must be a path or a mapping")
    spec = {"path": entry} if isinstance(entry, str) else dict(entry)
    paths = spec.get("path")
    paths = [paths] if isinstance(paths, str) else paths
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise InputError(str(file), "an include entry names no file")
    home = ctx.environ.get("HOME")
    files = [Path(absolute_path(str(p), ctx.base, home)) for p in paths]
    project_dir = spec.get("project_directory")
    base = Path(absolute_path(str(project_dir), ctx.base, home)) if project_dir else files[0].parent
    env = dict(ctx.environ)
    env_files = spec.get("env_file")
    env_paths = ([env_files] if isinstance(env_files, str) else list(env_files or [])) or (
        [str(base / ".env")] if (base / ".env").is_file() else [])
    for env_file in env_paths:
        if env_file != "/dev/null":
            for key, value in load_dotenv(Path(absolute_path(env_file, ctx.base, home)),
                                          env).items():
                env.setdefault(key, value)
    sub = _LoadContext(base, env, ctx.budget)
    for name, service in _load_files(files, sub)["services"].items():
        if name in into and into[name] != service:
            raise InputError(str(file), f"service {name!r} from include {paths[0]} conflicts "
                                        "with a service of the same name")
        into[name] = service


def _load_files(files: list[Path], ctx: _LoadContext) -> dict[str, Any]:
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
        services = {str(k): canonical_service(v, ctx.base, ctx.environ, f"{file}: services.{k}")
                    for k, v in raw.items()}
        for name in list(services):
            _resolve_extends(name, services, file, ctx)
        merged = model["services"]
        for name, service in {**included, **services}.items():
            merged[name] = merge_service(merged.get(name, {}), service)
        if doc.get("name") is not None:
            model["name"] = str(doc["name"])
    model["services"] = {k: strip_markers(v) for k, v in model["services"].items()}
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
    ctx = _LoadContext(setup.working_dir, setup.environ, [MAX_FILES])
    model = _load_files(list(setup.files), ctx)
    # Like compose: an unset COMPOSE_PROFILES is the one empty profile, which a service with
    # `profiles: [""]` (an unset variable in its list) has.
    profiles = [p.strip() for p in setup.environ.get("COMPOSE_PROFILES", "").split(",")]
    name, _ = project_name(setup, model.get("name"))
    return {"name": name, "services": _active(model["services"], profiles),
            "declared_name": model.get("name")}
