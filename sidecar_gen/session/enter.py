"""Entering a running stack: the `docker exec` command line of `sidecar claude` (the project's
stack) and `sidecar session exec` (a session's), in the workspace folder matching yours.

The CLI replaces itself with that command (`os.execv`), so the terminal, the signals and the
exit code are docker's, and through it the container's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sidecar_gen.compose.cli import ComposeTarget
from sidecar_gen.image.files import ImageLayout
from sidecar_gen.session.commands import source_dir
from sidecar_gen.session.engine import SessionEngine, docker_cli, project_state
from sidecar_gen.session.store import SessionError, SessionStore
from sidecar_gen.trust.actions import store_for
from sidecar_gen.trust.record import RECORD_NAME


def exec_argv(directory: Path, name: str, command: Sequence[str], *, tty: bool) -> list[str]:
    """The `docker exec` command line that runs `command` as the agent's user in session
    `name`'s Claude container (no command: Claude Code, through the `claude` wrapper, which
    drops to that user itself), in the workspace folder matching `directory`."""
    record = SessionStore(source_dir(directory)).load(name)
    engine = SessionEngine()
    try:
        container = engine.claude_container(record.compose_project)
        if container is None or container.status != "running":
            state = project_state(engine.containers(record.compose_project))
            raise SessionError(f"session {name} is not running ({state}): start it with "
                               f"`sidecar session up {name}`")
    finally:
        engine.close()
    argv = exec_head(container, record.project_dir, directory, tty=tty)
    if command:
        return [*argv, "-u", ImageLayout().user, str(container.id), *command]
    return [*argv, str(container.id), "claude"]


def exec_head(container: Any, project_dir: Path, here: Path, *, tty: bool) -> list[str]:
    """`docker exec -i [-t] -w DIR`: DIR is the container's workspace folder that matches
    `here` when it is inside `project_dir` (the workspace itself otherwise)."""
    workspace = str((container.attrs.get("Config") or {}).get("WorkingDir") or
                    ImageLayout().workspace)
    here = here.resolve()
    project_dir = project_dir.resolve()
    workdir = workspace
    if here == project_dir or project_dir in here.parents:
        rel = here.relative_to(project_dir).as_posix()
        workdir = workspace if rel == "." else f"{workspace.rstrip('/')}/{rel}"
    return [docker_cli(), "exec", "-i", *(["-t"] if tty else []), "-w", workdir]


def stack_claude_argv(directory: Path, here: Path, args: Sequence[str], *,
                      tty: bool) -> list[str]:
    """The `docker exec` command line that starts Claude Code (the `claude` wrapper: it waits
    for the container to be ready and drops to the agent's user) with `args` in the running
    stack of the project at `directory` (or the nearest folder above it with an approval), in
    the workspace folder matching `here`.

    The stack is the one `sidecar up` started: its compose project name is the approved
    model's. Raises SessionError (exit 1) when there is none, or its Claude container is not
    running, saying to run `sidecar up`.
    """
    start = directory.resolve()
    store = store_for(ComposeTarget(start))
    approval = None
    project_dir = start
    for folder in (start, *start.parents):  # from a subfolder too, as git finds its repository
        if not (store.directory(folder) / RECORD_NAME).is_file():
            continue  # no record: do not make its folder either
        approval = store.load(folder)
        if approval is not None:
            project_dir = folder
            break
    if approval is None:
        raise SessionError(f"no stack of {start} was ever started (no approval on record): "
                           "start it with `sidecar up`")
    project = approval.compose_project
    engine = SessionEngine()
    try:
        container = engine.claude_container(project)
        if container is None or container.status != "running":
            state = project_state(engine.containers(project))
            raise SessionError(f"the stack of {project_dir} is not running ({state}): "
                               "start it with `sidecar up`")
    finally:
        engine.close()
    head = exec_head(container, project_dir, here, tty=tty)
    return [*head, str(container.id), "claude", *args]
