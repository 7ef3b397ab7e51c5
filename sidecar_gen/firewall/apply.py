"""`sidecar firewall up`: set the firewall up at container start, and fail closed.

Order: the plan (networks, the Docker host, host ports), the NET_ADMIN check, the allowlist,
then one `ipset restore`, one `iptables-restore`, one `ip6tables-restore` and the forwarder.
On any failure: the lockdown ruleset (compose networks only); when even that cannot load, the
default routes are removed; when that fails too, egress is open, and the result says so. In
every case but "enforce" the readiness check keeps Claude Code from starting.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sidecar_gen.firewall import RESOLV_CONF, STATE_DIR, FirewallError
from sidecar_gen.firewall.allowlist import load_domains, with_github
from sidecar_gen.firewall.networks import (
    PRIVATE_FIX,
    attached_networks,
    gateways,
    parse_host_ports,
    parse_networks,
    route_gateways,
    split_families,
)
from sidecar_gen.firewall.rulesets import (
    RESOLV_MARK,
    Plan,
    dnsmasq_config,
    ipset_script,
    nameservers,
    resolv_conf,
    ruleset,
)
from sidecar_gen.firewall.system import (
    CAP_NET_ADMIN,
    forwarder_pid,
    has_capability,
    ipv6_available,
    run,
    stop_forwarder,
)
from sidecar_gen.fsutil import write_atomic
from sidecar_gen.runtime.names import DNS_USER

NET_ADMIN_FIX = ("add `cap_add: [NET_ADMIN, NET_RAW]` to the claude service (`sidecar render` "
                 "does), or turn the firewall off in bridge.yaml "
                 "(sidecar.firewall.enabled: false)")
WONT_START = "Claude Code will not start"


@dataclass
class UpResult:
    """What `firewall up` did; `mode` is enforce, lockdown, isolated or open."""

    mode: str
    reason: str = ""
    fix: str = ""
    error: str = ""  # why not even the lockdown rules loaded
    domains: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    gateways: list[str] = field(default_factory=list)
    host_ports: list[int] = field(default_factory=list)
    private: list[str] = field(default_factory=list)
    ipv6: bool = True
    seconds: float = 0.0

    @property
    def enforcing(self) -> bool:
        """True when egress is filtered by the allowlist."""
        return self.mode == "enforce"

    def message(self) -> str:
        """The one log line (without the `sidecar: ` prefix) saying what happened."""
        if self.enforcing:
            host = (f"Docker host TCP {', '.join(map(str, self.host_ports))}"
                    if self.host_ports else "Docker host closed")
            return (f"firewall enforcing: {len(self.domains)} allowed domain(s) + GitHub, "
                    f"networks {', '.join(self.networks) or 'none'}, {host}"
                    f"{'' if self.ipv6 else ' (no IPv6)'}, ready in "
                    f"{self.seconds * 1000:.0f} ms")
        effect = {
            "lockdown": "egress is blocked except the compose network",
            "isolated": ("no rules could be loaded, so the default routes were removed: only "
                         "the compose network is reachable"),
        }.get(self.mode, "egress is NOT blocked")
        head = "FIREWALL NOT ENFORCING" if self.mode == "open" else "FIREWALL FAILED CLOSED"
        return f"{head}: {self.reason}; {effect}. {WONT_START}. To fix: {self.fix}"


def _plan(env: Mapping[str, str], ipv6: bool, result: UpResult) -> None:
    spec = env.get("SIDECAR_FIREWALL_NETWORKS", "auto").strip() or "auto"
    if spec == "auto":
        result.networks = attached_networks(run("networks", ["ip", "-j", "addr", "show"]))
    else:
        result.networks = parse_networks(spec)
    routed = route_gateways(_read("/proc/net/route"),
                            _read("/proc/net/ipv6_route") if ipv6 else "")
    result.gateways = gateways(result.networks, routed)
    result.host_ports = parse_host_ports(env.get("SIDECAR_FIREWALL_HOST_PORTS", ""))
    result.private = parse_networks(env.get("SIDECAR_FIREWALL_PRIVATE_NETWORKS", ""),
                                    "SIDECAR_FIREWALL_PRIVATE_NETWORKS", PRIVATE_FIX)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise FirewallError("networks", f"{path}: {exc.strerror or 'cannot read'}") from None


def _family_plans(result: UpResult) -> tuple[Plan, Plan]:
    nets4, nets6 = split_families(result.networks)
    gws4, gws6 = split_families(result.gateways)
    private4, private6 = split_families(result.private)
    return (Plan(nets4, gws4, result.host_ports, private4),
            Plan(nets6, gws6, result.host_ports, private6))


def _dns_ids() -> tuple[int, str]:
    try:
        entry = pwd.getpwnam(DNS_USER)
    except KeyError:
        raise FirewallError("forwarder", f"user {DNS_USER} does not exist",
                            "rebuild the image") from None
    return entry.pw_uid, grp.getgrgid(entry.pw_gid).gr_name


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    write_atomic(path, text, mode=0o644)


def _enforce(result: UpResult, state_dir: Path) -> None:
    dns_uid, dns_group = _dns_ids()
    plan4, plan6 = _family_plans(result)
    run("ipset", ["ipset", "restore"], ipset_script())
    run("iptables", ["iptables-restore"], ruleset(4, "enforce", plan4, dns_uid))
    if result.ipv6:
        run("ip6tables", ["ip6tables-restore"], ruleset(6, "enforce", plan6, dns_uid))
    try:
        current = RESOLV_CONF.read_text(encoding="utf-8")
    except OSError as exc:
        raise FirewallError(str(RESOLV_CONF), exc.strerror or "cannot read") from None
    saved = state_dir / "resolv.conf.docker"
    if RESOLV_MARK in current and saved.exists():
        current = saved.read_text(encoding="utf-8")  # a restart that kept our rewritten file
    else:
        _write_private(saved, current)
    conf = state_dir / "dnsmasq.conf"
    _write_private(conf, dnsmasq_config(with_github(result.domains), state_dir,
                                        group=dns_group, upstreams=nameservers(current)))
    stop_forwarder(state_dir)
    (state_dir / "dnsmasq.pid").unlink(missing_ok=True)
    run("forwarder", ["dnsmasq", f"--conf-file={conf}"])
    if forwarder_pid(state_dir) is None:
        raise FirewallError("forwarder", "dnsmasq exited right after starting")
    try:
        # Docker bind-mounts resolv.conf: rewrite it in place, a rename would fail.
        RESOLV_CONF.write_text(resolv_conf(current), encoding="utf-8")
    except OSError as exc:
        raise FirewallError(str(RESOLV_CONF), exc.strerror or "cannot write") from None


def _lockdown(result: UpResult) -> None:
    plan4, plan6 = _family_plans(result)
    run("lockdown", ["iptables-restore"], ruleset(4, "lockdown", plan4, 0))
    if result.ipv6:
        run("lockdown", ["ip6tables-restore"], ruleset(6, "lockdown", plan6, 0))


def _isolate(ipv6: bool) -> None:
    """The last resort: without default routes only the attached networks stay reachable."""
    families = ["-4", "-6"] if ipv6 else ["-4"]
    for family in families:
        with contextlib.suppress(FirewallError):
            run("routes", ["ip", family, "route", "flush", "default"])
    if route_gateways(_read("/proc/net/route"), _read("/proc/net/ipv6_route") if ipv6 else ""):
        raise FirewallError("routes", "the default routes could not be removed")


def firewall_up(domains_file: Path, environ: Mapping[str, str] | None = None,
                state_dir: Path = STATE_DIR) -> UpResult:
    """Set the firewall up; on any failure block egress as well as the kernel lets us.

    Never raises for a failed step: the result's mode and message say what holds.
    """
    env = os.environ if environ is None else environ
    start = time.monotonic()
    result = UpResult(mode="enforce", ipv6=ipv6_available())
    try:
        _plan(env, result.ipv6, result)
        if not has_capability(CAP_NET_ADMIN):
            raise FirewallError("capabilities", "the container lacks the NET_ADMIN capability",
                                NET_ADMIN_FIX)
        result.domains = load_domains(domains_file)
        _enforce(result, state_dir)
    except FirewallError as exc:
        result.reason, result.fix = exc.message, exc.fix
        stop_forwarder(state_dir)
        try:
            _lockdown(result)
            result.mode = "lockdown"
        except FirewallError as again:
            result.error = again.message
            try:
                _isolate(result.ipv6)
                result.mode = "isolated"
            except FirewallError:
                result.mode = "open"
    result.seconds = time.monotonic() - start
    save_state(state_dir, result)
    return result


def save_state(state_dir: Path, result: UpResult) -> None:
    """Record the result for `firewall status` (root-owned, read by anyone)."""
    data = {**asdict(result), "message": result.message(), "started": time.time()}
    # Without it status reports "unknown": never a reason to stop the container.
    with contextlib.suppress(OSError):
        _write_private(state_dir / "state.json", json.dumps(data, indent=1) + "\n")
