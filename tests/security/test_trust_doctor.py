"""`sidecar doctor` on a real stack: healthy, then broken three ways (a stopped service, a
missing program, an unapproved change), each found with the line that says how to fix it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from security.trust_stack import FAKE_CLAUDE, PGID, PUID, TrustStack, trust_stack

__all__ = ["trust_stack"]  # fixtures

pytestmark = pytest.mark.slow


OFFLINE = "broker upstream"  # skipped here: api.anthropic.com cannot answer offline


def doctor(stack: TrustStack) -> tuple[int, dict[str, dict[str, str]]]:
    """Run `sidecar doctor --format json`: (exit code, check name -> result)."""
    ran = stack.sidecar("doctor", "--format", "json")
    report = json.loads(ran.stdout)
    assert report["healthy"] is (ran.returncode == 0), ran
    return ran.returncode, {c["check"]: c for c in report["checks"]}


def test_a_healthy_stack(trust_stack: TrustStack) -> None:
    code, checks = doctor(trust_stack)
    problems = {k: v for k, v in checks.items() if v["status"] not in ("ok",)}
    # Offline, the broker's upstream (api.anthropic.com) cannot answer: skipped, with a note.
    upstream = problems.pop(OFFLINE)
    assert upstream["status"] == "skip" and "offline" in upstream["message"], upstream
    assert problems == {}, problems
    assert checks["broker"]["message"].endswith("it holds: api-key")
    assert checks["secret"]["message"].startswith("no credential of this host is readable")
    assert code == 0
    assert checks["claude code"]["message"] == f'Claude Code reports "{FAKE_CLAUDE}"'
    assert checks["command tool"]["message"].endswith('tool is "/bin/tool"')
    assert checks["firewall"]["message"].startswith("enforcing; its status says \"")
    assert checks["puid"]["message"].startswith(f"Claude runs as {PUID}:{PGID}")
    assert checks["gate policy"]["message"] == "the gate runs the approved bridge.yaml"
    text = trust_stack.sidecar("doctor")
    assert text.returncode == 0
    lines = text.stdout.splitlines()
    assert lines[-1] == "healthy"
    assert len(lines) == len(checks) + 1
    assert all(line.startswith(("ok  ", "skip  broker upstream: ")) for line in lines[:-1])


def test_a_stopped_service(trust_stack: TrustStack) -> None:
    stack = trust_stack
    app = stack.container("app")
    app.stop(timeout=1)
    try:
        code, checks = doctor(stack)
        assert code == 1
        for command in ("app-sh", "tool"):
            result = checks[f"command {command}"]
            assert result["status"] == "fail"
            assert result["message"] == f"{app.name} is exited", result
            assert "sidecar up" in result["fix"]
        others = {k for k, v in checks.items() if v["status"] != "ok"}
        assert others == {"command app-sh", "command tool", OFFLINE}
        text = stack.sidecar("doctor")
        assert f"fail  command tool: {app.name} is exited -> `sidecar up`" in text.stdout
        assert text.stdout.splitlines()[-1] == "2 problem(s)"
    finally:
        app.start()
        stack.wait_ready()


def test_a_missing_program(trust_stack: TrustStack) -> None:
    stack = trust_stack
    bridge = stack.originals[".sidecar/bridge.yaml"].replace(
        "sidecar:\n", "  ghost:\n    container: app\n    exec: ghost-program --flag\n"
        "sidecar:\n")
    stack.write(".sidecar/bridge.yaml", bridge)
    try:
        assert stack.sidecar("trust", "--yes").returncode == 0
        assert stack.sidecar("up").returncode == 0
        stack.wait_ready()
        code, checks = doctor(stack)
        assert code == 1
        ghost = checks["command ghost"]
        assert ghost["status"] == "fail"
        assert ghost["message"] == f"{stack.container('app').name}: ghost-program not found"
        assert "install ghost-program" in ghost["fix"]
        assert {k for k, v in checks.items() if v["status"] != "ok"} == {"command ghost",
                                                                         OFFLINE}
    finally:
        stack.restore()


def test_an_unapproved_change(trust_stack: TrustStack, docker_client: Any) -> None:
    stack = trust_stack
    widened = stack.originals[".sidecar/bridge.yaml"].replace(
        "sidecar:\n", "  everything:\n    container: sidecar-gate\n    exec: sh\nsidecar:\n")
    write = stack.routed("cat > /app/.sidecar/bridge.yaml", input_=widened)
    assert write.returncode == 0, write
    try:
        code, checks = doctor(stack)
        assert code == 1
        approval = checks["approval"]
        assert approval["status"] == "fail"
        assert approval["message"].endswith(": .sidecar/bridge.yaml"), approval
        assert "sidecar trust" in approval["fix"]
        # Still the approved policy everywhere: the new command is not checked, the gate and
        # the policy volume hold what was approved.
        assert "command everything" not in checks
        assert checks["gate policy"]["status"] == "ok"
        assert checks["policy volume"]["status"] == "ok"
    finally:
        stack.restore()


def test_doctor_without_a_stack(trust_stack: TrustStack, tmp_path: Any) -> None:
    stack = trust_stack
    stack.compose("stop", "claude")
    try:
        code, checks = doctor(stack)
        assert code == 1
        assert checks["claude"]["status"] == "fail"
        for name in ("gate policy", "firewall", "puid", "claude code"):
            assert checks[name]["status"] == "skip", checks[name]
    finally:
        stack.compose("start", "claude")
        stack.wait_ready()
