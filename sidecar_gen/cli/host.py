"""Commands on the host that start and check the stack: up, trust, doctor."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sidecar_gen.cli.app import app, handle_errors, one_of
from sidecar_gen.cli.output import say, use_color
from sidecar_gen.errors import ExitCode, SidecarError
from sidecar_gen.runtime.escape import escape

if TYPE_CHECKING:
    from sidecar_gen.compose.cli import ComposeTarget
    from sidecar_gen.trust.actions import Check, StackUp
    from sidecar_gen.trust.compare import Comparison

DirOption = Annotated[Path, typer.Option("--dir", "-C", help="Project directory.",
                                         file_okay=False)]


def _target(directory: Path) -> ComposeTarget:
    from sidecar_gen.compose.cli import ComposeTarget

    if not directory.is_dir():
        raise SidecarError(f"{directory}: no such directory")
    return ComposeTarget(directory.resolve())


def _show(comparison: Comparison, show_values: bool = False) -> None:
    for line in comparison.summary():
        typer.echo(line)
    typer.echo(comparison.text(show_values), nl=False)


def _notes(check: Check) -> None:
    for note in check.notes:
        say(f"note: {note}", err=True)


@app.command(context_settings={"allow_interspersed_args": False})
@handle_errors
def up(
    services: Annotated[list[str] | None, typer.Argument(
        help="Services to start [default: all of them].", show_default=False)] = None,
    directory: DirOption = Path("."),
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="First run (no .sidecar/ yet): start without asking.")] = False,
) -> None:
    """Verify the project against your approval, then start it (docker compose up -d --wait).

    Refuses, with a diff naming each file, when anything that decides how the stack starts or
    what the agent may do changed since you approved it (`sidecar trust`). With no approval yet,
    approves what is there (trust on first use). In a project with no .sidecar/ folder yet it
    first runs init and render, shows the plan (routes, allowed domains, added services, what
    it approves) and asks once (`--yes` answers for scripts; SIDECAR_IMAGE sets the Claude
    image init writes). Hands the credential broker the credential (ANTHROPIC_API_KEY or
    CLAUDE_CODE_OAUTH_TOKEN here, else `sidecar auth`); without one it starts anyway and says
    how to set one. Exit codes: 0 started; 1 refused or declined, or compose failed to start
    it; 2 usage error (a first run with no terminal and no --yes), or an invalid credential.
    """
    from sidecar_gen.host.engine import connect
    from sidecar_gen.trust.actions import UnapprovedChangeError, check_project, locked, start
    from sidecar_gen.trust.firstrun import needs_first_run

    target = _target(directory)

    def announce(result: StackUp) -> None:
        if result.first_use:
            say(f"sidecar: no approval on record for {target.directory}: approved what is "
                f"there now (trust on first use), recorded in {result.record}", err=True)
        else:
            say(f"sidecar: matches your approval of {result.approved_at}", err=True)
        if result.policy_changed:
            reloaded = ", ".join(result.reloaded) or "none running"
            say(f"sidecar: policy volume filled with the approved bridge.yaml and "
                f"allowed-domains.txt; reloaded: {reloaded}", err=True)
        if result.credential:
            say(f"sidecar: the broker holds {result.credential} (Claude Code gets a "
                "placeholder)", err=True)
        if result.restarted_brokers:
            say("sidecar: the broker's credential changed; restarted: "
                f"{', '.join(result.restarted_brokers)}", err=True)
        for note in result.notes:
            say(f"note: {note}", err=True)

    if needs_first_run(target.directory):
        result = _first_run(target, list(services or []), yes, announce)
    else:
        with locked(target) as store:
            # Render notes: `trust` and `doctor` say them. The daily `up` reuses the last
            # verified resolution while nothing it depends on changed (`trust.resolved`).
            check = check_project(target, store, render_notes=False, reuse=True)
            if check.comparison.changed and not check.comparison.first_use:
                _show(check.comparison)
                raise UnapprovedChangeError(check.comparison)
            result = start(check, list(services or []), connect, before_compose=announce)
    if result.compose_code != 0:
        from sidecar_gen.doctor.podman import up_failure_hint

        why = up_failure_hint(connect(), result.project)
        raise SidecarError(f"docker compose up failed (exit {result.compose_code})"
                           + (f": {why}" if why else ""), exit_code=ExitCode.FINDINGS)


def _first_run(target: ComposeTarget, services: list[str], yes: bool,
               announce: Callable[[StackUp], None]) -> StackUp:
    """init + render + the plan + one question, then start (see `trust.firstrun`)."""
    import os

    from sidecar_gen.host.engine import connect
    from sidecar_gen.trust.actions import approve, check_project, locked, start
    from sidecar_gen.trust.firstrun import has_compose_project, make_plan, write_first_run

    if not has_compose_project(target.directory, target.environ()):
        raise SidecarError(f"{target.directory} has no compose file (compose.yaml or "
                           "COMPOSE_FILE): run `sidecar up` in your Docker Compose project, or "
                           "`sidecar init` to write a starter", exit_code=ExitCode.USAGE)
    if not yes and not sys.stdin.isatty():
        raise SidecarError(f"{target.directory} has no .sidecar/ yet: a first run shows its plan "
                           "and asks; stdin is not a terminal: pass --yes to start without "
                           "asking", exit_code=ExitCode.USAGE)
    client = connect()  # no engine: say so before writing anything
    run = write_first_run(target.directory, image=os.environ.get("SIDECAR_IMAGE") or None)
    started = False
    try:
        with locked(target) as store:
            check = check_project(target, store, render_notes=False)
            for note in run.notes:
                say(f"note: {note}")
            for line in make_plan(run, check.comparison).lines():
                typer.echo(line)
            if not check.comparison.first_use:
                typer.echo("note: an earlier approval of this folder is on record: approving "
                           "replaces it")
            if not yes and not typer.confirm("Approve this and start the stack?", default=False):
                raise SidecarError("not approved: removed what this run wrote; nothing started",
                                   exit_code=ExitCode.FINDINGS)
            if not check.comparison.first_use:
                approve(check)
                check = check_project(target, store, render_notes=False)
            started = True
            return start(check, services, client, before_compose=announce)
    finally:
        if not started:
            run.undo()


@app.command(context_settings={"allow_interspersed_args": False,
                                "ignore_unknown_options": True})
@handle_errors
def claude(
    args: Annotated[list[str] | None, typer.Argument(
        help="Arguments for Claude Code (after `--` when one starts with `-` and is also an "
             "option of this command).", show_default=False)] = None,
    directory: DirOption = Path("."),
) -> None:
    """Start Claude Code in the project's running stack, as the agent's user, with a terminal
    when you have one, in the workspace folder that matches your current folder
    (`docker compose exec claude claude`, without remembering it).

    Exit codes: Claude Code's own; 1 the stack is not running (start it with `sidecar up`);
    2 usage error.
    """
    import os

    from sidecar_gen.session.enter import stack_claude_argv

    argv = list(args or [])
    if argv[:1] == ["--"]:
        argv = argv[1:]
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    target = _target(directory)
    docker = stack_claude_argv(target.directory, Path.cwd(), argv, tty=tty)
    sys.stdout.flush()
    os.execv(docker[0], docker)  # noqa: S606 - the docker CLI takes over the terminal


@app.command()
@handle_errors
def trust(
    directory: DirOption = Path("."),
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Approve without asking.")] = False,
    show_values: Annotated[bool, typer.Option(
        "--show-values", help="Also show the current value of each secret in the diff (names "
        "with KEY, TOKEN, SECRET, PASS, CREDENTIAL or AUTH: shown as digests otherwise).")
    ] = False,
) -> None:
    """Show what changed since your last approval and approve it (for `sidecar up`).

    Asks on a terminal; `--yes` approves without asking. Values of variables whose names say
    they are secrets are shown as digests; `--show-values` shows them too. Exit codes: 0
    approved (or nothing to approve); 1 declined, or bridge.yaml is invalid; 2 usage error (no
    terminal and no --yes).
    """
    from sidecar_gen.trust.actions import approve, check_project, locked

    target = _target(directory)
    with locked(target) as store:
        check = check_project(target, store)
        _notes(check)
        comparison = check.comparison
        if not comparison.changed and not comparison.files:
            approval = comparison.approval
            when = approval.approved_at if approval else "?"
            say(f"nothing to approve: {target.directory} matches its approval of {when}")
            return
        if comparison.first_use:
            say(f"no approval on record for {target.directory}; approving means:")
        _show(comparison, show_values)
        if not comparison.changed:
            typer.echo("note: the files changed but compose resolves the same model and the "
                       "policy is the same: approving only updates the copies shown in diffs")
        if not yes:
            if not sys.stdin.isatty():
                raise SidecarError("stdin is not a terminal: pass --yes to approve without "
                                   "asking", exit_code=ExitCode.USAGE)
            if not typer.confirm("Approve this?", default=False):
                raise SidecarError("not approved", exit_code=ExitCode.FINDINGS)
        path = approve(check)
    say(f"approved {target.directory} (record: {path}); `sidecar up` starts it")


DOCTOR_FORMATS = ("text", "json")


_doctor_format = one_of(lambda: DOCTOR_FORMATS)


@app.command()
@handle_errors
def doctor(
    directory: DirOption = Path("."),
    output_format: Annotated[str, typer.Option(
        "--format", "-f", help="Output format: text, json.", callback=_doctor_format,
        autocompletion=lambda: list(DOCTOR_FORMATS))] = "text",
    session: Annotated[str | None, typer.Option(
        "--session", "-s", help="Check session NAME of the project (default: the session whose "
        "worktree holds DIR, else the project itself).", show_default=False)] = None,
) -> None:
    """Check the set-up: engine, compose, render, approval, services, routed commands, the
    gate's policy, the firewall, PUID/PGID, Claude Code. One line per check, with the fix.
    For a session, its stored policy replaces the render and approval checks.

    Exit codes: 0 healthy (warnings allowed), 1 problems, 2 usage error.
    """
    import json

    from sidecar_gen.doctor import Status, run_doctor

    target = _target(directory)
    report = run_doctor(target, session)
    if output_format == "json":
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        color = use_color()
        marks = {Status.OK: "32", Status.WARN: "33", Status.FAIL: "31", Status.SKIP: "2"}
        for result in report.results:
            label = f"{result.status:<4}"
            if color:
                label = f"\x1b[{marks[result.status]}m{label}\x1b[0m"
            fix = f" -> {result.fix}" if result.fix and result.status is not Status.OK else ""
            typer.echo(f"{label}  {escape(f'{result.name}: {result.message}{fix}', None)}")
        problems = sum(r.status is Status.FAIL for r in report.results)
        typer.echo("healthy" if report.healthy else f"{problems} problem(s)")
    raise typer.Exit(report.exit_code)
