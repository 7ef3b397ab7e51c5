"""The hostile agent against the trust boundary, on a real engine.

Every attack runs as the agent would: user `claude` in the claude container, writing through a
routed command's container where its own view is read-only. Each one is proven to have had no
effect on the engine (no exec in the foreign container, no file there, the containers not
recreated, the policy volume unchanged), not only by an exit code.
"""

from __future__ import annotations

import json
from typing import Any

import docker.errors
import pytest

from security.trust_stack import APP_SH_ROUTE, PUID, TrustStack, foreign, trust_stack

__all__ = ["foreign", "trust_stack"]  # fixtures

pytestmark = pytest.mark.slow

WIDENED = """\
version: "1"
commands:
""" + APP_SH_ROUTE + """\
  rootsh:
    container: {foreign}
    exec: sh
    workdir: /
    user: "0"
sidecar:
  project: {project}
"""

GATE_EXEC = """
import http.client, json, sys
conn = http.client.HTTPConnection("sidecar-gate", 2375, timeout=10)
body = json.dumps({"Cmd": ["sh", "-c", "touch /pwned"], "User": "0",
                   "AttachStdout": True, "AttachStderr": True})
conn.request("POST", "/v1.41/containers/%s/exec" % sys.argv[1], body,
             {"Content-Type": "application/json"})
reply = conn.getresponse()
print(reply.status, reply.read().decode())
"""


def _refused_without_effect(stack: TrustStack, foreign: Any) -> None:
    """The widened policy on disk reaches nothing: through the dispatcher pointed at it,
    through the default dispatcher, and by talking to the gate directly."""
    # Control: the approved routes still work, so a refusal below is the policy's doing.
    control = stack.routed("id -u")
    assert control.returncode == 0 and control.stdout.strip() == str(PUID), control
    tampered = stack.claude("sidecar", "exec", "--config", "/workspace/.sidecar/bridge.yaml",
                            "rootsh", "-c", "id; touch /pwned")
    assert tampered.returncode == 125, tampered
    assert "permission denied by the Docker API gate" in tampered.stderr
    default = stack.claude("sidecar", "exec", "rootsh", "-c", "touch /pwned")
    assert default.returncode == 127, default
    direct = stack.claude("python3", "-c", GATE_EXEC, foreign.name)
    assert direct.stdout.startswith("403 "), direct
    # The effect on the engine: no exec was ever created in the foreign container, no file.
    foreign.reload()
    assert not foreign.attrs.get("ExecIDs"), foreign.attrs.get("ExecIDs")
    with pytest.raises(docker.errors.NotFound):
        foreign.get_archive("/pwned")


def _policy_in_volume(stack: TrustStack) -> str:
    return stack.claude("cat", "/run/sidecar/policy/bridge.yaml").stdout


def test_policy_edit_through_a_target_is_refused_live_after_restart_and_by_up(
        trust_stack: TrustStack, foreign: Any) -> None:
    stack = trust_stack
    approved = _policy_in_volume(stack)
    assert approved == stack.originals[".sidecar/bridge.yaml"]
    # The agent's own view of .sidecar/ is read-only; the target's is not.
    direct = stack.claude("sh", "-c", "echo x >> /workspace/.sidecar/bridge.yaml")
    assert direct.returncode != 0
    widened = WIDENED.format(foreign=foreign.name, project=stack.project)
    write = stack.routed("cat > /app/.sidecar/bridge.yaml", input_=widened)
    assert write.returncode == 0, write
    assert (stack.root / ".sidecar" / "bridge.yaml").read_text() == widened
    try:
        _refused_without_effect(stack, foreign)  # live

        stack.compose("restart", "sidecar-gate")
        stack.wait_ready()
        _refused_without_effect(stack, foreign)  # after a gate restart

        gate = stack.container("sidecar-gate")
        before = (gate.id, gate.attrs["State"]["StartedAt"])
        up = stack.sidecar("up")
        assert up.returncode == 1, up
        assert "changed  .sidecar/bridge.yaml" in up.stdout
        assert "+  rootsh:" in up.stdout and "+    user: \"0\"" in up.stdout
        assert up.stderr.strip().splitlines()[-1].startswith(
            "sidecar: error: changed since you approved it: .sidecar/bridge.yaml")
        gate.reload()
        assert (gate.id, gate.attrs["State"]["StartedAt"]) == before  # untouched
        assert _policy_in_volume(stack) == approved
        _refused_without_effect(stack, foreign)  # after `sidecar up`

        # Plain compose recreating the gate still runs the last approved policy.
        stack.compose("up", "-d", "--force-recreate", "sidecar-gate")
        stack.wait_ready()
        _refused_without_effect(stack, foreign)
    finally:
        stack.restore()


