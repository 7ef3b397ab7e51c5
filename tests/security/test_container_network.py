"""Hostile-agent tests of the claude container's egress: IPv6 link-local carries
nothing but neighbour discovery, and the Docker host (the networks' gateways) is closed but for
the TCP ports `sidecar.firewall.host_ports` lists.

Proven by effect: the servers log every connection and datagram they get, and the ones the
agent sent to closed places are not there, while a container without the firewall reaches the
very same ports (the control).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import Any

from firewall.conftest import ECHO_SERVER, Claude, Internet

# One probe per argument `proto,port,interface,address` (interface only for link-local): prints
# `ok` when the echo came back, else the errno's name (a REJECTed TCP connect is ECONNREFUSED, a
# REJECTed UDP send EPERM: both refused on the spot).
PROBE = r"""
import errno, socket, sys
for spec in sys.argv[1:]:
    proto, port, iface, addr = spec.split(",")
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    target = (addr, int(port), 0, socket.if_nametoindex(iface)) if iface else (addr, int(port))
    s = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.settimeout(3)
    try:
        s.connect(target)
        s.send(b"probe")
        print("ok" if s.recv(64) == b"probe" else "bad")
    except OSError as exc:
        print(errno.errorcode.get(exc.errno) or type(exc).__name__)
    finally:
        s.close()
