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
    from sidecar_gen.scaffold import run_init
    from sidecar_gen.targets import Status

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
    if any(item.status is Status.SKIPPED for item in result.files):
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
        typer.echo(f"{label} {change.path}{reason}")
        if diff:
            typer.echo(change.diff(), nl=False)
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    if result.skipped or (check and result.would_change):
        raise typer.Exit(int(ExitCode.FINDINGS))


# -- dispatcher: install-wrappers, exec (issue 3) ---------------------------------------------


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
    from sidecar_gen.findings import Finding
    from sidecar_gen.reporters import format_text
    from sidecar_gen.wrappers import install_wrappers

    try:
        report = install_wrappers(directory, config)
    except ConfigError as exc:
        findings = [f for f in exc.findings if isinstance(f, Finding)]
        if findings:
            typer.echo(format_text(findings, [exc.path], color=use_color(sys.stderr)),
                       err=True, nl=False)
        raise
    typer.echo(f"wrappers in {report.directory} for {report.config} "
               f"(launcher {report.launcher_status})")
    for label, names in (("created", report.created), ("removed", report.removed),
                         ("ok", report.ok)):
        for name in names:
            typer.echo(f"{label:<8} {name}")
    for name, reason in report.skipped:
        typer.echo(f"skipped  {name} ({reason})")
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


# -- Docker API gate: proxy (issue 4) ----------------------------------------------------------


@app.command("proxy")
@handle_errors
def proxy_command(
    listen: Annotated[str, typer.Option(
        help="Where to listen: tcp://HOST:PORT or unix:///path.")] = "tcp://0.0.0.0:2375",
    upstream: Annotated[str, typer.Option(
        help="The real engine: unix:///path/to/docker.sock.")] = "unix:///var/run/docker.sock",
    config: Annotated[Path | None, typer.Option(
        help="bridge.yaml [default: $BRIDGE_CONFIG, else $SIDECAR_CONFIG_DIR/bridge.yaml, "
             "else ./.sidecar/bridge.yaml]; re-read when it changes.")] = None,
    log: Annotated[Path | None, typer.Option(
        help="Decision log, one JSON line per request (appended) [default: "
             "$SIDECAR_GATE_LOG, else stderr].", envvar="SIDECAR_GATE_LOG")] = None,
    strict: Annotated[bool, typer.Option(
        help="Also require each exec's command to start with a configured `exec`.")] = False,
) -> None:
    """Run the Docker API gate: allow exec into the configured containers and nothing else.

    Exit codes: 0 stopped (SIGTERM/SIGINT), 1 invalid bridge.yaml, 2 usage or I/O error.
    """
    from sidecar_gen.config import find_config
    from sidecar_gen.errors import InputError
    from sidecar_gen.gate import GateOptions, run_gate

    stream = None
    if log is not None:
        try:
            stream = log.open("a", encoding="utf-8", buffering=1)
        except OSError as exc:
            raise InputError(str(log), f"cannot open the decision log: {exc.strerror}") from exc
    options = GateOptions(listen=listen, upstream=upstream, config=find_config(config),
                          strict=strict, log=stream)
    try:
        code = run_gate(options, ready=lambda address: typer.echo(
            f"sidecar gate: listening on {address}, upstream {upstream}, "
            f"config {options.config}{', strict' if strict else ''}", err=True))
    finally:
        if stream is not None:
            stream.close()
    raise typer.Exit(code)


# -- the Claude image and its egress firewall (issues 5 and 6) ---------------------------------

