"""`sidecar firewall status`: what `firewall up` recorded, checked against what runs now."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from sidecar_gen.firewall import CHAIN, GITHUB4, GITHUB6, SET4, SET6, STATE_DIR, FirewallError
from sidecar_gen.firewall.state import FirewallState, firewall_disabled, load_state
from sidecar_gen.firewall.system import forwarder_pid, run


def _rules_present(tool: str) -> bool | None:
    try:
        out = run("status", [tool, "-S", "OUTPUT"])
    except FirewallError:
        return None if os.geteuid() != 0 else False
    return f"-A OUTPUT -j {CHAIN}" in out and "-P OUTPUT DROP" in out


def _set_sizes() -> dict[str, int] | None:
    sizes: dict[str, int] = {}
    for name in (SET4, SET6, GITHUB4, GITHUB6):
        try:
            out = run("status", ["ipset", "list", "-t", name])
        except FirewallError:
            continue
        match = re.search(r"Number of entries:\s*(\d+)", out)
        if match:
            sizes[name] = int(match.group(1))
    return sizes or None


def firewall_status(environ: Mapping[str, str] | None = None,
                    state_dir: Path = STATE_DIR) -> FirewallState:
    """Inspect the firewall: rules, set sizes (as root), forwarder, allowed domains."""
    env = os.environ if environ is None else environ
    if firewall_disabled(env):
        return FirewallState("disabled", "disabled by bridge.yaml (sidecar.firewall.enabled: "
                             "false): egress is not filtered")
    status = load_state(state_dir)
    if status is None:
        return FirewallState("unknown", "the firewall was not set up in this container "
                             "(no state file): Claude Code will not start")
    status.forwarder_alive = forwarder_pid(state_dir) is not None
    if os.geteuid() == 0:
        status.rules_v4 = _rules_present("iptables")
        status.rules_v6 = _rules_present("ip6tables") if status.ipv6 else None
        status.set_sizes = _set_sizes()
    if status.state != "enforcing":
        return status
    if not status.forwarder_alive:
        status.state = "degraded"
        status.detail = ("the DNS forwarder is not running: no name resolves; egress is limited "
                         "to addresses resolved before it stopped. Claude Code will not start. "
                         "To fix: docker compose restart claude")
    elif status.rules_v4 is False or status.rules_v6 is False:
        status.state = "degraded"
        status.detail = ("the egress rules are missing. Claude Code will not start. To fix: "
                         "docker compose restart claude")
    else:
        host = (f"TCP {', '.join(map(str, status.host_ports))} on the Docker host"
                if status.host_ports else "the Docker host closed")
        status.detail = (f"egress limited to {len(status.domains)} allowed domain(s), GitHub "
                         f"and the compose network; {host}")
    return status