def _refused_naming(stack: TrustStack, *names: str) -> str:
    """`sidecar up` refuses, names each file, and leaves every container as it was."""
    before = {s: stack.container(s).id for s in ("claude", "sidecar-gate", "app")}
    up = stack.sidecar("up")
    assert up.returncode == 1, up
    for name in names:
        assert any(line.split()[-1] == name for line in up.stdout.splitlines()
                   if line.startswith(("new ", "changed ", "removed "))), (name, up.stdout)
        assert name in up.stderr
    assert {s: stack.container(s).id for s in before} == before
    return up.stdout


def _approve_and_start(stack: TrustStack, *names: str) -> None:
    trusted = stack.sidecar("trust", "--yes")
    assert trusted.returncode == 0, trusted
    for name in names:
        assert name in trusted.stdout
    assert "approved" in trusted.stdout
    up = stack.sidecar("up", "--", "app")
    assert up.returncode == 0, up.stdout + up.stderr


def test_an_override_file_is_refused_by_up_then_approved(trust_stack: TrustStack) -> None:
    stack = trust_stack
    override = ("services:\n  claude:\n    privileged: true\n"
                "    volumes: [/var/run/docker.sock:/var/run/docker.sock, /:/host]\n")
    # compose.override.yaml does not exist yet, so the agent writes it from its own container.
    write = stack.claude("sh", "-c", "cat > /workspace/compose.override.yaml", input_=override)
    assert write.returncode == 0, write
    try:
        diff = _refused_naming(stack, "compose.override.yaml")
        assert "+services.claude.privileged: true" in diff
        claude = stack.container("claude")
        assert claude.attrs["HostConfig"]["Privileged"] is False
        assert not any(m["Destination"] == "/host" for m in claude.attrs["Mounts"])
        _approve_and_start(stack, "compose.override.yaml")
        assert "nothing to approve" in stack.sidecar("trust").stdout
    finally:
        stack.restore()


def test_compose_file_in_dotenv_is_refused_by_up_then_approved(trust_stack: TrustStack) -> None:
    stack = trust_stack
    evil = "services:\n  claude:\n    privileged: true\n"
    # .env is hidden from the agent (/dev/null over it): its own write goes nowhere...
    stack.claude("sh", "-c", "echo COMPOSE_FILE=x >> /workspace/.env")
    assert (stack.root / ".env").read_text() == stack.originals[".env"]
    # ... so a routed command writes it.
    write = stack.routed("cat > /app/evil.yml && "
                         "echo COMPOSE_FILE=compose.yaml:evil.yml >> /app/.env", input_=evil)
    assert write.returncode == 0, write
    try:
        diff = _refused_naming(stack, ".env", "evil.yml")
        assert "+COMPOSE_FILE=compose.yaml:evil.yml" in diff
        assert "+services.claude.privileged: true" in diff
        # The secret in .env is named, never shown.
        assert "top-secret-value" not in diff
        assert stack.container("claude").attrs["HostConfig"]["Privileged"] is False
        _approve_and_start(stack, ".env", "evil.yml")
    finally:
        stack.restore()


