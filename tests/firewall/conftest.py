"""An offline "internet" for the firewall tests, and firewalled Claude containers.

- `inet`: a Docker network with IPv6, holding web servers (busybox httpd) that answer as
  `allowed.test`, `www.allowed.test` (a subdomain with its own addresses) and `blocked.test`
  (network aliases), and a "rogue resolver" that echoes anything sent to UDP port 53 (or 5353,
  the control), also known as `echo.allowed.test`;
- `proj`: the compose network stand-in, with a web server `app` and the rogue's twin.
The Claude container joins both; only `proj` is declared as its compose network
(`SIDECAR_FIREWALL_NETWORKS`), so `inet` is reachable only through the firewall's allowlist.
The allowlist is mounted where `sidecar up` puts the approved one (/run/sidecar/policy).
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import BUSYBOX_IMAGE, TEST_LABEL, unique_name

# Echo servers on the ports named in argv (`udp:53 tcp:7`), IPv4 and IPv6, that log every
# datagram and connection they get (`udp 53 <peer address>`) on stdout: the container's log is
# the proof of what reached them. Over UDP 53, a resolver that would answer anything.
ECHO_SERVER = """
import socket, sys, threading
def log(*words):
    print(*words, flush=True)
def udp(s, port):
    while True:
        data, peer = s.recvfrom(2048)
        log("udp", port, peer[0])
        s.sendto(data, peer)
def tcp(s, port):
    while True:
        conn, peer = s.accept()
        log("tcp", port, peer[0])
        def echo(conn=conn):
            with conn:
                while data := conn.recv(2048):
                    conn.sendall(data)
        threading.Thread(target=echo, daemon=True).start()
