"""The last verified resolution of a project, reused by `sidecar up` while nothing it came from
changed: the daily `up` then skips `docker compose config` and `docker compose version`.

The cache holds compose's exact output for the project (`ResolvedModel.text`) under a keyed
digest (`ApprovalStore.digest`) of everything that output depends on:

- every input file as `sidecar up` reads it anyway (`snapshot.input_files`: compose files,
  `.env`, `env_file:`, `include:`, `extends:`, the policy), the git files, and the files the
  cached model names that compose read to make it (each `env_file:` and `label_file:`) or that
  are built (`build:` Dockerfiles);
- the environment compose reads: every `COMPOSE_*`, `DOCKER_*`, `BUILDKIT_*` and `BUILDX_*`
  variable, `HOME` and `PATH`, and every variable whose name appears as a word in one of those
  files (interpolation, `environment:` entries passed through, build arguments);
- the docker CLI and compose plugin binaries (path, size, modification time, inode), the
  sidecar version, the folder, and the approval itself (a new `sidecar trust` misses).

Only a model that matched its approval is stored, and a hit is compared with the approval like
a fresh one (`compare`), with the links, Dockerfiles and git files read now: the cache can only
ever start what was approved. Any difference in the key is a miss, and `up` resolves again.

The model holds the environment's values, secrets included, so the file lives where the
approval and `sidecar auth`'s credentials do (the state folder: 0700, the file 0600, outside
every container), and it is removed on a miss.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar_gen import __version__
from sidecar_gen.compose.cli import ResolvedModel
from sidecar_gen.runtime import atomic
from sidecar_gen.trust.inputs import Input
from sidecar_gen.trust.record import Approval, ApprovalStore, FileState

CACHE_NAME = "resolved.json"
FORMAT = 2
ENV_PREFIXES = ("COMPOSE_", "DOCKER_", "BUILDKIT_", "BUILDX_")
ENV_ALWAYS = ("HOME", "PATH")
PLUGIN_DIRS = ("/usr/local/lib/docker/cli-plugins", "/usr/local/libexec/docker/cli-plugins",
               "/usr/lib/docker/cli-plugins", "/usr/libexec/docker/cli-plugins")
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def model_files(doc: Mapping[str, Any]) -> list[Path]:
    """The files a resolved model names that compose read to make it (`env_file:`,
    `label_file:`; the Dockerfiles are `snapshot.dockerfiles`)."""
    found: list[Path] = []
    services = doc.get("services")
    for spec in (services.values() if isinstance(services, dict) else ()):
        if not isinstance(spec, dict):
            continue
        for key in ("env_file", "label_file"):
            entries = spec.get(key)
            for entry in (entries if isinstance(entries, list) else [entries]):
                path = entry.get("path") if isinstance(entry, dict) else entry
                if isinstance(path, str) and os.path.isabs(path):
                    found.append(Path(path))
    return sorted(set(found))


def _binaries(env: Mapping[str, str]) -> list[str]:
    """Where the docker CLI and its compose plugin are, and which version of each file: an
    upgrade of compose may resolve the same files differently."""
    candidates: list[str] = []
    docker = shutil.which("docker", path=env.get("PATH"))
    if docker:
        candidates.append(os.path.realpath(docker))
    config = env.get("DOCKER_CONFIG") or os.path.join(env.get("HOME", "/"), ".docker")
    for folder in (os.path.join(config, "cli-plugins"), *PLUGIN_DIRS):
        candidates.append(os.path.join(folder, "docker-compose"))
    out = []
    for path in candidates:
        try:
            info = os.stat(path)
        except OSError:
            out.append(f"{path} -")
            continue
        out.append(f"{path} {info.st_size} {info.st_mtime_ns} {info.st_ino}")
    return out


def _words(states: Iterable[FileState]) -> set[str] | None:
    """Every word of the files' texts; None when a file exists whose text was not kept
    (binary, or over the size kept for diffs): then any variable may be read."""
    words: set[str] = set()
    for state in states:
        if state.text is not None:
            words.update(WORD.findall(state.text))
        elif state.exists:
            return None
    return words


def read_environment(env: Mapping[str, str], states: Iterable[FileState]) -> dict[str, str]:
    """The variables compose may read for a project whose files are `states` (all of them when
    a file could not be read as text)."""
    words = _words(states)
    if words is None:
        return dict(env)
    return {name: value for name, value in env.items()
            if name.startswith(ENV_PREFIXES) or name in ENV_ALWAYS or name in words}


def input_key(store: ApprovalStore, directory: Path, env: Mapping[str, str], *,
              files: Mapping[str, FileState], git: Mapping[str, FileState],
              named: Mapping[str, FileState], approval: Approval) -> str:
    """The keyed digest of everything a resolution of the project depends on (module doc)."""
    states = [*files.values(), *named.values()]
    doc = {
        "format": FORMAT,
        "sidecar": __version__,
        "directory": os.path.realpath(directory),
        "files": {name: state.digest for name, state in sorted(files.items())},
        "git": {name: state.digest for name, state in sorted(git.items())},
        "named": {name: state.digest for name, state in sorted(named.items())},
        "environment": sorted(read_environment(env, states).items()),
        "binaries": _binaries(env),
        "approval": store.digest(json.dumps(approval.to_json(), sort_keys=True).encode()),
    }
    return store.digest(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode("utf-8"))


def _path(store: ApprovalStore, directory: Path) -> Path:
    return store.directory(directory) / CACHE_NAME


@dataclass(frozen=True)
class Cached:
    """A stored resolution: its key, compose's output, compose's version, and the list of
    input files found for it (the key proves them the same files now)."""

    key: str
    model: ResolvedModel
    compose_version: str | None
    inputs: list[Input]
    routed: bool = True  # the approved bridge.yaml sets `sidecar.limits.routed` (to apply)


def load(store: ApprovalStore, directory: Path) -> Cached | None:
    """The cached resolution of the project, None when there is none or it is unreadable (a
    miss: `up` resolves again)."""
    path = _path(store, directory)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT:
            return None
        text = str(doc["text"])
        model = json.loads(text)
        if not isinstance(model, dict):
            return None
        version = doc.get("compose_version")
        inputs = [Input(Path(str(p)), str(k)) for p, k in doc["inputs"]]
        return Cached(str(doc["key"]), ResolvedModel(text, model),
                      str(version) if version is not None else None, inputs,
                      doc.get("routed") is not False)
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None


def save(store: ApprovalStore, directory: Path, cached: Cached) -> None:
    """Keep a resolution (one that matched the approval), 0600."""
    text = json.dumps({"format": FORMAT, "key": cached.key,
                       "compose_version": cached.compose_version,
                       "inputs": [[str(i.path), i.kind] for i in cached.inputs],
                       "routed": cached.routed,
                       "text": cached.model.text})
    atomic.write_atomic(str(_path(store, directory)), text.encode("utf-8"), 0o600)


def forget(store: ApprovalStore, directory: Path) -> None:
    """Remove the cached model (after a miss: no stale copy of secrets is kept)."""
    with contextlib.suppress(FileNotFoundError):
        _path(store, directory).unlink()
