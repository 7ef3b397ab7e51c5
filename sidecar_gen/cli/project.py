"""Commands on the project folder: init, validate, render, schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sidecar_gen.cli.app import app, handle_errors, one_of
from sidecar_gen.cli.output import say, use_color
from sidecar_gen.errors import ExitCode, SidecarError
from sidecar_gen.runtime.escape import escape
from sidecar_gen.validate.reporters import REPORTER_BY_NAME


@app.command()
@handle_errors
def schema() -> None:
    """Print the JSON Schema of bridge.yaml."""
    from sidecar_gen.resources import schema_text

    typer.echo(schema_text(), nl=False)


# init and validate read the same compose files the same way: one flag for both.
ComposeFiles = Annotated[list[Path] | None, typer.Option(
    help="Compose file to read, like `docker compose -f` (repeatable; give validate the ones "
         "init was given) [default: the files docker compose reads in the project directory: "
         "COMPOSE_FILE, else compose.yaml (or compose.yml, docker-compose.yml, "
         "docker-compose.yaml) and its override file].", show_default=False)]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


# The reporters' registry is the list of formats: a new reporter is a new choice.
_known_format = one_of(lambda: REPORTER_BY_NAME)


@app.command()
@handle_errors
def validate(
    files: Annotated[list[Path] | None, typer.Argument(
        help="bridge.yaml files [default: $SIDECAR_CONFIG_DIR/bridge.yaml, else "
             "./.sidecar/bridge.yaml]", show_default=False)] = None,
    output_format: Annotated[str, typer.Option(
        "--format", "-f", help=f"Output format: {', '.join(REPORTER_BY_NAME)}.",
        callback=_known_format, autocompletion=lambda: list(REPORTER_BY_NAME))] = "text",
    compose: ComposeFiles = None,
    strict: Annotated[bool, typer.Option(help="Fail on warnings too.")] = False,
) -> None:
    """Check bridge.yaml against the schema and the semantic rules.

    Exit codes: 0 valid, 1 findings, 2 usage or I/O error.
    """
    from sidecar_gen.validate.check import CheckOptions, run_check

    options = CheckOptions(files=list(files or []), compose=tuple(compose or ()), strict=strict)
    result = run_check(options)
    out = REPORTER_BY_NAME[output_format](result.report.findings, result.report.files,
                                          color=use_color())
    typer.echo(out, nl=False)
    for problem in result.unreadable:
        say(f"sidecar: error: {problem}", err=True)
    raise typer.Exit(result.exit_code)


@app.command()
@handle_errors
def init(
    directory: Annotated[Path, typer.Option("--dir", "-C", help="Project directory.",
                                            file_okay=False)] = Path("."),
    compose: ComposeFiles = None,
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
    probe: Annotated[bool, typer.Option(
        help="Ask the project's running containers which programs they have.")] = True,
) -> None:
    """Scaffold .sidecar/bridge.yaml and .sidecar/allowed-domains.txt from your compose project.

    SIDECAR_IMAGE, when set, is written as the Claude image (`sidecar.image`)."""
    from sidecar_gen.fileplan import FileStatus
    from sidecar_gen.scaffold.proposal import run_init

    if not directory.is_dir():
        raise SidecarError(f"{directory}: no such directory")
    import os

    result = run_init(directory, tuple(compose or ()), force=force, probe=probe,
                      image=os.environ.get("SIDECAR_IMAGE") or None)
    proposal = result.proposal
    project = proposal.project
    if project is None:
        typer.echo("no compose file found: wrote a commented starter")
    else:
        if project.cli_error:
            say(f"docker compose config failed: {project.cli_error}; "
                "read the compose files directly instead")
        via = "docker compose config" if project.via_cli else "sidecar's own compose reader"
        ours = f", {len(project.sidecar_services)} of the sidecar's own left out" if \
            project.sidecar_services else ""
        say(f"read {proposal.files} (project {project.name}, "
            f"{_count(len(project.services), 'service')}{ours}, via {via})")
        if proposal.probed:
            say(f"asked the running containers of {', '.join(proposal.probed)} "
                "which programs they have")
        if proposal.imaged:
            say(f"read the images on this machine of {', '.join(proposal.imaged)} "
                "(no container started)")
        unknown = sum(len(u.names) for u in proposal.unknown)
        typer.echo(f"proposed {_count(len(proposal.commands), 'command')}; "
                   f"{_count(unknown, 'service')} without a known program")
    for item in result.files:
        status = str(item.status) + (f" ({item.reason})" if item.reason else "")
        say(f"{status:<10} {item.path}")
    if any(item.status is FileStatus.SKIPPED for item in result.files):
        typer.echo("some files exist and were kept; rerun with --force to overwrite them")


@app.command()
@handle_errors
def render(
    directory: Annotated[Path, typer.Option("--dir", "-C", help="Project directory.",
                                            file_okay=False)] = Path("."),
    check: Annotated[bool, typer.Option(
        help="Write nothing; exit 1 when anything would change.")] = False,
    diff: Annotated[bool, typer.Option(help="Show unified diffs of the changes.")] = False,
    force: Annotated[bool, typer.Option(
        help="Overwrite generated files that were edited by hand.")] = False,
) -> None:
    """Generate the Claude stack (compose services, egress allowlist) from bridge.yaml.

    Each target is reported changed, ok or skipped; a second run changes nothing.
    Exit codes: 0 done, 1 --check found changes or a target was skipped (edited by hand),
    or bridge.yaml is invalid; 2 usage or I/O error.
    """
    from sidecar_gen.render import run_render

    if not directory.is_dir():
        raise SidecarError(f"{directory}: no such directory")
    result = run_render(directory, force=force, check=check)
    color = use_color()
    marks = {"changed": "33", "created": "33", "skipped": "31", "ok": "32"}
    for change in result.changes:
        status = f"{'would be ' if check and change.writes else ''}{change.status}"
        label = f"{status:<17}"
        if color:
            label = f"\x1b[{marks[str(change.status)]}m{label}\x1b[0m"
        reason = f" ({change.reason})" if change.reason else ""
        typer.echo(f"{label} {escape(f'{change.path}{reason}')}")
        if diff:
            typer.echo(change.diff(), nl=False)
    for note in result.notes:
        say(f"note: {note}", err=True)
    if result.applied and result.would_change:
        typer.echo("next: `sidecar trust` to review and approve the change, then `sidecar up` "
                   "to start the stack with it", err=True)
    if result.skipped or (check and result.would_change):
        raise typer.Exit(int(ExitCode.FINDINGS))
