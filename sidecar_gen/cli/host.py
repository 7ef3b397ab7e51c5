"""Commands on the host that start and check the stack: up, trust, doctor."""

from __future__ import annotations

import sys
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
) -> None:
    """Verify the project against your approval, then start it (docker compose up -d --wait).

    Refuses, with a diff naming each file, when anything that decides how the stack starts or
    what the agent may do changed since you approved it (`sidecar trust`). With no approval yet,
    approves what is there (trust on first use). Exit codes: 0 started; 1 refused, or compose
    failed to start it; 2 usage error.
    """
    from sidecar_gen.host.engine import connect
    from sidecar_gen.trust.actions import UnapprovedChangeError, check_project, locked, start

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

    with locked(target) as store:
        check = check_project(target, store, render_notes=False)  # `trust` and `doctor` say it
        if check.comparison.changed and not check.comparison.first_use:
            _show(check.comparison)
            raise UnapprovedChangeError(check.comparison)
        client = connect()
        result = start(check, list(services or []), client, before_compose=announce)
    if result.compose_code != 0:
        from sidecar_gen.doctor.podman import up_failure_hint

        why = up_failure_hint(client, check.snapshot.resolved.name)
        raise SidecarError(f"docker compose up failed (exit {result.compose_code})"
                           + (f": {why}" if why else ""), exit_code=ExitCode.FINDINGS)


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
