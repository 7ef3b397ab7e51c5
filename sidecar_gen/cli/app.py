"""The typer application and what every command shares: colour, error mapping, exit codes."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer

from sidecar_gen import __version__
from sidecar_gen.cli import output
from sidecar_gen.errors import ExitCode, Interrupted, SidecarError
from sidecar_gen.runtime.escape import escape

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


def fail(message: str, code: int) -> typer.Exit:
    """Print one error line to stderr and return the Exit to raise.

    The message often quotes a file name or a value from the project: escaped, one line."""
    typer.echo(f"sidecar: error: {escape(message)}", err=True)
    return typer.Exit(code)


def quiet_broken_pipe() -> typer.Exit:
    """The reader of our output went away (`sidecar ... | head -1`): stop quietly, like SIGPIPE.

    stdout is pointed at /dev/null so the interpreter's final flush cannot fail again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return typer.Exit(int(ExitCode.BROKEN_PIPE))


def one_of(choices: Callable[[], Any]) -> Callable[[str], str]:
    """A typer callback that accepts only the values in `choices()` (read when called, so a
    registry that grows is the list), with a one-line usage error naming them."""
    def check(value: str) -> str:
        known = list(choices())
        if value not in known:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(known)}")
        return value
    return check


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
        except Interrupted as exc:  # a host command's process group was stopped first
            raise typer.Exit(128 + exc.signum) from None
        except BrokenPipeError:
            raise quiet_broken_pipe() from None
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
    output.install()  # before any command writes: nothing it prints can steer the terminal
