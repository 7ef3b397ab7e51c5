"""Hostile-agent tests of what the claude container's DNS can carry and open: an attacker's
answers for allowed names (DNS rebinding into the Docker host, multicast, CNAMEs), and data sent
out through the forwarder as queries for other names (a DNS tunnel).

The claude container's embedded DNS forwards the names Docker does not know to an "authority"
the tests control, as a real one forwards them to the internet's DNS. The authority logs every
query it gets and answers from its table: the log is the proof of which queries left the
container, and the echo servers' logs the proof of what reached them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import TEST_LABEL, unique_name
from firewall.conftest import Claude, Internet
from firewall.probes import http, resolves

from security.test_container_network import addresses, peers, probe

# An authoritative DNS server over UDP 53 (IPv4 and IPv6) for the records in argv
# (`name=A:1.2.3.4`, `name=AAAA:fd00::1`, `name=CNAME:other.name`, following CNAMEs it knows);
# every other name is NXDOMAIN. Logs `query <name> <qtype>` for every query it gets.
AUTHORITY = r"""
import socket, struct, sys, threading
table = {}
for spec in sys.argv[1:]:
    name, record = spec.split("=", 1)
    kind, value = record.split(":", 1)
    table.setdefault(name, []).append((kind, value))
def wire(name):
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"
def answer(data):
    labels, off = [], 12
    while data[off]:
        labels.append(data[off + 1:off + 1 + data[off]].decode("ascii", "replace"))
        off += 1 + data[off]
    name, qtype = ".".join(labels), struct.unpack(">H", data[off + 1:off + 3])[0]
    records, chain = [], [name.lower()]
    while chain:
        current = chain.pop()
        for kind, value in table.get(current, []):
            if kind == "CNAME":
                records.append(wire(current) + struct.pack(">HHIH", 5, 1, 5, len(wire(value)))
                               + wire(value))
                chain.append(value)
            elif kind == "A" and qtype in (1, 255):
                records.append(wire(current) + struct.pack(">HHIH", 1, 1, 5, 4)
                               + socket.inet_pton(socket.AF_INET, value))
            elif kind == "AAAA" and qtype in (28, 255):
                records.append(wire(current) + struct.pack(">HHIH", 28, 1, 5, 16)
                               + socket.inet_pton(socket.AF_INET6, value))
    rcode = 0 if name.lower() in table else 3
    head = struct.pack(">HHHHHH", struct.unpack(">H", data[:2])[0], 0x8180 | rcode, 1,
                       len(records), 0, 0)
    return name, qtype, head + data[12:off + 5] + b"".join(records)
def serve(s):
    while True:
        data, peer = s.recvfrom(4096)
        try:
            name, qtype, out = answer(data)
        except Exception as exc:
            print("bad", exc, flush=True)
            continue
        print("query", name, qtype, flush=True)
        s.sendto(out, peer)
for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    s = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, 53))
    threading.Thread(target=serve, args=(s,), daemon=True).start()