"""


def probe(container: Any, *specs: str, user: str = "claude") -> list[str]:
    """Run PROBE in `container`; one result per spec."""
    result = container.exec_run(["python3", "-c", PROBE, *specs], user=user)
    out = result.output.decode()
    assert result.exit_code == 0, out
    return out.split()


def peers(server: Any) -> list[tuple[str, str, str]]:
    """(proto, port, peer address) of everything the echo server logged."""
    lines = server.logs().decode().splitlines()
    return [tuple(line.split()) for line in lines if line.startswith(("udp ", "tcp "))]  # type: ignore[misc]


def addresses(container: Any) -> dict[str, list[tuple[str, str]]]:
    """Interface -> [(address, scope)] of a container, from `ip -j addr`."""
    out = container.exec_run(["ip", "-j", "addr", "show"]).output.decode()
    return {link["ifname"]: [(a["local"], a["scope"]) for a in link.get("addr_info", [])]
            for link in json.loads(out)}


def test_docker_host_closed_but_for_host_ports(start_claude: Callable[..., Claude],
                                               internet: Internet,
                                               host_server: tuple[Any, int, int, int]) -> None:
    server, opened, closed, udp = host_server
    gw4 = internet.proj.attrs["IPAM"]["Config"][0]["Gateway"]
    gw6 = str(internet.v6[1])
    # inet's IPv6 subnet counts as a compose network here: its gateway must still be closed.
    claude = start_claude(env={"SIDECAR_FIREWALL_HOST_PORTS": str(opened),
                               "SIDECAR_FIREWALL_NETWORKS": f"{internet.proj_subnet},"
                                                            f"{internet.v6}"})
    assert claude.health()[0] == 0
    specs = [f"tcp,{opened},,{gw4}", f"tcp,{closed},,{gw4}", f"udp,{udp},,{gw4}",
             f"tcp,{opened},,{gw6}", f"tcp,{closed},,{gw6}", f"udp,{udp},,{gw6}"]
    # REJECT: a TCP reset, and for UDP the send itself fails (EPERM): refused at once.
    assert probe(claude.container, *specs) == ["ok", "ECONNREFUSED", "EPERM"] * 2
    # As root too: only DNS is special for root.
    assert probe(claude.container, *specs[1:3], user="root") == ["ECONNREFUSED", "EPERM"]
    # The control: a container without the firewall reaches every one of those ports.
    rogue = internet.servers["rogue-proj"]
    assert probe(rogue, *specs[:3], user="root") == ["ok", "ok", "ok"]
    inet_rogue = internet.servers["rogue-inet"]
    assert probe(inet_rogue, *specs[3:], user="root") == ["ok", "ok", "ok"]
    # By effect: the host got the open port's connections, and nothing else from claude.
    mine = {address for addrs in addresses(claude.container).values() for address, _ in addrs}
    got = [(proto, port) for proto, port, peer in peers(server) if peer in mine]
    assert sorted(got) == [("tcp", str(opened)), ("tcp", str(opened))]


def test_link_local_carries_only_neighbour_discovery(start_claude: Callable[..., Claude],
                                                     internet: Internet) -> None:
    claude = start_claude(domains="allowed.test\n")
    rogue = internet.servers["rogue-inet"]
    rogue_link_local = next(address for addrs in addresses(rogue).values()
                            for address, scope in addrs if scope == "link"
                            and address.startswith("fe80:"))
    inet_if = next(name for name, addrs in addresses(claude.container).items()
                   if any(ipaddress.ip_address(address) in internet.v6 for address, _ in addrs))
    # The control: the same server, by an allowed name's global address, is reachable (and
    # neighbour discovery works, or nothing over IPv6 would).
    code, out = claude.sh("getent ahostsv6 echo.allowed.test")
    assert code == 0, out
    _, v6 = internet.addresses["rogue-inet"]
    assert probe(claude.container, f"tcp,7,,{v6}", f"udp,5353,,{v6}") == ["ok", "ok"]
    # Link-local: refused, over TCP and UDP, as the agent and as root.
    specs = [f"tcp,7,{inet_if},{rogue_link_local}", f"udp,5353,{inet_if},{rogue_link_local}"]
    assert probe(claude.container, *specs) == ["ECONNREFUSED", "EPERM"]
    assert probe(claude.container, *specs, user="root") == ["ECONNREFUSED", "EPERM"]
    # By effect: the server never heard from a link-local address.
    heard = peers(rogue)
    assert any(ipaddress.ip_address(peer) in internet.v6 for _, _, peer in heard)  # control
    assert [entry for entry in heard if ipaddress.ip_address(entry[2]).is_link_local] == []
    # What the rules let through on link-local: the three neighbour-discovery messages
    # (router solicitation 133, neighbour solicitation 135 and advertisement 136), each only
    # with hop limit 255, which only the kernel's own ND packets carry.
    code, rules = claude.sh("ip6tables -S SIDECAR-EGRESS", user="root")
    assert code == 0
    accepted = [line for line in rules.splitlines() if line.endswith("-j ACCEPT")
                and "icmpv6-type" in line]
    assert accepted == [f"-A SIDECAR-EGRESS -p ipv6-icmp -m icmp6 --icmpv6-type {kind} -m hl "
                        "--hl-eq 255 -j ACCEPT" for kind in (133, 135, 136)]


def test_new_flows_in_only_from_the_compose_network(start_claude: Callable[..., Claude],
                                                   internet: Internet) -> None:
    # A peer that can route to the container without being on a compose network (here: a host
    # of the offline internet; in the world, a LAN host routing to Docker's subnet, or an
    # internet host over unfiltered IPv6) must not get a channel with the agent by opening it
    # from outside: the agent's listener never hears it, and nothing comes back.
    # The compose networks include an IPv6 one (here declared: the stand-in `proj` has no
    # IPv6), so that IPv6's incoming-flow rules have a network to accept from, as in a stack
    # with IPv6: a rule accepting new flows from anywhere would then show (issue 20.9).
    compose_v6 = "fd53:1dec:a2::/64"
    claude = start_claude(env={"SIDECAR_FIREWALL_NETWORKS":
                               f"{internet.proj_subnet},{compose_v6}"})
    assert claude.health()[0] == 0
    claude.container.exec_run(
        ["bash", "-c", f"python3 -c '{ECHO_SERVER}' udp:40000 tcp:40001 >/tmp/listener.log"],
        user="claude", detach=True)
    code, out = claude.sh("for _ in $(seq 100); do grep -q listening /tmp/listener.log && "
                          "exit 0; sleep 0.1; done; exit 1")
    assert code == 0, out
    claude.container.reload()
    networks = claude.container.attrs["NetworkSettings"]["Networks"]
    inet = networks[internet.inet.name]
    outside = [f"udp,40000,,{inet['IPAddress']}", f"tcp,40001,,{inet['IPAddress']}",
               f"udp,40000,,{inet['GlobalIPv6Address']}", f"tcp,40001,,{inet['GlobalIPv6Address']}"]
    # TCP times out (dropped, so a scanner learns nothing); UDP gets no answer.
    assert probe(internet.servers["rogue-inet"], *outside, user="root") == ["TimeoutError"] * 4
    # The control: a service of the compose network reaches the same listener and is answered.
    inside = networks[internet.proj.name]["IPAddress"]
    assert probe(internet.servers["rogue-proj"], f"udp,40000,,{inside}", f"tcp,40001,,{inside}",
                 user="root") == ["ok", "ok"]
    # By effect: the listener heard the compose network's peer only.
    _, log = claude.sh("cat /tmp/listener.log")
    rogue_proj, _ = internet.addresses["rogue-proj"]
    heard = [tuple(line.split()) for line in log.splitlines() if line.startswith(("udp", "tcp"))]
    assert sorted(heard) == [("tcp", "40001", rogue_proj), ("udp", "40000", rogue_proj)]
