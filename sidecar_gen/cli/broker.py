"""`sidecar broker`: the credential broker (runs in its own container, beside the gate)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sidecar_gen.cli.app import app, handle_errors


@app.command("broker")
@handle_errors
def broker_command(
    *,
    listen: Annotated[str, typer.Option(
        help="Where to listen: tcp://HOST:PORT (plain HTTP, on the compose network only).")
    ] = "tcp://0.0.0.0:8080",
    upstream: Annotated[str, typer.Option(
        help="The Anthropic API: https://HOST[:PORT][/PREFIX] (TLS, verified).")
    ] = "https://api.anthropic.com",
    secrets: Annotated[Path | None, typer.Option(
        help="Folder of the real secrets, one file each, named by kind: api-key or "
             "oauth-token, github-token. Read once at start; never give a secret on the "
             "command line.", file_okay=False, envvar="SIDECAR_BROKER_SECRETS")] = None,
    ca_file: Annotated[Path | None, typer.Option(
        help="Extra CA certificates (PEM) to trust for the upstreams, besides the system's.",
        dir_okay=False)] = None,
    github_upstream: Annotated[str, typer.Option(
        help="Where git's https://github.com/OWNER/REPO requests go (TLS, verified).")
    ] = "https://github.com",
    github_repo: Annotated[list[str] | None, typer.Option(
        help="A repository the GitHub token is added for: OWNER/REPO (clone and fetch) or "
             "OWNER/REPO:push (push too). Repeatable; all others are refused.")] = None,
    host: Annotated[list[str] | None, typer.Option(
        help="Another name clients reach the broker by (Host header), besides "
             "sidecar-broker, localhost, 127.0.0.1 and [::1]. Repeatable.")] = None,
    max_connections: Annotated[int, typer.Option(
        min=1, max=4096, help="Client connections at once; beyond, a 503 and close.")] = 64,
    idle_timeout: Annotated[float, typer.Option(
        min=1, help="Seconds the upstream may stay silent (response head included) before "
                    "the request is cut: an idle limit, never a total one.")] = 600.0,
    log: Annotated[Path | None, typer.Option(
        help="Audit record, one JSON line per request (appended) [default: "
             "$SIDECAR_BROKER_LOG, else stderr].", envvar="SIDECAR_BROKER_LOG",
        dir_okay=False)] = None,
) -> None:
    """Run the credential broker: forward Claude Code's API calls (and git over HTTPS for the
    listed repositories) to the real upstream with the real credential, which never leaves it.

    Exit codes: 0 stopped (SIGTERM/SIGINT), 2 bad flags, an unusable listen address, a missing
    or invalid secret, CA or log file.
    """
    from sidecar_gen.broker import BrokerOptions, run_broker
    from sidecar_gen.broker.exchange import Timeouts
    from sidecar_gen.broker.server import BrokerLimits
    from sidecar_gen.errors import InputError

    stream = None
    if log is not None:
        try:
            stream = log.open("a", encoding="utf-8", buffering=1)
        except OSError as exc:
            raise InputError(str(log), f"cannot open the audit log: {exc.strerror}") from exc
    limits = BrokerLimits(max_connections=max_connections,
                          timeouts=Timeouts(upstream=idle_timeout))
    options = BrokerOptions(listen=listen, upstream=upstream, github_upstream=github_upstream,
                            secrets=secrets, ca_file=ca_file,
                            repositories=tuple(github_repo or ()), hosts=tuple(host or ()),
                            log=stream, limits=limits)
    try:
        code = run_broker(options, notice=lambda line: typer.echo(line, err=True))
    finally:
        if stream is not None:
            stream.close()
    raise typer.Exit(code)
