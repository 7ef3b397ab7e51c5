"""`sidecar firewall reload`: apply a new approved allowlist to the running firewall, in place.

Run as root in the claude container (the host's `sidecar net allow` execs it through the
Engine API; the agent cannot: it is not root, and the gate refuses exec into claude). The rules
stay loaded throughout, so there is no moment of open egress, and established flows keep their
connmark, so none breaks. Order:

1. the new allowlist is read strictly (any problem: nothing changes, the old one holds);
2. a new forwarder starts on the address the old one does not use (`rulesets.FORWARDERS`,
   both in resolv.conf): from then on both answer;
3. its pid file replaces the old one's (the readiness check follows it), then the old forwarder
   stops: a resolver finding no one at the old address asks the new one at once;
4. when names were removed, the allowed-address sets are emptied (the new forwarder refills
   them as allowed names are looked up again; flows already open are not affected);
5. state.json gets the new list (`firewall status`).

Claude Code and every other process keep running.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from sidecar_gen.firewall import SET4, SET6, STATE_DIR, FirewallError
from sidecar_gen.firewall.allowlist import load_domains, with_github
from sidecar_gen.firewall.apply import dns_ids, write_private
from sidecar_gen.firewall.rulesets import FORWARDERS, dnsmasq_config, nameservers
from sidecar_gen.firewall.state import load_state, save_state
from sidecar_gen.firewall.system import forwarder_pid, run

SLOT_FILE = "forwarder.addr"
NEXT_PID = "dnsmasq.next.pid"
RESTART = "restart the container (docker compose restart claude)"


@dataclass(frozen=True)
class Reloaded:
    """What a reload did."""

    domains: list[str]
    added: list[str]
    removed: list[str]
    listen: str
    pid: int
    seconds: float


def current_listen(state_dir: Path = STATE_DIR) -> str:
    """The address the running forwarder listens on (the first one unless a reload moved it)."""
    with contextlib.suppress(OSError):
        text = (state_dir / SLOT_FILE).read_text(encoding="ascii").strip()
        if text in FORWARDERS:
            return text
    return FORWARDERS[0]


def _wait_gone(pid: int, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return
        if stat.rpartition(") ")[2].startswith("Z"):
            return
        time.sleep(0.01)


def firewall_reload(domains_file: Path, state_dir: Path = STATE_DIR) -> Reloaded:
    """Swap the forwarder (and, when names were removed, empty the allowed sets) for the
    allowlist in `domains_file`; FirewallError when the firewall does not enforce or a step
    fails (the running forwarder then keeps the old list)."""
    start = time.monotonic()
    state = load_state(state_dir)
    if state is None or not state.enforcing:
        raise FirewallError("reload", "the firewall is not enforcing in this container", RESTART)
    old_pid = forwarder_pid(state_dir)
    if old_pid is None:
        raise FirewallError("reload", "the DNS forwarder is not running", RESTART)
    domains = load_domains(domains_file)
    listen = FORWARDERS[1] if current_listen(state_dir) == FORWARDERS[0] else FORWARDERS[0]
    _, dns_group = dns_ids()
    try:
        saved = (state_dir / "resolv.conf.docker").read_text(encoding="utf-8")
    except OSError as exc:
        raise FirewallError("reload", f"resolv.conf.docker: {exc.strerror}", RESTART) from None
    conf = state_dir / "dnsmasq.next.conf"
    write_private(conf, dnsmasq_config(with_github(domains), state_dir, group=dns_group,
                                       upstreams=nameservers(saved), listen=listen,
                                       pid_name=NEXT_PID))
    (state_dir / NEXT_PID).unlink(missing_ok=True)
    # Fails (and changes nothing) when the address is taken: the old forwarder keeps serving.
    run("reload", ["dnsmasq", f"--conf-file={conf}"])
    try:
        pid = int((state_dir / NEXT_PID).read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        raise FirewallError("reload", "the new forwarder did not start", RESTART) from None
    os.replace(state_dir / NEXT_PID, state_dir / "dnsmasq.pid")
    os.replace(conf, state_dir / "dnsmasq.conf")
    write_private(state_dir / SLOT_FILE, listen + "\n")
    with contextlib.suppress(OSError):
        os.kill(old_pid, 15)
    _wait_gone(old_pid)
    if forwarder_pid(state_dir) != pid:
        raise FirewallError("reload", "the new forwarder exited right after starting", RESTART)
    removed = [name for name in state.domains if name not in domains]
    added = [name for name in domains if name not in state.domains]
    if removed:
        # Addresses of a removed name would otherwise stay open; open flows keep their mark.
        for name in (SET4, SET6) if state.ipv6 else (SET4,):
            run("reload", ["ipset", "flush", name])
    state.domains = domains
    save_state(state_dir, state)
    return Reloaded(domains, added, removed, listen, pid, time.monotonic() - start)