for spec in sys.argv[1:]:
    proto, port = spec.split(":")
    for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(family, socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((host, int(port)))
        if proto == "tcp":
            s.listen(16)
        threading.Thread(target=udp if proto == "udp" else tcp, args=(s, port),
                         daemon=True).start()
log("listening")
threading.Event().wait()
"""


@dataclass
class Internet:
    """The test networks and hosts."""

    client: Any
    image: str
    inet: Any
    proj: Any
    proj_subnet: str
    v4: ipaddress.IPv4Network
    v6: ipaddress.IPv6Network
    www: Path
    hosts: dict[str, Any] = field(default_factory=dict)
    servers: dict[str, Any] = field(default_factory=dict)  # the echo servers ("rogues")
    addresses: dict[str, tuple[str, str]] = field(default_factory=dict)
    next_host: int = 10

    def web(self, key: str, aliases: list[str], text: str) -> tuple[str, str]:
        """(Re)create the web server `key` at fresh IPv4 and IPv6 addresses."""
        old = self.hosts.pop(key, None)
        if old is not None:
            old.remove(force=True)
        self.next_host += 1
        v4 = str(self.v4[self.next_host])
        v6 = str(self.v6[self.next_host])
        root = self.www / key
        root.mkdir(parents=True, exist_ok=True)
        (root / "index.html").write_text(text + "\n")
        container = self.client.containers.create(
            BUSYBOX_IMAGE, ["httpd", "-f", "-p", "80", "-h", "/www"],
            name=unique_name(f"sidecar-fw-{key}"), labels={TEST_LABEL: "1"},
            volumes={str(root): {"bind": "/www", "mode": "ro"}}, network_disabled=False)
        self.inet.connect(container, aliases=aliases, ipv4_address=v4, ipv6_address=v6)
        # Created on the default bridge too; leave it so only `inet` reaches the host.
        with contextlib.suppress(Exception):
            self.client.networks.get("bridge").disconnect(container)
        container.start()
        self.hosts[key] = container
        self.addresses[key] = (v4, v6)
        return v4, v6


def _create_inet(client: Any) -> tuple[Any, ipaddress.IPv4Network, ipaddress.IPv6Network]:
    import docker

    last: Exception | None = None
    for _ in range(20):
        v4 = ipaddress.ip_network(f"172.{random.randint(20, 31)}.{random.randint(0, 255)}.0/24")
        v6 = ipaddress.ip_network(f"fd{random.randint(0, 255):02x}:{random.randint(0, 65535):x}:"
                                  f"{random.randint(0, 65535):x}::/64")
        ipam = docker.types.IPAMConfig(pool_configs=[
            docker.types.IPAMPool(subnet=str(v4), gateway=str(v4[1])),
            docker.types.IPAMPool(subnet=str(v6), gateway=str(v6[1]))])
        try:
            net = client.networks.create(unique_name("sidecar-fw-inet"), driver="bridge",
                                         enable_ipv6=True, ipam=ipam, labels={TEST_LABEL: "1"})
        except docker.errors.APIError as exc:  # the pool overlaps another network: retry
            last = exc
            continue
        return net, v4, v6  # type: ignore[return-value]
    raise RuntimeError(f"no free subnet for the test internet: {last}")


@pytest.fixture(scope="module")
def internet(docker_client: Any, claude_image: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Internet]:
    """The offline internet and the compose-network stand-in, for one test module."""
    inet, v4, v6 = _create_inet(docker_client)
    proj = docker_client.networks.create(unique_name("sidecar-fw-proj"), driver="bridge",
                                         labels={TEST_LABEL: "1"})
    proj.reload()
    subnet = proj.attrs["IPAM"]["Config"][0]["Subnet"]
    www = tmp_path_factory.mktemp("www")
    net = Internet(docker_client, claude_image, inet, proj, subnet, v4, v6, www)
    extra: list[Any] = []
    try:
        net.web("allowed", ["allowed.test"], "allowed")
        net.web("www", ["www.allowed.test"], "www")
        net.web("blocked", ["blocked.test"], "blocked")
        app_root = www / "app"
        app_root.mkdir()
        (app_root / "index.html").write_text("app\n")
        app = docker_client.containers.run(
            BUSYBOX_IMAGE, ["httpd", "-f", "-p", "80", "-h", "/www"], detach=True,
            name=unique_name("sidecar-fw-app"), labels={TEST_LABEL: "1"}, network=proj.name,
            volumes={str(app_root): {"bind": "/www", "mode": "ro"}})
        extra.append(app)
        proj.disconnect(app)
        proj.connect(app, aliases=["app"])
        for key, network, aliases in (("rogue-inet", inet, ["echo.allowed.test"]),
                                      ("rogue-proj", proj, [])):
            rogue = docker_client.containers.create(
                claude_image, ["python3", "-c", ECHO_SERVER, "udp:53", "udp:5353", "tcp:7"],
                entrypoint=[],
                name=unique_name(f"sidecar-fw-{key}"), labels={TEST_LABEL: "1"}, user="root")
            extra.append(rogue)
            net.servers[key] = rogue
            network.connect(rogue, aliases=[key, *aliases])
            with contextlib.suppress(Exception):
                docker_client.networks.get("bridge").disconnect(rogue)
            rogue.start()
            rogue.reload()
            net.addresses[key] = (
                rogue.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"],
                rogue.attrs["NetworkSettings"]["Networks"][network.name]["GlobalIPv6Address"])
        yield net
    finally:
        for container in [*net.hosts.values(), *extra]:
            with contextlib.suppress(Exception):
                container.remove(force=True)
        for network in (inet, proj):
            with contextlib.suppress(Exception):
                network.remove()


@dataclass
class Claude:
    """A firewalled Claude container and helpers to run things in it."""

    container: Any
    workspace: Path
    policy: Path

    def sh(self, script: str, user: str = "claude") -> tuple[int, str]:
        """Run a shell script; return (exit code, stdout+stderr)."""
        result = self.container.exec_run(["bash", "-c", script], user=user)
        return result.exit_code, result.output.decode(errors="replace")

    def py(self, code: str, user: str = "claude",
           python: str = "python3") -> tuple[int, str]:
        """Run Python code with the image's python3 (or the sidecar venv's, for its package)."""
        result = self.container.exec_run([python, "-c", code], user=user)
        return result.exit_code, result.output.decode(errors="replace")

    def logs(self) -> str:
        """The container's log (the entrypoint's lines)."""
        return str(self.container.logs().decode(errors="replace"))

    def claude_code(self, user: str = "root") -> tuple[int, str]:
        """`claude --version` through the image's wrapper, as `docker compose exec` runs it."""
        result = self.container.exec_run(["claude", "--version"], user=user,
                                         environment={"SIDECAR_READY_TIMEOUT": "5"})
        return result.exit_code, result.output.decode(errors="replace").strip()

    def health(self) -> tuple[int, str]:
        """The image's readiness check, as the compose healthcheck runs it."""
        result = self.container.exec_run([HEALTH, "--wait", "60"])
        return result.exit_code, result.output.decode(errors="replace").strip()


