"""Reading the user's compose project: services, container names, bind mounts.

Prefers `docker compose config --format json` (it resolves interpolation, extends, profiles)
and falls back to reading the YAML directly, with the usual `${VAR:-default}` interpolation.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sidecar_gen.errors import InputError
from sidecar_gen.fsutil import read_text_file
from sidecar_gen.yamlio import load_text

COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
_INTERPOLATION = re.compile(r"\$(?:\$|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class ProjectNames:
    """Names known from the compose project, for the unknown-container rule."""

    services: frozenset[str] = frozenset()
    containers: frozenset[str] = frozenset()
    source: str = ""


@dataclass(frozen=True)
class Bind:
    """A bind mount: absolute host path -> path in the container."""

    source: str
    target: str


@dataclass(frozen=True)
class Service:
    """What init and validate need to know about one compose service."""

    name: str
    image: str | None
    container_name: str
    binds: tuple[Bind, ...] = ()
    working_dir: str | None = None
    has_build: bool = False


@dataclass(frozen=True)
class ComposeProject:
    """A compose project as read from its file."""

    name: str
    directory: Path
    file: Path
    services: dict[str, Service] = field(default_factory=dict)
    networks: tuple[str, ...] = ()
    via_cli: bool = False

    def names(self) -> ProjectNames:
        """Service and container names, for validation."""
        return ProjectNames(
            services=frozenset(self.services),
            containers=frozenset(s.container_name for s in self.services.values()),
            source=self.file.name,
        )


def normalize_project_name(name: str) -> str:
    """Normalize like compose: lowercase, keep [a-z0-9_-], strip leading '_' and '-'."""
    kept = "".join(c for c in name.lower() if c.isascii() and (c.isalnum() or c in "-_"))
    return kept.lstrip("_-")


def find_compose_file(directory: Path) -> Path | None:
    """The compose file compose itself would pick in `directory`, if any."""
    for name in COMPOSE_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose-style `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}` and `$$`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        expr = match.group(1) if match.group(1) is not None else match.group(2)
        for sep in (":-", "-", ":?", "?", ":+", "+"):
            if sep in expr:
                name, _, default = expr.partition(sep)
                current = env.get(name)
                if sep == ":-":
                    return current if current else default
                if sep == "-":
                    return current if current is not None else default
                if sep in (":+", "+"):
                    return default if (current if sep == ":+" else current is not None) else ""
                return current or ""
        return env.get(expr, "")

    return _INTERPOLATION.sub(replace, value)


def _interpolate_tree(data: Any, env: Mapping[str, str]) -> Any:
    if isinstance(data, dict):
        return {k: _interpolate_tree(v, env) for k, v in data.items()}
    if isinstance(data, list):
        return [_interpolate_tree(v, env) for v in data]
    if isinstance(data, str):
        return interpolate(data, env)
    return data


def _parse_short_volume(spec: str) -> tuple[str, str] | None:
    # "SRC:TARGET[:MODE]"; a bare "TARGET" is an anonymous volume.
    parts = spec.split(":")
    if len(parts) < 2:
        return None
    return parts[0], parts[1]


def _binds(raw_volumes: Any, base: Path) -> tuple[Bind, ...]:
    binds: list[Bind] = []
    for entry in raw_volumes or []:
        source: str | None = None
        target: str | None = None
        if isinstance(entry, str):
            parsed = _parse_short_volume(entry)
            if parsed:
                source, target = parsed
                if not source.startswith((".", "/", "~")):
                    continue  # a named volume
        elif isinstance(entry, dict) and entry.get("type", "bind") == "bind":
            source, target = entry.get("source"), entry.get("target")
        if not source or not target:
            continue
        if source.startswith("~"):
            source = os.path.expanduser(source)
        resolved = (base / source).resolve() if not source.startswith("/") else Path(source)
        binds.append(Bind(str(resolved), posixpath.normpath(str(target))))
    return tuple(binds)


def _service(name: str, spec: Mapping[str, Any], project: str, base: Path) -> Service:
    image = spec.get("image")
    container_name = spec.get("container_name") or f"{project}-{name}-1"
    return Service(
        name=name,
        image=str(image) if image else None,
        container_name=str(container_name),
        binds=_binds(spec.get("volumes"), base),
        working_dir=spec.get("working_dir"),
        has_build="build" in spec,
    )


def _project_from_doc(doc: Mapping[str, Any], file: Path, *, via_cli: bool) -> ComposeProject:
    directory = file.parent.resolve()
    env_name = os.environ.get("COMPOSE_PROJECT_NAME")
    name = normalize_project_name(str(doc.get("name") or env_name or directory.name))
    services = doc.get("services") or {}
    if not isinstance(services, dict):
        raise InputError(str(file), "'services' must be a mapping")
    parsed = {
        str(svc): _service(str(svc), spec if isinstance(spec, dict) else {}, name, directory)
        for svc, spec in services.items()
    }
    networks = tuple(str(n) for n in (doc.get("networks") or {}))
    return ComposeProject(name=name, directory=directory, file=file.resolve(),
                          services=parsed, networks=networks, via_cli=via_cli)


def _dotenv(directory: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    env_file = directory / ".env"
    try:
        lines = env_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return values
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


def read_compose_yaml(file: Path) -> ComposeProject:
    """Read a compose file directly (no compose CLI), with env interpolation."""
    text = read_text_file(file)
    loaded = load_text(text, str(file))
    if loaded.plain is None or not isinstance(loaded.plain, dict):
        reason = loaded.findings[0].message if loaded.findings else "not a mapping"
        line = loaded.findings[0].line if loaded.findings else 1
        raise InputError(str(file), f"line {line}: {reason}")
    env = {**_dotenv(file.parent), **os.environ}
    doc = _interpolate_tree(loaded.plain, env)
    return _project_from_doc(doc, file, via_cli=False)


def read_compose_cli(file: Path, timeout: float = 30.0) -> ComposeProject | None:
    """Ask `docker compose config` for the resolved model; None when the CLI is unavailable."""
    if shutil.which("docker") is None:
        return None
    try:
        result = subprocess.run(
            ["docker", "compose", "-f", str(file), "config", "--format", "json"],
            capture_output=True, text=True, timeout=timeout, cwd=file.parent, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    try:
        doc = json.loads(result.stdout)
    except json.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    return _project_from_doc(doc, file, via_cli=True)


def load_project(file: Path, *, prefer_cli: bool = True) -> ComposeProject:
    """Read a compose project, through the compose CLI when asked and available."""
    if not file.is_file():
        raise InputError(str(file), "no such compose file")
    if prefer_cli:
        project = read_compose_cli(file)
        if project is not None:
            return project
    return read_compose_yaml(file)