print("listening", flush=True)
threading.Event().wait()
"""

# One query of any type to the forwarder (argv: name, qtype): `RCODE n ANSWERS m`.
QUERY = r"""
import random, socket, struct, sys
name, qtype = sys.argv[1], int(sys.argv[2])
query = struct.pack(">HHHHHH", random.randint(0, 65535), 0x0100, 1, 0, 0, 0)
query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
query += struct.pack(">HH", qtype, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(query, ("127.0.0.1", 53))
data = s.recv(4096)
print("RCODE", data[3] & 15, "ANSWERS", struct.unpack(">H", data[6:8])[0])
"""
TXT, NULL, MX, ANY, A, AAAA = 16, 10, 15, 255, 1, 28


# One address in each special-purpose range an allowed name may resolve into (the docker0
# address and multicast have a test of their own; loopback never leaves the container): (name
# published for it, address, its range in firewall.networks, protocol probed).
SPECIAL_PROBES = [
    ("s-ten", "10.213.7.9", "10.0.0.0/8", "tcp"),
    ("s-cgnat", "100.100.7.9", "100.64.0.0/10", "tcp"),
    ("s-ietf", "192.0.0.9", "192.0.0.0/24", "tcp"),
    ("s-test1", "192.0.2.9", "192.0.2.0/24", "tcp"),
    ("s-lan", "192.168.254.9", "192.168.0.0/16", "tcp"),
    ("s-bench", "198.18.7.9", "198.18.0.0/15", "tcp"),
    ("s-test2", "198.51.100.9", "198.51.100.0/24", "tcp"),
    ("s-test3", "203.0.113.9", "203.0.113.0/24", "tcp"),
    ("s-nat64", "64:ff9b:1::9", "64:ff9b:1::/48", "tcp"),
    ("s-discard", "100::9", "100::/64", "tcp"),
    ("s-doc6", "2001:db8::9", "2001:db8::/32", "tcp"),
    ("s-ula", "fc00::9", "fc00::/7", "tcp"),
    ("s-site", "fec0::9", "fec0::/10", "tcp"),
    ("s-mcast6", "ff05::9", "ff00::/8", "udp"),
]

# Probes `proto,port,address` all at once (one thread each, 2 s), printing `address result`:
# `ECONNREFUSED`/`EPERM` when refused on the spot, else what the network did.
PARALLEL_PROBE = r"""
import errno, socket, sys, threading
results = {}
def one(spec):
    proto, port, addr = spec.split(",")
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        s.connect((addr, int(port)))
        s.send(b"probe")
        s.recv(64)
        results[addr] = "ok"
    except OSError as exc:
        results[addr] = errno.errorcode.get(exc.errno) or type(exc).__name__
    finally:
        s.close()
threads = [threading.Thread(target=one, args=(spec,)) for spec in sys.argv[1:]]
for t in threads:
    t.start()
for t in threads:
    t.join()
for addr, result in sorted(results.items()):
    print(addr, result)
"""


def probe_all(claude: Claude) -> dict[str, str]:
    """SPECIAL_PROBES from `claude` as the agent: address -> result."""
    specs = [f"{proto},443,{address}" for _name, address, _range, proto in SPECIAL_PROBES]
    result = claude.container.exec_run(["python3", "-c", PARALLEL_PROBE, *specs], user="claude")
    assert result.exit_code == 0, result.output
    return dict(line.split() for line in result.output.decode().splitlines())


@dataclass
class Authority:
    """The DNS server the claude container's embedded DNS forwards unknown names to."""

    container: Any
    address: str
    host: str  # the Docker host's address on the default bridge (docker0)

    def queries(self) -> list[tuple[str, int]]:
        """(name, qtype) of every query it got, in order."""
        lines = self.container.logs().decode().splitlines()
        return [(line.split()[1], int(line.split()[2])) for line in lines
                if line.startswith("query ")]


def bridge_gateway(config: dict[str, str]) -> str:
    """The default bridge's gateway (docker0). A freshly started dockerd leaves `Gateway` out of
    the bridge's IPAM config; it is then the subnet's first host address, as dockerd assigns it."""
    if config.get("Gateway"):
        return config["Gateway"]
    return str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


@pytest.fixture(scope="module")
def authority(internet: Internet, docker_client: Any) -> Iterator[Authority]:
    """The authority, on the offline internet, with records an attacker could publish."""
    host = bridge_gateway(docker_client.networks.get("bridge").attrs["IPAM"]["Config"][0])
    assert ipaddress.ip_address(host).is_private, host
    blocked4, _ = internet.addresses["blocked"]
    records = [f"host.allowed.test=A:{host}",
               "mcast.allowed.test=A:224.0.0.251", "cname.allowed.test=CNAME:cdn.other.test",
               f"cdn.other.test=A:{blocked4}", "data.allowed.test=A:192.0.2.1",
               *(f"{name}.allowed.test={'AAAA' if ':' in address else 'A'}:{address}"
                 for name, address, _range, _proto in SPECIAL_PROBES)]
    container = docker_client.containers.create(
        internet.image, ["python3", "-c", AUTHORITY, *records], entrypoint=[], user="root",
        name=unique_name("sidecar-sec-authority"), labels={TEST_LABEL: "1"})
    try:
        internet.inet.connect(container)
        with contextlib.suppress(Exception):
            docker_client.networks.get("bridge").disconnect(container)
        container.start()
        deadline = time.monotonic() + 30
        while b"listening" not in container.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
        container.reload()
        address = container.attrs["NetworkSettings"]["Networks"][internet.inet.name]["IPAddress"]
        yield Authority(container, address, host)
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)


def query(claude: Claude, name: str, qtype: int) -> str:
    """One query of `qtype` for `name` to the forwarder, as the agent."""
    code, out = claude.py(QUERY.replace("sys.argv[1]", repr(name))
                          .replace("int(sys.argv[2])", str(qtype)))
    assert code == 0, out
    return out.strip()