firewall_app = typer.Typer(
    name="firewall",
    help="The Claude container's egress firewall (run inside the container).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(firewall_app)


@firewall_app.command("up")
@handle_errors
def firewall_up_command(
    domains: Annotated[Path, typer.Option(
        help="allowed-domains.txt [default: $SIDECAR_CONFIG_DIR/allowed-domains.txt].",
        show_default=False)] = Path(""),
) -> None:
    """Set the firewall up (root, at container start); on any failure block egress instead.

    Exit codes: 0 enforcing; 1 failed closed (egress blocked except the compose network);
    3 not even the lockdown rules could be loaded.
    """
    from sidecar_gen.firewall import firewall_up

    if domains == Path(""):
        base = os.environ.get("SIDECAR_CONFIG_DIR") or "/workspace/.sidecar"
        domains = Path(base) / "allowed-domains.txt"
    result = firewall_up(domains)
    if result.mode == "enforce":
        typer.echo(f"sidecar: firewall enforcing: {len(result.domains)} allowed domain(s) + "
                   f"GitHub, networks {', '.join(result.networks) or 'none'}"
                   f"{'' if result.ipv6 else ' (no IPv6)'}, ready in "
                   f"{result.seconds * 1000:.0f} ms", err=True)
        return
    typer.echo(f"sidecar: FIREWALL FAILED CLOSED: {result.reason}; egress is blocked except the "
               f"compose network (see: sidecar firewall status)", err=True)
    raise typer.Exit(int(ExitCode.FINDINGS))


@firewall_app.command("status")
@handle_errors
def firewall_status_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Report the firewall's state: rules, set sizes (as root), forwarder, allowed domains.

    Exit codes: 0 enforcing (or disabled by bridge.yaml), 1 anything else.
    """
    import json

    from sidecar_gen.firewall import firewall_status

    status = firewall_status()
    if as_json:
        typer.echo(json.dumps(status.to_dict(), indent=2))
    else:
        def flag(value: bool | None) -> str:
            return "unknown (run as root)" if value is None else ("present" if value else "MISSING")

        typer.echo(f"state:      {status.state}: {status.detail}")
        typer.echo(f"forwarder:  {'running' if status.forwarder_alive else 'NOT running'}")
        typer.echo(f"rules:      IPv4 {flag(status.rules_v4)}, IPv6 {flag(status.rules_v6)}")
        sizes = ("unknown (run as root)" if status.set_sizes is None else
                 ", ".join(f"{k} {v}" for k, v in sorted(status.set_sizes.items())))
        typer.echo(f"sets:       {sizes}")
        typer.echo(f"networks:   {', '.join(status.networks) or '-'}")
        typer.echo(f"domains:    {', '.join(status.domains) or '-'}")
    raise typer.Exit(0 if status.healthy else int(ExitCode.FINDINGS))


@firewall_app.command("github", hidden=True)
@handle_errors
def firewall_github_command() -> None:
    """Add GitHub's published address ranges (api.github.com/meta) to the allowed sets."""
    from sidecar_gen.firewall import add_github_ranges, fetch_github_meta

    count = add_github_ranges(fetch_github_meta())
    typer.echo(f"sidecar: firewall: {count} GitHub address range(s) allowed", err=True)


@app.command("boot-wrappers", hidden=True)
@handle_errors
def boot_wrappers_command(
    directory: Annotated[Path, typer.Option("--dir", file_okay=False)],
    config: Annotated[Path, typer.Option(dir_okay=False)],
) -> None:
    """install-wrappers for the image's entrypoint: logs one line, never fails the start."""
    from sidecar_gen.image import boot_wrappers

    result = boot_wrappers(directory, config)
    if result.ok:
        typer.echo(f"sidecar: routed commands: {' '.join(result.commands) or 'none'}", err=True)
        return
    typer.echo(f"sidecar: bridge.yaml problem, routed commands will explain it until fixed: "
               f"{result.message}", err=True)
    raise typer.Exit(int(ExitCode.FINDINGS))


@app.command("render-entrypoint", hidden=True)
@handle_errors
def render_entrypoint_command(
    uid: Annotated[int, typer.Option(help="The image's CLAUDE_UID.")] = 1000,
    gid: Annotated[int, typer.Option(help="The image's CLAUDE_GID.")] = 1000,
) -> None:
    """Print the image's entrypoint script (rendered at image build time)."""
    from sidecar_gen.image import ImageLayout, render_entrypoint

    typer.echo(render_entrypoint(ImageLayout(uid=uid, gid=gid)), nl=False)


def main() -> None:
    """Console entry point."""
    app()
