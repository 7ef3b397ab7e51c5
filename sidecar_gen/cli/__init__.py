"""The `sidecar` command line: thin wrappers that turn flags into one core call each.

`app` holds the shared pieces; each module registers one group of commands on it.

Owns: the commands, their flags, help and output. May import: everything; nothing imports it.
"""

from __future__ import annotations

from sidecar_gen.cli import auth, broker, firewall, host, net, project, runtime, session  # noqa: F401 - they register commands
from sidecar_gen.cli.app import app, quiet_broken_pipe


def main() -> None:
    """Console entry point."""
    try:
        app()
    except BrokenPipeError:
        # Raised outside a command (typer writing help or an error): still no traceback.
        raise SystemExit(quiet_broken_pipe().exit_code) from None


__all__ = ["app", "main"]