def test_an_edited_compose_file_is_refused_by_up_then_approved(trust_stack: TrustStack) -> None:
    stack = trust_stack
    original = stack.originals["compose.yaml"]
    edited = original.replace('    volumes: ["./:/app"]\n', '    volumes: ["./:/app", '
                              '"/var/run/docker.sock:/var/run/docker.sock"]\n')
    assert edited != original
    # Read-only in the agent's own container; writable through the target.
    mine = stack.claude("sh", "-c", "echo '# x' >> /workspace/compose.yaml")
    assert mine.returncode != 0 and "Read-only file system" in mine.stderr
    write = stack.routed("cat > /app/compose.yaml", input_=edited)
    assert write.returncode == 0, write
    try:
        diff = _refused_naming(stack, "compose.yaml")
        assert '"/var/run/docker.sock"' in diff and "+services.app.volumes[1]" in diff
        app = stack.container("app")
        assert not any(m["Destination"] == "/var/run/docker.sock" for m in app.attrs["Mounts"])
        _approve_and_start(stack, "compose.yaml")
        app = stack.container("app")  # approved: recreated with the socket
        assert any(m["Destination"] == "/var/run/docker.sock" for m in app.attrs["Mounts"])
    finally:
        stack.restore()
    app = stack.container("app")
    assert not any(m["Destination"] == "/var/run/docker.sock" for m in app.attrs["Mounts"])


def test_an_approved_policy_change_reaches_the_gate_and_claude(trust_stack: TrustStack) -> None:
    stack = trust_stack
    bridge = stack.originals[".sidecar/bridge.yaml"]
    # A command into `spare`, which no approved command reached: only a gate that reloaded the
    # approved policy lets it through.
    added = bridge.replace("sidecar:\n", "  tool2:\n    container: spare\n    exec: tool\n"
                           "    workdir: /\nsidecar:\n")
    stack.write(".sidecar/bridge.yaml", added)
    try:
        early = stack.claude("sidecar", "exec", "--config", "/workspace/.sidecar/bridge.yaml",
                             "tool2")
        assert early.returncode == 125 and "permission denied" in early.stderr, early
        gate = stack.container("sidecar-gate")
        started = (gate.id, gate.attrs["State"]["StartedAt"])
        assert stack.sidecar("render").returncode == 0
        assert stack.sidecar("trust", "--yes").returncode == 0
        up = stack.sidecar("up")
        assert up.returncode == 0, up.stderr
        assert (f"reloaded: {stack.project}-sidecar-gate-1 (SIGHUP), "
                f"{stack.project}-claude-1 (restarted)") in up.stderr
        assert _policy_in_volume(stack) == added
        # claude restarted: the new command gets its wrapper, and the gate lets it through.
        stack.wait_ready("tool2")
        assert stack.claude("tool2").stdout == "spare 1.0\n"
        gate.reload()
        assert (gate.id, gate.attrs["State"]["StartedAt"]) == started  # reloaded in place
    finally:
        stack.restore()
    gone = stack.claude("tool2")
    assert gone.returncode != 0 and "not found" in gone.stdout + gone.stderr


def test_the_policy_volume_is_read_only_everywhere(trust_stack: TrustStack,
                                                  docker_client: Any) -> None:
    stack = trust_stack
    volume = docker_client.volumes.get(f"{stack.project}_sidecar-policy")
    assert volume.attrs["Labels"]["com.docker.compose.project"] == stack.project
    users = [c for c in docker_client.containers.list(all=True)
             if any(m.get("Name") == volume.name for m in c.attrs["Mounts"])]
    assert {c.labels.get("dev.claude-sidecar.role") for c in users} == {"claude", "gate"}
    for container in users:
        mount = next(m for m in container.attrs["Mounts"] if m.get("Name") == volume.name)
        assert mount["RW"] is False, container.name
        assert mount["Destination"] == "/run/sidecar/policy"
    for user in ("claude", "root"):
        wrote = stack.claude("sh", "-c", "echo x > /run/sidecar/policy/bridge.yaml", user=user)
        assert wrote.returncode != 0 and "Read-only file system" in wrote.stderr, user
    assert _policy_in_volume(stack) == stack.originals[".sidecar/bridge.yaml"]
    env = json.loads(stack.claude("python3", "-c", "import json, os; "
                                  "print(json.dumps(dict(os.environ)))").stdout)
    assert env["BRIDGE_CONFIG"] == "/run/sidecar/policy/bridge.yaml"
