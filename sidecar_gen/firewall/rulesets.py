"""The firewall's texts, rendered from `templates/firewall/`: rulesets, ipsets, forwarder config.

Pure functions of their arguments: `apply` feeds them to iptables-restore, ipset and dnsmasq.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sidecar_gen import templating
from sidecar_gen.firewall import (
    ALLOW_CHAIN,
    CHAIN,
    CONNMARK,
    DROP4,
    DROP6,
    EMBEDDED_DNS,
    GITHUB4,
    GITHUB6,
    INGRESS_CHAIN,
    RECORD_CHAIN,
    SET4,
    SET6,
    SPECIAL_CHAIN,
    STATE_DIR,
)
from sidecar_gen.firewall.allowlist import is_ip
from sidecar_gen.firewall.networks import SPECIAL4, SPECIAL6, split_families
from sidecar_gen.firewall.state import FirewallState
from sidecar_gen.runtime.names import DNS_USER

RESOLV_MARK = "# claude-sidecar: the egress firewall's DNS forwarder"
# The forwarder listens on one of these; a reload moves it to the other (no moment without one).
FORWARDERS = ("127.0.0.1", "127.0.0.2")


@dataclass(frozen=True)
class FamilyPlan:
    """What one family's ruleset opens, besides loopback and the allowed names' addresses."""

    networks: Sequence[str] = ()  # the compose networks (every port)
    gateways: Sequence[str] = ()  # the Docker host's addresses on them (closed but for ports)
    host_ports: Sequence[int] = field(default_factory=tuple)  # TCP ports open on the gateways
    private_networks: Sequence[str] = ()  # special-purpose networks a DNS answer may open


def family_plans(state: FirewallState) -> tuple[FamilyPlan, FamilyPlan]:
    """The IPv4 and the IPv6 plan of what `firewall up` read and found."""
    nets4, nets6 = split_families(state.networks)
    gws4, gws6 = split_families(state.gateways)
    private4, private6 = split_families(state.private_networks)
    return (FamilyPlan(nets4, gws4, state.host_ports, private4),
            FamilyPlan(nets6, gws6, state.host_ports, private6))


def ruleset(family: int, mode: str, plan: FamilyPlan, dns_uid: int) -> str:
    """The iptables-restore (family 4) or ip6tables-restore (6) text; mode is "enforcing" or
    "lockdown" (the compose networks only)."""
    if mode not in ("enforcing", "lockdown"):
        raise ValueError(f"no ruleset for mode {mode!r}")
    template = "firewall/rules.v4.j2" if family == 4 else "firewall/rules.v6.j2"
    return templating.render(template, mode=mode, networks=list(plan.networks),
                             gateways=list(plan.gateways), host_ports=list(plan.host_ports),
                             private_networks=list(plan.private_networks),
                             special=list(SPECIAL4 if family == 4 else SPECIAL6),
                             special_chain=SPECIAL_CHAIN, dns_uid=dns_uid, chain=CHAIN,
                             ingress=INGRESS_CHAIN,
                             allow=ALLOW_CHAIN, mark=CONNMARK, set4=SET4, set6=SET6,
                             github4=GITHUB4, github6=GITHUB6, record=RECORD_CHAIN, drop4=DROP4,
                             drop6=DROP6)


def ipset_script() -> str:
    """The `ipset restore` text creating (or emptying) the four sets."""
    return templating.render("firewall/ipsets.j2", set4=SET4, set6=SET6, github4=GITHUB4,
                             github6=GITHUB6, drop4=DROP4, drop6=DROP6)


def dnsmasq_config(domains: Sequence[str], state_dir: Path = STATE_DIR, user: str = DNS_USER,
                   group: str = "nogroup", upstreams: Sequence[str] = (EMBEDDED_DNS,), *,
                   listen: str = FORWARDERS[0], pid_name: str = "dnsmasq.pid",
                   log_queries: bool = True) -> str:
    """The forwarder's configuration for the allowed domains (`listen`: its address, one of
    FORWARDERS; `log_queries`: log every query for the egress recorder)."""
    return templating.render("firewall/dnsmasq.conf.j2", domains=list(domains), user=user,
                             group=group, upstreams=list(upstreams), listen=listen,
                             log_queries=log_queries,
                             pid_file=str(state_dir / pid_name),
                             log_file=str(state_dir / "dnsmasq.log"), set4=SET4, set6=SET6)


def resolv_conf(current: str) -> str:
    """Docker's resolv.conf with the forwarder's two addresses as the only nameservers
    (search/options kept): a reload starts the new forwarder on the address the old one does
    not use, then stops the old one; a resolver that finds no one at the first address asks
    the second at once (the kernel refuses the datagram on the spot)."""
    kept = [line for line in current.splitlines()
            if line.split()[:1] and line.split()[0] in ("search", "options")]
    servers = [f"nameserver {address}" for address in FORWARDERS]
    return "\n".join([RESOLV_MARK, *servers, *kept]) + "\n"


def nameservers(resolv: str) -> list[str]:
    """The forwarder's upstreams: the nameservers Docker wrote (127.0.0.11 on compose networks).

    Scoped IPv6 addresses and our own forwarder are skipped; none left means Docker's DNS.
    """
    out: list[str] = []
    for line in resolv.splitlines():
        words = line.split()
        if (len(words) >= 2 and words[0] == "nameserver" and "%" not in words[1]
                and is_ip(words[1]) and words[1] not in (*FORWARDERS, "::1", *out)):
            out.append(words[1])
    return out or [EMBEDDED_DNS]
