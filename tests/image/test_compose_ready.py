"""Readiness with the rendered compose file on a real engine: `docker compose up
--wait` returns only once the entrypoint is done, and then the routed commands exist, the
firewall enforces and Claude Code starts."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from image.minstack import GATED_IPSET, MiniStack, rendered_claude_service


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def test_rendered_healthcheck_is_the_images_check(ministack: MiniStack) -> None:
    check = rendered_claude_service(ministack)["healthcheck"]
    assert check == {"test": ["CMD", "/usr/local/sbin/sidecar-health", "--wait", "20"],
                     "interval": "3s", "timeout": "25s", "retries": 2}


def test_up_wait_returns_only_when_the_entrypoint_is_done(ministack: MiniStack,
                                                          docker_client: Any) -> None:
    # The firewall's set-up is held at its first step until the test lets it go: however
    # long the entrypoint takes, `up --wait` must wait for it.
    gate = ministack.root / "gate"
    gate.mkdir()
    shim = ministack.root / "gated-ipset"
    shim.write_text(GATED_IPSET)
    shim.chmod(0o755)
    service = ministack.claude_service()
    service["volumes"] = [*service["volumes"], f"{shim}:/usr/local/sbin/ipset:ro",  # type: ignore[misc]
                          f"{gate}:/gate"]
    ministack.run("up", "-d", "--wait", "sidecar-gate", check=True)
    override = ministack.root / "override.yaml"
    up = subprocess.Popen(
        [*ministack.compose, "-p", ministack.project, "-f", str(ministack.root / "compose.yaml"),
         "-f", str(override), "up", "-d", "--wait", "claude"],
        cwd=ministack.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(gate / "waiting")
        container = docker_client.containers.get(ministack.container_id())
        # Held: no rules, no wrappers yet; one health interval later `up` still waits.
        time.sleep(4)
        assert up.poll() is None, up.communicate()[0]
        container.reload()
        assert container.attrs["State"]["Health"]["Status"] == "starting"
        held = container.exec_run(["ls", "/opt/sidecar/wrappers"])
        assert "hello" not in held.output.decode()
        assert container.exec_run(["claude", "--version"],
                                  environment={"SIDECAR_READY_TIMEOUT": "1"}).exit_code == 1
        (gate / "open").touch()
        output, _ = up.communicate(timeout=120)
        assert up.returncode == 0, output
    finally:
        if up.poll() is None:
            up.kill()
    # The moment `up --wait` returns, everything the entrypoint does is done.
    container.reload()
    assert container.attrs["State"]["Health"]["Status"] == "healthy"
    wrappers = container.exec_run(["ls", "/opt/sidecar/wrappers"]).output.decode().split()
    assert wrappers == ["hello"]
    code, out = container.exec_run(["claude", "--version"])
    assert (code, out.decode().strip()) == (0, "claude-stub uid=1000 args=--version")
    status = container.exec_run(["sidecar", "firewall", "status"])
    assert status.exit_code == 0, status.output.decode()
    logs = container.logs().decode()
    assert "firewall enforcing" in logs and "ready (uid 1000, gid 1000)" in logs


def test_routed_command_works_right_after_up_wait(ministack: MiniStack) -> None:
    # The plain flow: `up --wait`, then at once a routed command through the gate.
    ministack.run("up", "-d", "--wait", check=True)
    done = ministack.run("exec", "-T", "--user", "claude", "claude", "hello", "routed", "ok")
    assert (done.returncode, done.stdout) == (0, "routed ok\n"), done.stderr
