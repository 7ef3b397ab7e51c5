"""The Claude container's egress firewall (README, "Network firewall").

dnsmasq is the container's only resolver; it forwards only allowed names (and their subdomains)
to Docker's embedded DNS, answers everything else NXDOMAIN, and adds every address it hands out
to an ipset (IPv4 and IPv6). iptables and ip6tables accept loopback, the compose networks, the
ipset members (but never a special-purpose address, unless declared private: no DNS answer
opens the Docker host's other addresses or the LAN) and the listed TCP ports of the Docker host,
and REJECT everything else. Every flow the rules accept is connmarked and only marked flows
stay open, so nothing opened before the rules loaded survives them; new incoming flows are
accepted from the compose networks only. Set-up is batched and fails closed: when a step fails, a
lockdown ruleset (compose networks only) replaces it; when even that cannot load, the default
routes are removed; and in every case but "enforcing" Claude Code does not start.

Modules, one concern each: `allowlist` (allowed-domains.txt), `networks` (networks, gateways,
host ports), `state` (the options, each one environment variable, in one table; the state
`firewall up` records and `firewall status` reports), `rulesets` (the rulesets, ipsets and
forwarder configuration as text), `system` (subprocesses, the forwarder's process), `apply`
(`firewall up`), `status` (`firewall status`), `github` (GitHub's published ranges). This
module holds the names they share; it imports nothing heavy, so `firewall status` stays fast.

Owns: the firewall in the image, and the allowlist's toolchain presets render writes it from
(`toolchains`). May import: `errors`, `fsutil`, `templating`, `runtime`, `model` (for typing
only).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sidecar_gen.errors import ExitCode, SidecarError
from sidecar_gen.runtime.names import DOMAINS_NAME, FIREWALL_STATE_DIR, POLICY_DIR, POLICY_DIR_ENV

CHAIN = "SIDECAR-EGRESS"
INGRESS_CHAIN = "SIDECAR-INGRESS"
ALLOW_CHAIN = "SIDECAR-ALLOW"
# Special-purpose destinations (private, loopback, multicast, ...): no DNS answer opens them.
SPECIAL_CHAIN = "SIDECAR-SPECIAL"
# Refused packets pass here first: their destination goes into DROP4/DROP6 (the recorder's).
RECORD_CHAIN = "SIDECAR-RECORD"
DROP4 = "sidecar-drop4"
DROP6 = "sidecar-drop6"
# The connmark of every flow our rules accepted; unmarked flows (opened before) are cut.
CONNMARK = "0x5ec"
SET4 = "sidecar-allow4"
SET6 = "sidecar-allow6"
GITHUB4 = "sidecar-github4"
GITHUB6 = "sidecar-github6"
EMBEDDED_DNS = "127.0.0.11"
STATE_DIR = Path(FIREWALL_STATE_DIR)
FORWARDER_PID = STATE_DIR / "dnsmasq.pid"
RESOLV_CONF = Path("/etc/resolv.conf")
# GitHub names always go through the forwarder; its published ranges are added when reachable.
GITHUB_DOMAINS = ("github.com", "githubusercontent.com")

RESTART_FIX = ("restart the container (docker compose restart claude); if it happens again, "
               "see `docker compose exec claude sidecar firewall status`")


class FirewallError(SidecarError):
    """A firewall step failed (the firewall then fails closed); `fix` says what to do."""

    def __init__(self, step: str, reason: str, fix: str = RESTART_FIX) -> None:
        super().__init__(f"{step}: {reason}", exit_code=ExitCode.FINDINGS)
        self.step = step
        self.reason = reason
        self.fix = fix


def policy_domains_file(environ: Mapping[str, str] | None = None) -> Path:
    """`$SIDECAR_POLICY_DIR/allowed-domains.txt` (default /run/sidecar/policy): the approved one."""
    env = os.environ if environ is None else environ
    return Path(env.get(POLICY_DIR_ENV) or POLICY_DIR) / DOMAINS_NAME
