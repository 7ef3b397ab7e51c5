"""`sidecar firewall`: the Claude container's egress firewall (run inside the container)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sidecar_gen.cli.app import app, handle_errors
from sidecar_gen.cli.output import say
from sidecar_gen.errors import ExitCode

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
        help="allowed-domains.txt [default: the approved one, "
             "$SIDECAR_POLICY_DIR/allowed-domains.txt, /run/sidecar/policy by default].",
        show_default=False)] = Path(""),
) -> None:
    """Set the firewall up (root, at container start); on any failure block egress instead.

    Prints one line saying what holds. Exit codes: 0 enforcing; 1 not enforcing (failed
    closed, or egress open when not even the lockdown could load): Claude Code will not start.
    """
    from sidecar_gen.firewall import policy_domains_file
    from sidecar_gen.firewall.apply import firewall_up

    result = firewall_up(domains if domains != Path("") else policy_domains_file())
    say(f"sidecar: {result.message()}", err=True)
    if not result.enforcing:
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

    from sidecar_gen.firewall.status import firewall_status

    status = firewall_status()
    if as_json:
        typer.echo(json.dumps(status.to_dict(), indent=2))
    else:
        def flag(value: bool | None) -> str:
            return "unknown (run as root)" if value is None else ("present" if value else "MISSING")

        say(f"state:      {status.state}: {status.detail}")
        say(f"forwarder:  {'running' if status.forwarder_alive else 'NOT running'}")
        say(f"rules:      IPv4 {flag(status.rules_v4)}, IPv6 {flag(status.rules_v6)}")
        sizes = ("unknown (run as root)" if status.set_sizes is None else
                 ", ".join(f"{k} {v}" for k, v in sorted(status.set_sizes.items())))
        say(f"sets:       {sizes}")
        say(f"networks:   {', '.join(status.networks) or '-'}")
        say(f"private:    {', '.join(status.private_networks) or '-'}")
        ports = ", ".join(map(str, status.host_ports)) or "none"
        say(f"host:       {', '.join(status.gateways) or '-'} (open TCP ports: {ports})")
        say(f"domains:    {', '.join(status.domains) or '-'}")
    raise typer.Exit(0 if status.healthy else int(ExitCode.FINDINGS))


@firewall_app.command("github", hidden=True)
@handle_errors
def firewall_github_command() -> None:
    """Add GitHub's published address ranges (api.github.com/meta) to the allowed sets."""
    from sidecar_gen.firewall.github import add_github_ranges, fetch_github_meta

    count = add_github_ranges(fetch_github_meta())
    typer.echo(f"sidecar: firewall: {count} GitHub address range(s) allowed", err=True)


@firewall_app.command("record", hidden=True)
@handle_errors
def firewall_record_command() -> None:
    """Record refused and allowed egress until killed (root; the entrypoint starts it)."""
    from sidecar_gen.firewall.recorder import record_forever

    record_forever()


@firewall_app.command("reload")
@handle_errors
def firewall_reload_command(
    domains: Annotated[Path, typer.Option(
        help="allowed-domains.txt [default: the approved one, "
             "$SIDECAR_POLICY_DIR/allowed-domains.txt].", show_default=False)] = Path(""),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Apply the approved allowlist to the running firewall, in place (root; `sidecar net
    allow` on the host runs it): no moment of open egress, open flows and processes kept.

    Exit codes: 0 reloaded; 1 not reloaded (the running firewall keeps its list).
    """
    import json
    from dataclasses import asdict

    from sidecar_gen.firewall import policy_domains_file
    from sidecar_gen.firewall.reload import firewall_reload

    done = firewall_reload(domains if domains != Path("") else policy_domains_file())
    if as_json:
        typer.echo(json.dumps(asdict(done)))
    else:
        say(f"sidecar: firewall reloaded: {len(done.domains)} allowed domain(s) (+{len(done.added)}"
            f" -{len(done.removed)}), forwarder {done.listen} in {done.seconds * 1000:.0f} ms",
            err=True)