def test_allowed_name_never_opens_special_addresses(start_claude: Callable[..., Claude],
                                                    internet: Internet, authority: Authority,
                                                    host_server: tuple[Any, int, int, int],
                                                    ) -> None:
    server, _, closed, udp = host_server
    host = authority.host
    claude = start_claude(dns=[authority.address])
    assert claude.health()[0] == 0
    # The names resolve (the forwarder hands the answers out, and fills the ipset with them)...
    assert resolves(claude, "host.allowed.test") == [host]
    assert resolves(claude, "mcast.allowed.test") == ["224.0.0.251"]
    code, members = claude.sh("ipset list sidecar-allow4", user="root")
    assert code == 0, members
    assert host in members and "224.0.0.251" in members, members
    # ...but a special-purpose address is not opened by them: the Docker host's docker0 address
    # (the rebinding that would open every port of the host), directly or v4-mapped, and
    # multicast. Refused at once, as the agent and as root.
    specs = [f"tcp,{closed},,{host}", f"udp,{udp},,{host}", f"tcp,{closed},,::ffff:{host}",
             "udp,5353,,224.0.0.251"]
    assert probe(claude.container, *specs) == ["ECONNREFUSED", "EPERM", "ECONNREFUSED", "EPERM"]
    assert probe(claude.container, *specs[:2], user="root") == ["ECONNREFUSED", "EPERM"]
    # The controls: a container without the firewall reaches that port of the host, and so does
    # a Claude container whose SIDECAR_FIREWALL_PRIVATE_NETWORKS declares the address.
    assert probe(authority.container, f"tcp,{closed},,{host}", user="root") == ["ok"]
    exempt = start_claude(dns=[authority.address], env={
        "SIDECAR_FIREWALL_PRIVATE_NETWORKS": f"{internet.v4},{internet.v6},{host}/32"})
    assert resolves(exempt, "host.allowed.test") == [host]
    assert probe(exempt.container, f"tcp,{closed},,{host}") == ["ok"]
    # By effect: the host heard from the exempt container, never from the first one.
    mine = {address for addrs in addresses(claude.container).values() for address, _ in addrs}
    theirs = {address for addrs in addresses(exempt.container).values() for address, _ in addrs}
    heard = peers(server)
    assert [entry for entry in heard if entry[2] in mine] == []
    assert [(proto, port) for proto, port, peer in heard if peer in theirs] == [
        ("tcp", str(closed))]


def test_no_dns_answer_opens_any_special_range(start_claude: Callable[..., Claude],
                                               authority: Authority) -> None:
    """Every special-purpose range, over IPv4 and IPv6: an allowed name resolving there is
    refused on the spot (the special chain), while the same answers, declared as private
    networks, are let through to the network (the control). Kills a weakened chain in either
    family, and any range left out of it (issue 20.9: only render-level tests noticed). Mutant
    run: with IPv6's jump to the chain removed, or 10.0.0.0/8 left out of SPECIAL4, the other
    firewall and security e2e tests all passed and this one failed."""
    from sidecar_gen.firewall.networks import SPECIAL4, SPECIAL6

    assert {r for _n, _a, r, _p in SPECIAL_PROBES} <= set(SPECIAL4) | set(SPECIAL6)
    claude = start_claude(dns=[authority.address])
    assert claude.health()[0] == 0
    for name, address, _range, _proto in SPECIAL_PROBES:
        assert resolves(claude, f"{name}.allowed.test") == [address], name
    _, members4 = claude.sh("ipset list sidecar-allow4", user="root")
    _, members6 = claude.sh("ipset list sidecar-allow6", user="root")
    assert "10.213.7.9" in members4 and "fc00::9" in members6  # the answers are in the sets
    refused = {address: "EPERM" if proto == "udp" else "ECONNREFUSED"
               for _name, address, _range, proto in SPECIAL_PROBES}
    assert probe_all(claude) == refused
    # The control: the same answers, exempted as private networks, leave the container (and
    # time out or come back unreachable: nobody is there), so the refusal above is the chain's.
    exempt = start_claude(dns=[authority.address], env={
        "SIDECAR_FIREWALL_PRIVATE_NETWORKS": ",".join(
            [r for _n, _a, r, _p in SPECIAL_PROBES])})
    assert exempt.health()[0] == 0
    for name, address, _range, _proto in SPECIAL_PROBES:
        assert resolves(exempt, f"{name}.allowed.test") == [address], name
    let_through = probe_all(exempt)
    assert sorted(let_through) == sorted(refused)
    assert [a for a, result in let_through.items() if result == refused[a]] == [], let_through


def test_forwarder_carries_no_other_name(start_claude: Callable[..., Claude],
                                         authority: Authority) -> None:
    claude = start_claude(dns=[authority.address])
    assert claude.health()[0] == 0
    before = len(authority.queries())
    # Names that are not allowed, in every query type a tunnel uses, look-alikes of the allowed
    # name included: answered NXDOMAIN by the forwarder itself.
    long_name = ".".join(["x" * 63] * 3) + ".other.test"
    names = ["t1.other.test", "allowed.test.other.test", "evilallowed.test", "ALLOWED.TEST.x.test",
             long_name, "allowed.test-other.test"]
    for name in names:
        for qtype in (A, AAAA, TXT, NULL, MX, ANY):
            assert query(claude, name, qtype) == "RCODE 3 ANSWERS 0", (name, qtype)
    # A CNAME an allowed name's DNS points elsewhere: its addresses are the allowed name's (as
    # a CDN's are), while the CNAME's target itself stays unresolvable (README: accepted).
    assert http(claude, "http://cname.allowed.test/", "-4") == (0, "blocked")
    assert resolves(claude, "cdn.other.test") == []
    # What does leave (README, "Limits"): subdomains of an allowed name, in any type, and
    # single-label names (Docker's DNS asks the host's resolvers about those it does not know).
    assert query(claude, "data.allowed.test", TXT) == "RCODE 0 ANSWERS 0"
    query(claude, "singlelabeldata", TXT)
    time.sleep(1)
    got = authority.queries()[before:]
    assert ("data.allowed.test", TXT) in got and ("singlelabeldata", TXT) in got, got
    # By effect: no other name ever reached the authority, whatever its type.
    leaked = [(name, qtype) for name, qtype in got
              if not name.lower().endswith(".allowed.test") and "." in name]
    assert leaked == []


