"""Hostile-agent test of the claude container's start: a flow opened before the
firewall's rules load does not survive them.

The firewall's set-up is held (a stand-in `ipset` waits for the test), so the container runs with
no rules at all; as the agent's user, a TCP and a UDP flow are opened to a blocked address and
are seen working. Then the set-up goes on: once the firewall enforces, both flows are cut, the
connection is gone from the kernel's tables, and the server hears nothing more from them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from firewall.conftest import Claude, Internet
from image.minstack import GATED_IPSET

# Opens a TCP (echo, 7) and a UDP (5353) flow to argv[1], then pings both every 0.2 s, logging
# `<proto> echo` per answer and `<proto> cut <error>` when a flow dies, until both are dead.
FLOWS = r"""
import socket, sys, time
host, log = sys.argv[1], open(sys.argv[2], "a", buffering=1)
flows = {}
for proto, port in (("tcp", 7), ("udp", 5353)):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.settimeout(2)
    s.connect((host, port))
    flows[proto] = s
    log.write(f"{proto} open\n")
while flows:
    for proto, s in list(flows.items()):
        try:
            s.send(b"ping")
            if s.recv(64) != b"ping":
                raise ConnectionResetError("closed")
            log.write(f"{proto} echo\n")
        except OSError as exc:
            log.write(f"{proto} cut {type(exc).__name__}\n")
            del flows[proto]
    time.sleep(0.2)
log.write("done\n")
"""


def _wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_flows_opened_before_the_rules_are_cut(start_claude: Callable[..., Claude],
                                               internet: Internet, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    shim = tmp_path / "gated-ipset"
    shim.write_text(GATED_IPSET)
    shim.chmod(0o755)
    claude = start_claude(wait=False, volumes={str(shim): {"bind": "/usr/local/sbin/ipset",
                                                          "mode": "ro"},
                                               str(gate): {"bind": "/gate", "mode": "rw"}})
    _wait_until((gate / "waiting").exists, "the firewall set-up never started")
    blocked, _ = internet.addresses["rogue-inet"]  # not allowed, not a compose network
    log = claude.workspace / "flows.log"
    claude.container.exec_run(["python3", "-c", FLOWS, blocked, "/workspace/flows.log"],
                              user="claude", detach=True)

    def lines() -> list[str]:
        return log.read_text().splitlines() if log.exists() else []

    # Before the rules: both flows really work (several answers each).
    _wait_until(lambda: lines().count("tcp echo") >= 3 and lines().count("udp echo") >= 3,
                f"the flows never worked before the rules loaded: {lines()}")
    assert claude.sh("ss -Htn state established")[1].count(f"{blocked}:7") == 1
    (gate / "open").touch()
    assert claude.health() == (0, "ready: the firewall is enforcing (uid 1000, gid 1000)")
    # Once the rules are in: both flows are cut at their next packet.
    _wait_until(lambda: "done" in lines(), f"a flow survived the firewall: {lines()}")
    cut = [line for line in lines() if " cut " in line]
    assert sorted(line.split()[0] for line in cut) == ["tcp", "udp"], lines()
    assert not any(line.endswith("TimeoutError") for line in cut), cut  # refused, not lost
    # By effect: no TCP connection to the blocked host is left, and a new one is refused.
    assert f"{blocked}:7" not in claude.sh("ss -Htn state established")[1]
    heard_before = internet.servers["rogue-inet"].logs().decode().count("tcp 7")
    code, out = claude.sh(f"curl -sS --connect-timeout 5 telnet://{blocked}:7 </dev/null")
    assert code == 7, out
    assert internet.servers["rogue-inet"].logs().decode().count("tcp 7") == heard_before
