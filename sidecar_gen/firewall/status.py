"""`sidecar firewall status`: what `firewall up` recorded, checked against what runs now."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sidecar_gen.firewall import CHAIN, GITHUB4, GITHUB6, SET4, SET6, STATE_DIR, FirewallError
from sidecar_gen.firewall.system import forwarder_pid, run

# state.json's mode -> the state status reports.
_STATES = {"enforce": "enforcing", "lockdown": "lockdown", "isolated": "isolated",
           "open": "open"}


@dataclass
class FirewallStatus:
    """`sidecar firewall status` as data."""

    state: str  # enforcing | lockdown | isolated | open | degraded | disabled | unknown
    detail: str
    forwarder_alive: bool = False
    rules_v4: bool | None = None  # None: not inspectable (needs root)
    rules_v6: bool | None = None
    set_sizes: dict[str, int] | None = None
    domains: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    gateways: list[str] = field(default_factory=list)
    host_ports: list[int] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """True when egress is filtered as configured (or deliberately disabled)."""
        return self.state in ("enforcing", "disabled")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {**asdict(self), "healthy": self.healthy}


def firewall_disabled(environ: Mapping[str, str]) -> bool:
    """True when bridge.yaml turned the firewall off (`SIDECAR_FIREWALL=0`)."""
    return environ.get("SIDECAR_FIREWALL", "1").strip().lower() in ("0", "false", "no", "off")


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
                    state_dir: Path = STATE_DIR) -> FirewallStatus:
    """Inspect the firewall: rules, set sizes (as root), forwarder, allowed domains."""
    env = os.environ if environ is None else environ
    if firewall_disabled(env):
        return FirewallStatus("disabled", "disabled by bridge.yaml (sidecar.firewall.enabled: "
                              "false): egress is not filtered")
    try:
        state = json.loads((state_dir / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = None
    if not isinstance(state, dict):
        return FirewallStatus("unknown", "the firewall was not set up in this container "
                              "(no state file): Claude Code will not start")
    status = FirewallStatus(
        state=_STATES.get(str(state.get("mode")), "unknown"),
        detail=str(state.get("message") or ""),
        forwarder_alive=forwarder_pid(state_dir) is not None,
        domains=[str(d) for d in state.get("domains") or []],
        networks=[str(n) for n in state.get("networks") or []],
        gateways=[str(g) for g in state.get("gateways") or []],
        host_ports=[int(p) for p in state.get("host_ports") or [] if isinstance(p, int)],
    )
    if os.geteuid() == 0:
        status.rules_v4 = _rules_present("iptables")
        status.rules_v6 = _rules_present("ip6tables") if state.get("ipv6") else None
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
