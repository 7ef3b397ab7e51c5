"""Commands that run inside the stack: the dispatcher (install-wrappers, exec) and the gate."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from sidecar_gen.cli.app import app, handle_errors
from sidecar_gen.cli.output import say, use_color
from sidecar_gen.errors import ExitCode
from sidecar_gen.gate import MAX_CONNECTIONS
from sidecar_gen.runtime.names import ENGINE_SOCKET, GATE_PORT


@app.command("install-wrappers")
@handle_errors
def install_wrappers_command(
    directory: Annotated[Path, typer.Option("--dir", "-d", help="Directory of the wrappers "
                                            "(on PATH in the Claude container).",
                                            file_okay=False)],
    config: Annotated[Path | None, typer.Option(
        help="bridge.yaml [default: $BRIDGE_CONFIG, else $SIDECAR_CONFIG_DIR/bridge.yaml, "
             "else ./.sidecar/bridge.yaml].")] = None,
) -> None:
    """Validate bridge.yaml and create one wrapper symlink per routed command in DIR.

    Removes wrappers of commands no longer configured, never touches other files, idempotent.
    Exit codes: 0 done, 1 invalid bridge.yaml (findings printed), 2 usage or I/O error.
    """
    from sidecar_gen.errors import ConfigError
    from sidecar_gen.validate.findings import Finding
    from sidecar_gen.validate.reporters import format_text
    from sidecar_gen.wrappers.install import install_wrappers

    try:
        report = install_wrappers(directory, config)
    except ConfigError as exc:
        findings = [f for f in exc.findings if isinstance(f, Finding)]
        if findings:
            typer.echo(format_text(findings, [exc.path], color=use_color(sys.stderr)),
                       err=True, nl=False)
        raise
    say(f"wrappers in {report.directory} for {report.config} "
        f"(launcher {report.launcher_status})")
    for label, names in (("created", report.created), ("removed", report.removed),
                         ("ok", report.ok)):
        for name in names:
            say(f"{label:<8} {name}")
    for name, reason in report.skipped:
        say(f"skipped  {name} ({reason})")
    if report.cache is None:
        typer.echo("note: no writable cache directory; the dispatcher re-reads bridge.yaml on "
                   "every command (set XDG_CACHE_HOME)", err=True)


@app.command(
    "exec",
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
)
def exec_command(
    name: Annotated[str, typer.Argument(help="Routed command name (a key of `commands`).")],
    args: Annotated[list[str] | None, typer.Argument(
        help="Arguments, passed verbatim.", show_default=False)] = None,
    config: Annotated[Path | None, typer.Option(
        help="bridge.yaml [default: $BRIDGE_CONFIG, else $SIDECAR_CONFIG_DIR/bridge.yaml, "
             "else ./.sidecar/bridge.yaml].")] = None,
) -> None:
    """Run a routed command explicitly, exactly as its wrapper would.

    Exit codes: the command's own; 124 timeout; 125 engine, gate or bridge.yaml error;
    126 not executable; 127 not found or not routed; 128+N terminated by signal N.
    """
    from sidecar_gen.runtime.dispatch import run

    # The dispatcher prints its own one-line errors and never raises for expected failures.
    raise typer.Exit(run(name, list(args or []), config=str(config) if config else None))


@app.command("proxy")
@handle_errors
def proxy_command(
    *,
    listen: Annotated[str, typer.Option(
        help="Where to listen: tcp://HOST:PORT or unix:///path.")] = f"tcp://0.0.0.0:{GATE_PORT}",
    upstream: Annotated[str, typer.Option(
        help="The real engine: unix:///path/to/docker.sock or tcp://HOST:PORT.")
    ] = f"unix://{ENGINE_SOCKET}",
    config: Annotated[Path | None, typer.Option(
        help="The approved bridge.yaml (in the stack: /run/sidecar/policy/bridge.yaml, "
             "filled by `sidecar up`) [default: $BRIDGE_CONFIG, else "
             "$SIDECAR_CONFIG_DIR/bridge.yaml, else ./.sidecar/bridge.yaml]. Read at start "
             "and on SIGHUP only; missing or invalid, every request is refused.")] = None,
    workspace_config: Annotated[Path | None, typer.Option(
        help="The workspace's bridge.yaml: only compared with --config, to log one line "
             "when it is not the approved one.")] = None,
    project: Annotated[str | None, typer.Option(
        help="Serve only the containers of this compose project when the gate does not run "
             "in one itself (in one, its own project is used).")] = None,
    max_connections: Annotated[int, typer.Option(
        min=1, max=65536, help="Client connections at once (exec streams included); "
        "beyond, a 503 and close.")] = MAX_CONNECTIONS,
    log: Annotated[Path | None, typer.Option(
        help="Decision log, one JSON line per request (appended) [default: "
             "$SIDECAR_GATE_LOG, else stderr].", envvar="SIDECAR_GATE_LOG")] = None,
    strict: Annotated[bool, typer.Option(
        help="Also require each exec's command to start with a configured `exec`.")] = False,
) -> None:
    """Run the Docker API gate: allow exec into the configured containers and nothing else.

    Exit codes: 0 stopped (SIGTERM/SIGINT), 2 usage or I/O error. SIGHUP reloads --config.
    """
    from sidecar_gen.config import find_config
    from sidecar_gen.errors import InputError
    from sidecar_gen.gate.server import Limits
    from sidecar_gen.gate.service import GateOptions, run_gate

    stream = None
    if log is not None:
        try:
            stream = log.open("a", encoding="utf-8", buffering=1)
        except OSError as exc:
            raise InputError(str(log), f"cannot open the decision log: {exc.strerror}") from exc
    options = GateOptions(listen=listen, upstream=upstream, config=find_config(config),
                          workspace=workspace_config, project=project, strict=strict,
                          log=stream, limits=Limits(max_connections=max_connections))
    try:
        code = run_gate(options, ready=lambda address: typer.echo(
            f"sidecar gate: listening on {address}, upstream {upstream}, "
            f"config {options.config}{', strict' if strict else ''}, "
            f"at most {max_connections} connections", err=True))
    finally:
        if stream is not None:
            stream.close()
    raise typer.Exit(code)


@app.command("boot-wrappers", hidden=True)
@handle_errors
def boot_wrappers_command(
    directory: Annotated[Path, typer.Option("--dir", file_okay=False)],
    config: Annotated[Path, typer.Option(dir_okay=False)],
) -> None:
    """install-wrappers for the image's entrypoint: logs one line, never fails the start."""
    from sidecar_gen.wrappers.install import boot_wrappers

    result = boot_wrappers(directory, config)
    if result.ok:
        say(f"sidecar: routed commands: {' '.join(result.commands) or 'none'}", err=True)
        return
    say(f"sidecar: bridge.yaml problem, routed commands will explain it until fixed: "
        f"{result.message}", err=True)
    raise typer.Exit(int(ExitCode.FINDINGS))