# As the agent: no raw or packet socket (which would bypass the rules or forge neighbour
# discovery), no SO_MARK, no capabilities; an ICMP echo (unprivileged datagram socket) to a
# blocked address is refused at once (EPERM), to an allowed one answered; broadcast and
# multicast datagrams are refused at once.
PRIVILEGES = r"""
import errno, socket, sys
def attempt(make):
    try:
        make()
        return "ok"
    except OSError as exc:
        return errno.errorcode.get(exc.errno) or type(exc).__name__
def mark():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, 36, 1)  # SO_MARK
def ping(address):
    def send():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
        s.settimeout(3)
        s.sendto(b"\x08\x00\x00\x00\x00\x01\x00\x01sidecar", (address, 0))
        s.recv(64)
    return send
print(attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)),
      attempt(lambda: socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)),
      attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)),
      attempt(mark), attempt(ping(sys.argv[1])), attempt(ping(sys.argv[2])))
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("CapEff")))
def datagram(address):
    def send():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.sendto(b"sidecar", (address, 5353))
    return send
# Broadcast and multicast (mDNS, SSDP-like groups): not sent at all.
print(*(attempt(datagram(a)) for a in ("255.255.255.255", "224.0.0.251", "239.255.255.250")))
"""


def test_agent_has_no_network_privilege(start_claude: Callable[..., Claude],
                                        internet: Internet) -> None:
    claude = start_claude()
    assert claude.health()[0] == 0
    allowed = resolves(claude, "allowed.test")
    allowed4 = next(address for address in allowed if ":" not in address)
    blocked4, _ = internet.addresses["blocked"]
    result = claude.container.exec_run(["python3", "-c", PRIVILEGES, blocked4, allowed4],
                                       user="claude")
    lines = result.output.decode().split("\n")
    assert lines[0].split() == ["EPERM", "EPERM", "EPERM", "EPERM", "EPERM", "ok"], lines
    assert lines[1] == "0000000000000000"
    assert lines[2].split() == ["EPERM"] * 3, lines
    # Nor can it change the network or take the forwarder's port.
    for script in ("ip link set eth0 down", "ip route del default",
                   "ip addr add 10.9.9.9/32 dev lo",
                   "python3 -c 'import socket; s = socket.socket(socket.AF_INET, "
                   "socket.SOCK_DGRAM); s.bind((\"127.0.0.1\", 53))'"):
        code, out = claude.sh(script)
        assert code != 0, (script, out)
    assert resolves(claude, "blocked.test") == []
    assert resolves(claude, "allowed.test") == allowed


def test_claude_code_gets_no_way_back_to_root(start_claude: Callable[..., Claude]) -> None:
    # Claude Code, started as `docker compose exec claude claude` starts it (as root, through
    # the image's wrapper), runs with an empty capability bounding set and no_new_privs: no
    # setuid-root binary (su, mount, passwd... are in the image) can give it NET_ADMIN or root.
    claude = start_claude()
    stub = claude.workspace.parent / "claude-stub"
    with stub.open("r+") as handle:  # in place: the container bind-mounts this very file
        handle.truncate()
        handle.write("#!/bin/sh\nid -u; grep -E '^(NoNewPrivs|CapBnd|CapPrm|CapEff)' "
                     "/proc/self/status; su -c id root </dev/null 2>&1 | tail -1\n")
    code, out = claude.claude_code()
    assert code == 0, out
    lines = out.splitlines()
    assert lines[:5] == ["1000", "CapPrm:\t0000000000000000", "CapEff:\t0000000000000000",
                         "CapBnd:\t0000000000000000", "NoNewPrivs:\t1"], out
    assert "uid=0" not in out
    # The control: a process of the container that did not go through the wrapper still has
    # the container's bounding set (NET_ADMIN included), which is what the wrapper drops.
    _, status = claude.sh("grep CapBnd /proc/self/status", user="root")
    assert status.split()[1] != "0000000000000000"
