"""`sidecar session new|ls|exec|rm`: parallel sessions, each with its own worktree and stack."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sidecar_gen.cli.app import app, handle_errors
from sidecar_gen.cli.output import say
from sidecar_gen.runtime.escape import escape

if TYPE_CHECKING:
    from sidecar_gen.trust.secretvolume import Handed

session_app = typer.Typer(
    name="session",
    help="Parallel sessions: a git worktree and a compose project of its own per agent.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(session_app, name="session")

ProjectOption = Annotated[Path, typer.Option(
    "--project", "-C", help="The project folder [default: the current folder; inside a "
    "session's worktree, the project it was made from].", file_okay=False)]
NameArgument = Annotated[str, typer.Argument(
    metavar="NAME", help="The session's name (a-z, 0-9, '-', '_').")]


@session_app.command("new")
@handle_errors
def new_command(
    name: NameArgument,
    from_ref: Annotated[str | None, typer.Option(
        "--from", help="Commit, branch or tag the session's branch starts from [default: "
        "HEAD].")] = None,
    directory: Annotated[Path | None, typer.Option(
        "--dir", help="Where the worktree goes [default: <repository>.sessions/NAME beside "
        "the repository].", file_okay=False)] = None,
    clone_volumes: Annotated[bool, typer.Option(
        help="Copy the content of the project's named volumes into the session's (default: "
        "they start empty; Claude's login is always copied).")] = False,
    project: ProjectOption = Path("."),
) -> None:
    """Create session NAME: a worktree on branch sidecar/NAME and a compose project
    <project>-NAME with its own claude, gate and copies of the routed services.

    Returns when the session is ready. Exit codes: 0 ready, 1 it could not be started (nothing
    is left behind), 2 usage error (bad name, it exists, not a git repository).
    """
    from sidecar_gen.session.commands import NewOptions, new_session

    result = new_session(NewOptions(name=name, project_dir=project, ref=from_ref,
                                    worktree=directory, clone_volumes=clone_volumes))
    record = result.record
    say(f"session {record.name} ready in {result.seconds:.1f} s")
    say(f"  worktree  {record.project_dir} (branch {record.branch} at {record.base[:12]})")
    say(f"  compose   {record.compose_project}: {', '.join(result.services)}")
    if record.copied:
        say(f"  copied    {', '.join(sorted(record.copied))}")
    for volume in result.volumes:
        say(f"  volume    {volume}")
    for port in result.ports:
        say(f"  port      {port.service} {port.port} on {port.host}")
    _say_handed(result.handed)
    for note in result.notes:
        say(f"note: {note}", err=True)
    say(f"Claude Code: sidecar session exec {record.name}")


def _say_handed(handed: Handed) -> None:
    """What the session's broker got (in words, as `sidecar up` says it)."""
    if handed.credential:
        say(f"  broker    holds {handed.credential} (Claude Code gets a placeholder)")
    if handed.restarted:
        say("sidecar: the broker's credential changed; restarted: "
            f"{', '.join(handed.restarted)}", err=True)


@session_app.command("up")
@handle_errors
def up_command(name: NameArgument, project: ProjectOption = Path(".")) -> None:
    """Start session NAME again (after `docker compose stop` or a reboot), exactly as it was
    created: its stored model and policy, nothing read from the worktree.

    Exit codes: 0 ready, 1 it could not be started, 2 usage error.
    """
    from sidecar_gen.session.commands import start_session

    result = start_session(project, name)
    say(f"session {result.record.name} ready in {result.seconds:.1f} s")
    for port in result.ports:
        say(f"  port      {port.service} {port.port} on {port.host}")
    _say_handed(result.handed)
    for note in result.handed.notes:
        say(f"note: {note}", err=True)


@session_app.command("ls")
@handle_errors
def ls_command(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
    every: Annotated[bool, typer.Option("--all", help="Sessions of every project.")] = False,
    project: ProjectOption = Path("."),
) -> None:
    """List the sessions: name, state, compose project, created, path.

    State is running, starting, unhealthy, partial, stopped or absent (no containers).
    Exit codes: 0, 2 usage error.
    """
    from sidecar_gen.session.commands import list_sessions

    sessions = list_sessions(project, every_project=every)
    if as_json:
        typer.echo(json.dumps({"sessions": [s.as_json() for s in sessions]}, indent=2))
        return
    if not sessions:
        typer.echo("no sessions (create one with `sidecar session new NAME`)")
        return
    rows: list[tuple[str, ...]] = [("NAME", "STATE", "COMPOSE PROJECT", "CREATED", "PATH")]
    rows += [tuple(escape(cell) for cell in (
        s.record.name, s.state, s.record.compose_project, s.record.created,
        str(s.record.project_dir))) for s in sessions]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
                   + "  " + row[4])


@session_app.command(
    "exec",
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
)
@handle_errors
def exec_command(
    name: NameArgument,
    command: Annotated[list[str] | None, typer.Argument(
        help="Command and arguments, run as the agent's user [default: Claude Code].",
        show_default=False)] = None,
    project: ProjectOption = Path("."),
) -> None:
    """Run CMD as the agent's user in session NAME's Claude container (with a terminal when
    you have one), in the workspace folder that matches your current folder. Without CMD:
    Claude Code.

    Exit codes: the command's own; 1 the session is not running; 2 usage error.
    """
    from sidecar_gen.session.enter import exec_argv

    argv = list(command or [])
    if argv[:1] == ["--"]:
        argv = argv[1:]
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    docker = exec_argv(Path.cwd() if project == Path(".") else project, name, argv, tty=tty)
    sys.stdout.flush()
    os.execv(docker[0], docker)  # noqa: S606 - the docker CLI takes over the terminal


@session_app.command("rm")
@handle_errors
def rm_command(
    name: NameArgument,
    keep_worktree: Annotated[bool, typer.Option(
        help="Keep the worktree (and its changes); remove only the containers, volumes and "
        "network.")] = False,
    force: Annotated[bool, typer.Option(
        help="Remove the worktree even with uncommitted changes.")] = False,
    project: ProjectOption = Path("."),
) -> None:
    """Remove session NAME: its containers, volumes, network and worktree. Its branch
    sidecar/NAME stays.

    Exit codes: 0 removed, 1 refused (uncommitted changes in the worktree), 2 usage error.
    """
    from sidecar_gen.session.commands import remove_session

    result = remove_session(project, name, keep_worktree=keep_worktree, force=force)
    for item in result.removed:
        say(f"removed   {item}")
    worktree = result.record.worktree
    say(f"{'removed' if result.worktree_removed else 'kept':<9} worktree {worktree}")
    say(f"kept      branch {result.record.branch} "
        f"(`git branch -D {result.record.branch}` deletes it)")
