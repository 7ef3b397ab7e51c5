"""The files that decide how a compose project starts, as compose finds them in a folder.

Compose's own answer (`docker compose config`) is the model `sidecar up` compares; this module
only finds the *files* behind it, so a refusal can name each one: `.env`, `COMPOSE_FILE` (from
the environment, else `.env`, split on `COMPOSE_PATH_SEPARATOR`), else the default file and
override names, then, recursively, `include:` entries, `extends: {file}` and `env_file:`.
Every default name is listed even when absent, so a new `compose.override.yaml` shows up as a
new file. A file this search misses still changes the model, and the model decides.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar_gen.errors import InputError
from sidecar_gen.fsutil import open_regular

DOTENV = ".env"
MAX_FILES = 200
MAX_READ = 1024 * 1024


def _read(path: Path) -> str | None:
    """Up to MAX_READ bytes of a regular file as text; None when absent, a directory or over
    the limit; `InputError` for a FIFO, a device or a socket (`fsutil.open_regular`)."""
    try:
        fd = open_regular(path)
    except InputError as exc:
        if exc.reason in ("no such file", "is a directory, not a file") \
                or exc.reason.startswith("cannot read"):
            return None
        raise
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_READ + 1)
    if len(data) > MAX_READ:
        return None
    return data.decode("utf-8", "replace")


def project_env(directory: Path, env: Mapping[str, str]) -> dict[str, str]:
    """The variables compose interpolates with: the environment, then `.env` for the names it
    does not set (a `.env` compose would refuse counts as empty: compose says why)."""
    # Imported here (with the YAML parser below): the daily `up` that reuses its last
    # resolution (`trust.resolved`) never looks for the files again.
    from sidecar_gen.compose.env import parse_dotenv, project_environ

    variables = project_environ(directory, env)
    text = _read(directory / DOTENV)
    if text is not None:
        try:
            for key, value in parse_dotenv(text, variables).items():
                variables.setdefault(key, value)
        except ValueError:
            pass
    return variables


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _references(doc: Any, variables: Mapping[str, str]) -> Iterable[tuple[str, bool]]:
    """(path, is_compose_file) for every file a compose document names."""
    from sidecar_gen.compose.env import InterpolationError, interpolate

    def text(value: Any) -> str | None:
        if not isinstance(value, str):
            return None
        try:
            return interpolate(value, variables.get)
        except InterpolationError:
            return None  # compose refuses it and says why

    if not isinstance(doc, dict):
        return
    for entry in _as_list(doc.get("include")):
        if isinstance(entry, dict):
            for path in _as_list(entry.get("path")):
                if (found := text(path)) is not None:
                    yield found, True
            for path in _as_list(entry.get("env_file")):
                if (found := text(path)) is not None:
                    yield found, False
        elif (found := text(entry)) is not None:
            yield found, True
    services = doc.get("services")
    for spec in (services.values() if isinstance(services, dict) else ()):
        if not isinstance(spec, dict):
            continue
        extends = spec.get("extends")
        if isinstance(extends, dict) and (found := text(extends.get("file"))) is not None:
            yield found, True
        for entry in _as_list(spec.get("env_file")):
            path = entry.get("path") if isinstance(entry, dict) else entry
            if (found := text(path)) is not None:
                yield found, False


def _top_files(directory: Path, variables: Mapping[str, str]) -> list[Path]:
    from sidecar_gen.compose.env import DEFAULT_FILES, OVERRIDE_FILES

    chosen = variables.get("COMPOSE_FILE")
    if chosen:
        separator = variables.get("COMPOSE_PATH_SEPARATOR") or os.pathsep
        return [directory / part for part in chosen.split(separator) if part]
    return [directory / name for name in (*DEFAULT_FILES, *OVERRIDE_FILES)]


@dataclass(frozen=True)
class Input:
    """One file compose reads: `kind` is "compose" (a compose file) or "env" (`KEY=VALUE`
    lines: `.env` and `env_file:` entries, whose values are masked in the record)."""

    path: Path
    kind: str


def compose_inputs(directory: Path, env: Mapping[str, str] | None = None) -> list[Input]:
    """Every file compose would read for the project in `directory` (absolute paths, absent
    default names included), `.env` first."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    from sidecar_gen.compose.env import DEFAULT_FILES, OVERRIDE_FILES

    environ = os.environ if env is None else env
    variables = project_env(directory, environ)
    found: dict[Path, str] = {directory / DOTENV: "env"}
    queue = [(path, "compose") for path in _top_files(directory, variables)]
    if variables.get("COMPOSE_FILE"):
        # Chosen by COMPOSE_FILE: the default names are listed too (absent or unused).
        queue += [(directory / name, "compose") for name in (*DEFAULT_FILES, *OVERRIDE_FILES)]
    while queue and len(found) < MAX_FILES:
        path, kind = queue.pop(0)
        path = Path(os.path.normpath(path))
        if path in found:
            continue
        found[path] = kind
        if kind != "compose":
            continue
        text = _read(path)
        if text is None:
            continue
        try:
            doc = YAML(typ="safe", pure=True).load(text)
        except (YAMLError, ValueError, RecursionError):
            continue  # compose itself will say what is wrong with it (or the model will)
        for ref, is_compose in _references(doc, variables):
            ref_path = Path(os.path.expanduser(ref))
            queue.append((ref_path if ref_path.is_absolute() else path.parent / ref_path,
                          "compose" if is_compose else "env"))
    return [Input(path, kind) for path, kind in found.items()]


def existing_compose_files(directory: Path, env: Mapping[str, str] | None = None) -> list[Path]:
    """The compose inputs (and `.env`) that exist: the read-only mounts of the claude service."""
    return [i.path for i in compose_inputs(directory, env) if i.path.is_file()]
