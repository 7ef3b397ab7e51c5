"""The Docker Compose CLI on the host: the one runner of `docker compose config`, and `up`.

A `ComposeTarget` names one compose project the way compose itself finds it: a folder, the
environment compose runs with, an optional project name (`-p`, for a session) and optional
files (`-f`, for init and validate). Everything that asks compose about a project goes through
one (`resolve_model`: init's and validate's reading, `sidecar up`, `trust`, `doctor`,
sessions), so every caller gets the same time limit (`host.process`, kind `compose-config`),
the same bounds on what compose printed and the same words for its failures.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sidecar_gen.errors import ExitCode, SidecarError
from sidecar_gen.host import process as hostproc

MAX_DEPTH = 64


class ComposeError(SidecarError):
    """The compose CLI is missing, or it could not resolve or start the project.

    `reason` is what went wrong without where (compose's own last error line, for a caller
    that words the message itself); `missing` says the docker CLI or its compose plugin is not
    installed.
    """

    def __init__(self, message: str, *, exit_code: ExitCode = ExitCode.FINDINGS,
                 reason: str = "", missing: bool = False) -> None:
        super().__init__(message, exit_code=exit_code)
        self.reason = reason or message
        self.missing = missing


@dataclass(frozen=True)
class ComposeTarget:
    """One compose project on the host.

    `directory` is the folder compose runs in (where it finds compose.yaml and `.env`);
    `project` is an explicit project name (`docker compose -p`), None for compose's own choice;
    `env` is the environment compose sees, None for this process's; `files` are explicit
    compose files (`docker compose -f`), empty for compose's own choice.
    """

    directory: Path
    project: str | None = None
    env: Mapping[str, str] | None = field(default=None, compare=False)
    files: tuple[Path, ...] = ()

    def environ(self) -> dict[str, str]:
        """The environment compose runs with: the given one (this process's when None), with
        the engine Podman's tools name (`CONTAINER_HOST`) as `DOCKER_HOST`, which compose
        reads. (The socket the gate mounts stays `DOCKER_SOCKET`'s, part of what is approved:
        `sidecar doctor` says when it is not the engine's.)"""
        env = dict(os.environ if self.env is None else self.env)
        if not env.get("DOCKER_HOST") and env.get("CONTAINER_HOST"):
            env["DOCKER_HOST"] = env["CONTAINER_HOST"]
        return env

    def argv(self, *args: str) -> list[str]:
        """`docker compose [-p NAME] ARGS...`."""
        head = ["docker", "compose"]
        if self.project:
            head += ["-p", self.project]
        for file in self.files:
            head += ["-f", str(file)]
        return [*head, *args]


@dataclass(frozen=True)
class ResolvedModel:
    """What `docker compose config` resolved: its exact JSON text and the parsed document.

    The text holds the environment's values (secrets included): keep it in memory only.
    """

    text: str
    doc: dict[str, Any]

    @property
    def name(self) -> str:
        """The compose project name compose chose (or was given)."""
        return str(self.doc.get("name") or "")

    def profiles(self) -> list[str]:
        """Every profile an active service names (compose lists active services only)."""
        found: set[str] = set()
        for spec in (self.doc.get("services") or {}).values():
            if isinstance(spec, dict):
                found.update(str(p) for p in spec.get("profiles") or ())
        return sorted(found)


def _require_cli() -> None:
    if shutil.which("docker") is None:
        raise ComposeError("the docker command is not installed (Docker Compose v2 is needed)",
                           exit_code=ExitCode.USAGE, missing=True)


def first_error(stderr: str) -> str:
    """The line of compose's stderr that says why it failed (the last one that is not a
    warning: compose logs `level=warning` lines before its error). When the docker CLI itself
    answered (no compose plugin), its first line: the `See 'docker --help'` after it says
    nothing."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if _no_plugin(stderr) and lines:
        return lines[0]
    errors = [line for line in lines if "level=warning" not in line]
    return (errors or lines or ["no output"])[-1]


def _no_plugin(stderr: str) -> bool:
    # Without the plugin, `compose` is no command of the docker CLI: it says so, or (20.10 and
    # later) its own parser refuses compose's first flag and prints docker's usage.
    return any(sign in stderr for sign in ("is not a docker command", "unknown command",
                                           "Usage:  docker [OPTIONS] COMMAND"))


def start_version(target: ComposeTarget) -> hostproc.Child | None:
    """Start `docker compose version --short` (read it with `parse_version`: it can run while
    something else does); None when the CLI cannot run."""
    if shutil.which("docker") is None:
        return None
    try:
        return hostproc.start(hostproc.HostCommand(["docker", "compose", "version", "--short"],
                                            "compose-version", "docker compose version",
                                            env=target.environ()))
    except SidecarError:
        return None


def parse_version(child: hostproc.Child | None) -> str | None:
    """The version a `start_version` child printed (`2.22.0`), None when it failed."""
    if child is None:
        return None
    try:
        result = child.finish()
    except SidecarError:
        return None
    version = result.stdout.strip().lstrip("v")
    return version if result.returncode == 0 and version else None


def compose_version(target: ComposeTarget) -> str | None:
    """The compose CLI's version (`2.22.0`), None when it is not installed."""
    child = start_version(target)
    if child is None:
        return None
    with child:
        return parse_version(child)


def resolve_model(target: ComposeTarget) -> ResolvedModel:
    """Ask compose for the effective model of the project, exactly as `docker compose up` in
    that folder would load it (every file, override, `COMPOSE_*`, `.env` interpolation)."""
    _require_cli()
    if not target.directory.is_dir():
        raise ComposeError(f"{target.directory}: no such directory", exit_code=ExitCode.USAGE)
    result = hostproc.run(hostproc.HostCommand(
        target.argv("config", "--format", "json"), "compose-config",
        f"docker compose config in {target.directory}", cwd=target.directory,
        env=target.environ()))
    if result.returncode != 0:
        reason = first_error(result.stderr)
        raise ComposeError(f"docker compose config failed in {target.directory}: {reason}",
                           reason=reason, missing=_no_plugin(result.stderr))
    try:
        doc = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise ComposeError(f"docker compose config printed no JSON ({exc.msg})") from None
    except RecursionError:
        doc = None
    if doc is None or _depth(doc) > MAX_DEPTH:
        # Compose keeps `x-` extensions as written: a file the agent wrote must not crash (or
        # exhaust) the commands that walk the model.
        raise ComposeError(f"the compose model of {target.directory} is nested more than "
                           f"{MAX_DEPTH} levels deep (an `x-` extension field?)")
    if not isinstance(doc, dict):
        raise ComposeError("docker compose config printed no project")
    return ResolvedModel(result.stdout, doc)


def _depth(value: Any) -> int:
    """How deeply a JSON value nests (iteratively: the value may be deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item \
            if isinstance(item, list) else ()
        stack.extend((child, level + 1) for child in children)
    return deepest


def model_argv(target: ComposeTarget, model: ResolvedModel, *command: str) -> list[str]:
    """`docker compose COMMAND...` on exactly `model`, read from stdin.

    Nothing in the folder is read again: `-f -` instead of the compose files, `--env-file
    /dev/null` instead of `.env` (the model is already interpolated; compose escapes literal `$`
    as `$$` in its output, and null environment entries would otherwise be filled from `.env`).
    """
    argv = ["docker", "compose", "-p", model.name, "--project-directory",
            str(target.directory), "--env-file", os.devnull]
    for profile in model.profiles():
        argv += ["--profile", profile]
    return [*argv, "-f", "-", *command]


def up_argv(target: ComposeTarget, model: ResolvedModel, services: Sequence[str]) -> list[str]:
    """`docker compose up -d --wait [SERVICE...]` of exactly `model` (see `model_argv`)."""
    return model_argv(target, model, "up", "-d", "--wait", *services)


def run_model(target: ComposeTarget, model: ResolvedModel, argv: list[str], kind: str) -> int:
    """Run a `model_argv` command line (its progress goes to this process's terminal) within
    the time limit of `kind` (`compose-up`: `docker compose up`)."""
    _require_cli()
    what = "docker compose " + kind.removeprefix("compose-")
    result = hostproc.run(hostproc.HostCommand(argv, kind, f"{what} in {target.directory}",
                                        cwd=target.directory, env=target.environ(),
                                        input=model.text, capture=False))
    return result.returncode


def up_model(target: ComposeTarget, model: ResolvedModel, services: Sequence[str]) -> int:
    """Start `model`; compose's exit code."""
    return run_model(target, model, up_argv(target, model, services), "compose-up")


def pull_model(target: ComposeTarget, model: ResolvedModel, services: Sequence[str]) -> int:
    """Pull the images of `services` of `model`; compose's exit code."""
    return run_model(target, model, model_argv(target, model, "pull", "--quiet", *services),
                     "compose-pull")