HEALTH = "/usr/local/sbin/sidecar-health"
# A stand-in for Claude Code (the test image has none): says who runs it and with what.
CLAUDE_STUB = '#!/bin/sh\necho "claude-stub uid=$(id -u) args=$*"\n'


def wait_for_log(container: Any, text: str, timeout: float = 30) -> str:
    """Poll the container's log until `text` shows up."""
    deadline = time.monotonic() + timeout
    logs = ""
    while time.monotonic() < deadline:
        logs = container.logs().decode(errors="replace")
        if text in logs:
            return logs
        container.reload()
        if container.status == "exited":
            break
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the log:\n{logs}")


@pytest.fixture
def start_claude(internet: Internet, tmp_path: Path) -> Iterator[Callable[..., Claude]]:
    """Start a Claude container with the firewall and wait until its start-up is over (ready
    or not); kwargs: domains (the approved allowlist's text, None: no approved allowlist),
    env, volumes, cap (NET_ADMIN and NET_RAW), wait (False: return right after the start),
    dns (the resolvers Docker's embedded DNS forwards unknown names to)."""
    created: list[Any] = []
    stub = tmp_path / "claude-stub"
    stub.write_text(CLAUDE_STUB)
    stub.chmod(0o755)

    def _start(domains: str | None = "allowed.test\n", *, env: dict[str, str] | None = None,
               volumes: dict[str, Any] | None = None, cap: bool = True,
               wait: bool = True, dns: list[str] | None = None) -> Claude:
        workspace = tmp_path / f"work{len(created)}"
        (workspace / ".sidecar").mkdir(parents=True)
        policy = tmp_path / f"policy{len(created)}"
        policy.mkdir()
        if domains is not None:
            (policy / "allowed-domains.txt").write_text(domains)
        # Writable by the agent's user, as a real project checkout is (PUID).
        for path in (workspace, workspace / ".sidecar"):
            path.chmod(0o777)
        # The offline internet lives in private ranges, which no DNS answer opens unless
        # declared (as a private mirror would be).
        environment = {"SIDECAR_FIREWALL_NETWORKS": internet.proj_subnet,
                       "SIDECAR_FIREWALL_PRIVATE_NETWORKS": f"{internet.v4},{internet.v6}",
                       "SIDECAR_FIREWALL_GITHUB": "0", **(env or {})}
        container = internet.client.containers.create(
            internet.image, None, name=unique_name("sidecar-fw-claude"),
            labels={TEST_LABEL: "1"}, environment=environment,
            cap_add=["NET_ADMIN", "NET_RAW"] if cap else None,
            volumes={str(workspace): {"bind": "/workspace", "mode": "rw"},
                     str(policy): {"bind": "/run/sidecar/policy", "mode": "ro"},
                     str(stub): {"bind": "/usr/local/bin/claude", "mode": "ro"},
                     **(volumes or {})},
            network=internet.proj.name, dns=dns)
        created.append(container)
        internet.inet.connect(container)
        container.start()
        claude = Claude(container, workspace, policy)
        if wait:
            claude.health()  # returns once the entrypoint is done, ready or not
        return claude

    yield _start
    for container in created:
        with contextlib.suppress(Exception):
            container.remove(force=True)
