"""The `sidecar` command line: thin wrappers that turn flags into one core call each."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from enum import StrEnum
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from sidecar_gen import __version__
from sidecar_gen.errors import ExitCode, SidecarError

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="sidecar",
    help="Run Claude Code in a locked-down container next to your Docker Compose project.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def use_color(stream: Any = None) -> bool:
    """Color only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def fail(message: str, code: int) -> typer.Exit:
    """Print one error line to stderr and return the Exit to raise."""
    typer.echo(f"sidecar: error: {message}", err=True)
    return typer.Exit(code)


def handle_errors(func: F) -> F:
    """Map expected failures to one line and their exit code; never show a traceback for them."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SidecarError as exc:
            raise fail(exc.message, int(exc.exit_code)) from None
        except KeyboardInterrupt:
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("SIDECAR_DEBUG"):
                traceback.print_exc()
            raise fail(f"internal error: {type(exc).__name__}: {exc} "
                       "(set SIDECAR_DEBUG=1 for the traceback and please report it)",
                       int(ExitCode.INTERNAL)) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sidecar {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Run Claude Code in a locked-down container next to your Docker Compose project."""


@app.command()
@handle_errors
def schema() -> None:
    """Print the JSON Schema of bridge.yaml."""
    from sidecar_gen.resources import schema_text

    typer.echo(schema_text(), nl=False)


class OutputFormat(StrEnum):
    """Formats of `sidecar validate`."""

    text = "text"
    json = "json"
    github = "github"
    sarif = "sarif"


@app.command()
@handle_errors
def validate(
    files: Annotated[list[Path] | None, typer.Argument(
        help="bridge.yaml files [default: $SIDECAR_CONFIG_DIR/bridge.yaml, else "
             "./.sidecar/bridge.yaml]", show_default=False)] = None,
    output_format: Annotated[OutputFormat, typer.Option(
        "--format", "-f", help="Output format.")] = OutputFormat.text,
    compose: Annotated[Path | None, typer.Option(
        help="Compose file whose services and container names commands may use "
             "[default: the one next to the project, if any].")] = None,
    strict: Annotated[bool, typer.Option(help="Fail on warnings too.")] = False,
) -> None:
    """Check bridge.yaml against the schema and the semantic rules.

    Exit codes: 0 valid, 1 findings, 2 usage or I/O error.
    """
    from sidecar_gen.checker import CheckOptions, run_check
    from sidecar_gen.reporters import REPORTER_BY_NAME, format_text

    options = CheckOptions(files=list(files or []), compose=compose, strict=strict)
    result = run_check(options)
    if output_format is OutputFormat.text:
        out = format_text(result.report.findings, result.report.files, color=use_color())
    else:
        out = REPORTER_BY_NAME[output_format.value](result.report.findings, result.report.files)
    typer.echo(out, nl=False)
    for problem in result.unreadable:
        typer.echo(f"sidecar: error: {problem}", err=True)
    raise typer.Exit(result.exit_code)


@app.command()
@handle_errors
def init(
    directory: Annotated[Path, typer.Option("--dir", "-C", help="Project directory.",
                                            file_okay=False)] = Path("."),
    compose: Annotated[Path | None, typer.Option(
        help="Compose file to read [default: compose.yaml, compose.yml, docker-compose.yml, "
             "docker-compose.yaml in the project directory].")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
) -> None:
    """Scaffold .sidecar/bridge.yaml and .sidecar/allowed-domains.txt from your compose project."""
    from sidecar_gen.scaffold import FileStatus, run_init

    if not directory.is_dir():
        raise SidecarError(f"{directory}: no such directory")
    result = run_init(directory, compose, force=force)
    project = result.proposal.project
    if project is None:
        typer.echo("no compose file found: wrote a commented starter")
    else:
        via = "docker compose config" if project.via_cli else "the YAML"
        typer.echo(f"read {project.file.name} (project {project.name}, "
                   f"{len(project.services)} services, via {via})")
    for item in result.files:
        status = str(item.status) + (f" ({item.reason})" if item.reason else "")
        typer.echo(f"{status:<10} {item.path}")
    if any(item.status is FileStatus.SKIPPED for item in result.files):
        typer.echo("some files exist and were kept; rerun with --force to overwrite them")


def main() -> None:
    """Console entry point."""
    app()
