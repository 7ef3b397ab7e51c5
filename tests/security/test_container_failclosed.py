"""Hostile-agent tests of the claude container: when the firewall does not enforce,
Claude Code does not start, the container is unhealthy and `up --wait` fails.

Proven on the rendered compose file (its healthcheck and cap_add, with `cap_add: !reset []` as a
platform that drops NET_ADMIN) and by effect: the egress that is open without NET_ADMIN is
really open, which is exactly why Claude Code must not run there.
"""

from __future__ import annotations

from typing import Any

from image.minstack import MiniStack, rendered_claude_service
from ruamel.yaml.comments import CommentedSeq
from ruamel.yaml.tag import Tag

NO_NET_ADMIN = ("FIREWALL NOT ENFORCING: capabilities: the container lacks the NET_ADMIN "
                "capability; egress is NOT blocked. Claude Code will not start. To fix: add "
                "`cap_add: [NET_ADMIN, NET_RAW]` to the claude service (`sidecar render` does), "
                "or turn the firewall off in bridge.yaml (sidecar.firewall.enabled: false)")


def reset() -> CommentedSeq:
    """`!reset []`: compose's tag that empties a list the base file sets."""
    seq = CommentedSeq()
    seq.yaml_set_ctag(Tag(suffix="!reset"))
    return seq


def test_without_net_admin_claude_code_does_not_start(ministack: MiniStack,
                                                      docker_client: Any) -> None:
    assert rendered_claude_service(ministack)["cap_add"] == ["NET_ADMIN", "NET_RAW"]
    ministack.claude_service()["cap_add"] = reset()
    up = ministack.run("up", "-d", "--wait", "claude", timeout=300)
    # `up --wait` fails: the container turned unhealthy instead of ready.
    assert up.returncode != 0, up.stdout + up.stderr
    container = docker_client.containers.get(ministack.container_id())
    assert "NET_ADMIN" not in (container.attrs["HostConfig"]["CapAdd"] or [])
    assert container.attrs["State"]["Health"]["Status"] == "unhealthy"
    assert container.attrs["State"]["Health"]["Log"][-1]["Output"].strip() == NO_NET_ADMIN
    # One log line at start says it all (no lockdown line, no route line after it).
    logs = container.logs().decode().splitlines()
    firewall_lines = [line for line in logs if "firewall" in line.lower()
                      or ("route" in line and "routed" not in line)]
    assert firewall_lines == [f"sidecar: {NO_NET_ADMIN}"]
    assert not any("ready (uid" in line for line in logs)
    # Claude Code is refused with that line, as root (`docker compose exec claude claude`)
    # and as the agent's user; the stand-in binary never ran.
    for user in ("root", "claude"):
        code, out = container.exec_run(["claude", "--version"], user=user, demux=True)
        assert code == 1
        assert out == (None, f"claude: {NO_NET_ADMIN}\n".encode())
    status = container.exec_run(["sidecar", "firewall", "status"])
    assert status.exit_code == 1
    assert status.output.decode().startswith("state:      open: FIREWALL NOT ENFORCING")
    # By effect: nothing filters this container's egress (a DNS query to any resolver leaves),
    # which is why Claude Code must not run in it.
    leak = container.exec_run(["python3", "-c", (
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        "s.connect(('198.51.100.53', 53)); s.send(b'x'); print('sent')")], user="claude")
    assert leak.output.decode().strip() == "sent"


def test_approved_allowlist_missing_claude_code_does_not_start(ministack: MiniStack,
                                                               docker_client: Any) -> None:
    # `sidecar up` never ran: nothing approved at /run/sidecar/policy. Closed, and unhealthy.
    service = ministack.claude_service()
    service["volumes"] = [v for v in service["volumes"]  # type: ignore[attr-defined]
                          if not v.endswith(":/run/sidecar/policy:ro")]
    up = ministack.run("up", "-d", "--wait", "claude", timeout=300)
    assert up.returncode != 0, up.stdout + up.stderr
    container = docker_client.containers.get(ministack.container_id())
    assert container.attrs["State"]["Health"]["Status"] == "unhealthy"
    line = container.attrs["State"]["Health"]["Log"][-1]["Output"].strip()
    assert line.startswith("FIREWALL FAILED CLOSED: /run/sidecar/policy/allowed-domains.txt: "
                           "no approved allowlist")
    assert line.endswith("To fix: run `sidecar up` on the host: it installs the allowlist you "
                         "approved (a hand-made setup mounts a folder with allowed-domains.txt "
                         "at /run/sidecar/policy)")
    code, out = container.exec_run(["claude", "--version"], demux=True)
    assert (code, out) == (1, (None, f"claude: {line}\n".encode()))
    # The workspace's own copy is no substitute: it is what the agent can write.
    assert (ministack.root / ".sidecar" / "allowed-domains.txt").exists()
