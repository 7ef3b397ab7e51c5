"""`sidecar firewall up`: set the firewall up at container start, and fail closed.

Order: the plan (networks, the Docker host, host ports), the NET_ADMIN check, the allowlist,
then one `ipset restore`, one `iptables-restore`, one `ip6tables-restore` and the forwarder.
On any failure: the lockdown ruleset (compose networks only); when even that cannot load, the
default routes are removed; when that fails too, egress is open, and the result says so. In
every case but "enforcing" the readiness check keeps Claude Code from starting. The options
come from the environment through `state.OPTIONS`; the result is a `state.FirewallState`.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import time
from collections.abc import Mapping
from pathlib import Path

from sidecar_gen.firewall import RESOLV_CONF, STATE_DIR, FirewallError
from sidecar_gen.firewall.allowlist import load_domains, with_github
from sidecar_gen.firewall.networks import attached_networks, gateways, route_gateways
from sidecar_gen.firewall.rulesets import (
    RESOLV_MARK,
    dnsmasq_config,
    family_plans,
    ipset_script,
    nameservers,
    resolv_conf,
    ruleset,
)
from sidecar_gen.firewall.state import OPTIONS, FirewallState, read_option, save_state
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


def _plan(env: Mapping[str, str], result: FirewallState) -> None:
    # In table order: the networks come first, so even a bad option after them leaves the
    # lockdown rules the compose networks to open.
    for option in OPTIONS:
        value = read_option(option, env)
        if option.name != "networks":
            setattr(result, option.name, value)
            continue
        result.networks = (attached_networks(run("networks", ["ip", "-j", "addr", "show"]))
                           if value == "auto" else value)
        routed = route_gateways(_read("/proc/net/route"),
                                _read("/proc/net/ipv6_route") if result.ipv6 else "")
        result.gateways = gateways(result.networks, routed)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise FirewallError("networks", f"{path}: {exc.strerror or 'cannot read'}") from None


def dns_ids() -> tuple[int, str]:
    """The forwarder user's uid and group name."""
    try:
        entry = pwd.getpwnam(DNS_USER)
    except KeyError:
        raise FirewallError("forwarder", f"user {DNS_USER} does not exist",
                            "rebuild the image") from None
    return entry.pw_uid, grp.getgrgid(entry.pw_gid).gr_name


def write_private(path: Path, text: str) -> None:
    """Write one of the firewall's files atomically (root's folder, readable by all)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    write_atomic(path, text, mode=0o644)


def _enforce(result: FirewallState, state_dir: Path) -> None:
    dns_uid, dns_group = dns_ids()
    plan4, plan6 = family_plans(result)
    run("ipset", ["ipset", "restore"], ipset_script())
    run("iptables", ["iptables-restore"], ruleset(4, "enforcing", plan4, dns_uid))
    if result.ipv6:
        run("ip6tables", ["ip6tables-restore"], ruleset(6, "enforcing", plan6, dns_uid))
    try:
        current = RESOLV_CONF.read_text(encoding="utf-8")
    except OSError as exc:
        raise FirewallError(str(RESOLV_CONF), exc.strerror or "cannot read") from None
    saved = state_dir / "resolv.conf.docker"
    if RESOLV_MARK in current and saved.exists():
        current = saved.read_text(encoding="utf-8")  # a restart that kept our rewritten file
    else:
        write_private(saved, current)
    conf = state_dir / "dnsmasq.conf"
    write_private(conf, dnsmasq_config(with_github(result.domains), state_dir,
                                        group=dns_group, upstreams=nameservers(current)))
    stop_forwarder(state_dir)
    (state_dir / "dnsmasq.pid").unlink(missing_ok=True)
    (state_dir / "forwarder.addr").unlink(missing_ok=True)  # the first address (reload.py)
    run("forwarder", ["dnsmasq", f"--conf-file={conf}"])
    if forwarder_pid(state_dir) is None:
        raise FirewallError("forwarder", "dnsmasq exited right after starting")
    try:
        # Docker bind-mounts resolv.conf: rewrite it in place, a rename would fail.
        RESOLV_CONF.write_text(resolv_conf(current), encoding="utf-8")
    except OSError as exc:
        raise FirewallError(str(RESOLV_CONF), exc.strerror or "cannot write") from None


def _lockdown(result: FirewallState) -> None:
    plan4, plan6 = family_plans(result)
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
                state_dir: Path = STATE_DIR) -> FirewallState:
    """Set the firewall up; on any failure block egress as well as the kernel lets us.

    Never raises for a failed step: the result's state and message say what holds.
    """
    env = os.environ if environ is None else environ
    start = time.monotonic()
    result = FirewallState("enforcing", ipv6=ipv6_available())
    try:
        _plan(env, result)
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
            result.state = "lockdown"
        except FirewallError as again:
            result.error = again.message
            try:
                _isolate(result.ipv6)
                result.state = "isolated"
            except FirewallError:
                result.state = "open"
    result.seconds = time.monotonic() - start
    save_state(state_dir, result)
    return result

