"""The whole stack on a real engine, offline: init + render + `sidecar up`, then prove
through `docker compose exec -T claude ...` what the product promises.

App services run on the local busybox image; every routed command gets a stand-in program in
its container (`-v` prints a version, anything else is run as a shell command line), so the
routing, the gate, the exit codes and the paths are the real ones.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import BUSYBOX_IMAGE, unique_name
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parent.parent
IMAGE_VARS = ("PHP_IMAGE", "DB_IMAGE", "NODE_IMAGE", "REDIS_IMAGE", "GO_IMAGE", "POSTGRES_IMAGE")
PUID, PGID = 1234, 1234
STANDIN = ('if [ "$1" = -v ] || [ "$1" = --version ]; then echo "$(basename "$0") stand-in 1.0";'
           ' exit 0; fi; exec sh -c "$*"')


@dataclass
class Stack:
    root: Path
    project: str
    env: dict[str, str]
    files: list[str]
    compose: list[str]
    sidecar: list[str]
    ready_after_up: float = 0.0

    def up(self) -> None:
        """`sidecar up`: the documented way to start (it fills the policy volume)."""
        result = subprocess.run([*self.sidecar, "up"], cwd=self.root, env=self.env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (result.stdout, result.stderr)

    def run(self, *args: str, check: bool = False, timeout: float = 120,
            input_: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*self.compose, "-p", self.project, *self.files, *args],
                                cwd=self.root, env=self.env, capture_output=True, text=True,
                                timeout=timeout, input=input_)
        if check:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def claude(self, *argv: str, user: str | None = None, workdir: str | None = None,
               input_: str | None = None) -> subprocess.CompletedProcess[str]:
        opts = ["-T"]
        if user:
            opts += ["--user", user]
        if workdir:
            opts += ["--workdir", workdir]
        return self.run("exec", *opts, "claude", *argv, input_=input_)


def _override(services: dict[str, Any], commands: dict[str, list[str]]) -> str:
    # The approved policy reaches the gate through `sidecar up` (the stack's policy volume).
    lines = ["services:"]
    for name in services:
        script = "; ".join(
            f"printf '%s\\n' '#!/bin/sh' '{STANDIN}' > /bin/{cmd} && chmod 755 /bin/{cmd}"
            for cmd in commands.get(name, []))
        start = f"{script}; exec sleep 3600" if script else "exec sleep 3600"
        lines += [f"  {name}:", "    entrypoint: [sh, -c]", f"    command: [{json.dumps(start)}]",
                  "    init: true", "    ports: !reset []"]
    return "\n".join(lines) + "\n"


def _bridge_for_test(path: Path, image: str, project: str) -> dict[str, list[str]]:
    """Point the stack at the locally built image, firewall off (its own suite tests it), and
    run the commands as PUID:PGID; return service -> routed command names."""
    yaml = YAML()
    data = yaml.load(path.read_text())
    data["sidecar"]["image"] = image
    # init writes no project name (the gate is to scope services to the compose project it
    # runs in); pinned here so parallel runs of the same example cannot reach each other.
    data["sidecar"]["project"] = project
    data["sidecar"]["firewall"] = {"enabled": False}
    routed: dict[str, list[str]] = {}
    for name, spec in data["commands"].items():
        spec["user"] = "${PUID}:${PGID}"  # filled in by the dispatcher and the gate
        routed.setdefault(str(spec["container"]), []).append(str(name))
    with path.open("w") as handle:
        yaml.dump(data, handle)
    return routed


@pytest.fixture(params=["laravel", "go-service"])
def stack(request: pytest.FixtureRequest, tmp_path: Path, claude_image: str,
          compose_cli: list[str], sidecar_cli: list[str]) -> Iterator[Stack]:
    example = request.param
    project = unique_name(example.replace("-", ""))
    root = tmp_path / project
    shutil.copytree(REPO / "examples" / example, root, ignore=shutil.ignore_patterns(".sidecar"))
    compose_text = (root / "compose.yaml").read_text()
    if "container_name:" in compose_text:
        compose_text = compose_text.replace("go-service-api", f"{project}-api")
        (root / "compose.yaml").write_text(compose_text)
    (root / ".env").write_text("DB_ROOT_PASSWORD=top-secret\nAPP_KEY=base64:do-not-leak\n")
    env = {k: v for k, v in os.environ.items() if k not in IMAGE_VARS}
    env.pop("COMPOSE_PROJECT_NAME", None)
    init = subprocess.run([*sidecar_cli, "init"], cwd=root, env=env, capture_output=True,
                          text=True)
    assert init.returncode == 0, init.stderr
    routed = _bridge_for_test(root / ".sidecar" / "bridge.yaml", claude_image, project)
    render = subprocess.run([*sidecar_cli, "render"], cwd=root, env=env, capture_output=True,
                            text=True)
    assert render.returncode == 0, render.stdout + render.stderr
    services = YAML(typ="safe").load((root / "compose.yaml").read_text())["services"]
    # In the project, where compose (and `sidecar up`) finds it by itself.
    (root / "compose.override.yaml").write_text(_override(services, routed))
    env.update({v: BUSYBOX_IMAGE for v in IMAGE_VARS})
    env.update({"PUID": str(PUID), "PGID": str(PGID), "COMPOSE_PROJECT_NAME": project,
                "XDG_STATE_HOME": str(tmp_path / "state")})
    # A real project belongs to the host user whose ids PUID/PGID carry.
    for path in [root, *root.rglob("*")]:
        os.lchown(path, PUID, PGID)
    stack = Stack(root, project, env, [], compose_cli, sidecar_cli)
    try:
        stack.up()
        # The entrypoint remaps PUID/PGID and installs the wrappers after `up` returns.
        stack.ready_after_up = wait_ready(stack, mapped_command(stack)[0])
        yield stack
    finally:
        stack.run("down", "-v", "--remove-orphans", "-t", "1", timeout=120)


def mapped_command(stack: Stack) -> tuple[str, dict[str, Any]]:
    """The first routed command whose container has the project mounted."""
    bridge = YAML(typ="safe").load((stack.root / ".sidecar" / "bridge.yaml").read_text())
    return next((name, spec) for name, spec in bridge["commands"].items() if spec.get("paths"))


def wait_ready(stack: Stack, command: str, timeout: float = 60) -> float:
    """Seconds from now until a routed command succeeds inside the claude container."""
    start = time.monotonic()
    last = None
    while time.monotonic() - start < timeout:
        last = stack.claude(command, "-v", user="claude")
        if last.returncode == 0:
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"{command} never worked: {last}")


def test_routed_commands_run_through_the_gate(stack: Stack, docker_client: Any) -> None:
    command, spec = mapped_command(stack)
    print(f"first routed command succeeded {stack.ready_after_up:.2f} s after `up -d` returned")
    version = stack.claude(command, "-v", user="claude")
    assert version.stdout == f"{command} stand-in 1.0\n"
    # Exit code, and the working directory mapped from the caller's cwd.
    assert stack.claude(command, "exit 7", user="claude").returncode == 7
    mapping = dict(spec.get("paths", {}))
    claude_dir, target = next(iter(mapping.items()))
    (stack.root / "sub").mkdir(exist_ok=True)
    pwd = stack.claude(command, "pwd", user="claude", workdir=f"{claude_dir}/sub")
    assert pwd.stdout.strip() == f"{target}/sub"
    # Through the gate: no socket inside, DOCKER_HOST is the gate, and the gate logged it.
    assert stack.claude("test", "-e", "/var/run/docker.sock").returncode == 1
    docker_host = stack.claude("sh", "-c", "echo $DOCKER_HOST").stdout.strip()
    assert docker_host == "tcp://sidecar-gate:2375"
    logs = stack.run("logs", "--no-color", "--no-log-prefix", "sidecar-gate").stdout
    decisions = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    execs = [d for d in decisions if d["decision"] == "allow" and d["method"] == "POST"
             and d["path"].endswith("/exec")]
    assert execs, decisions  # the exec creates of the commands above were decided by the gate
    # The gate's healthcheck runs in the image and passes with a usable approved policy.
    assert gate_health(stack, docker_client) == "healthy"


def gate_health(stack: Stack, docker_client: Any, timeout: float = 90) -> str:
    """The gate container's health once it is decided (starting -> healthy or unhealthy)."""
    labels = [f"com.docker.compose.project={stack.project}",
              "com.docker.compose.service=sidecar-gate"]
    (gate,) = docker_client.containers.list(filters={"label": labels})
    deadline = time.monotonic() + timeout
    status = "none"
    while time.monotonic() < deadline:
        gate.reload()
        status = str(gate.attrs["State"].get("Health", {}).get("Status", "none"))
        if status in ("healthy", "unhealthy"):
            break
        time.sleep(1)
    return status


def test_gate_refuses_a_container_create_from_inside(stack: Stack, docker_client: Any) -> None:
    # A create that the engine itself would accept: a real local image, privileged, / mounted.
    name = unique_name("escape")
    script = (
        "import http.client, json, sys\n"
        "c = http.client.HTTPConnection('sidecar-gate', 2375, timeout=10)\n"
        f"body = json.dumps({{'Image': '{BUSYBOX_IMAGE}', 'Cmd': ['true'], 'HostConfig':"
        " {'Privileged': True, 'Binds': ['/:/host']}})\n"
        f"c.request('POST', '/v1.41/containers/create?name={name}', body,"
        " {'Content-Type': 'application/json'})\n"
        "r = c.getresponse(); print(r.status); print(r.read().decode())\n")
    result = stack.claude("python3", "-c", script, user="claude")
    status, _, message = result.stdout.partition("\n")
    assert status == "403", result.stdout + result.stderr
    assert "sidecar gate" in message
    assert docker_client.containers.list(all=True, filters={"name": name}) == []


def _status(text: str) -> dict[str, str]:
    fields = (line.partition(":") for line in text.splitlines())
    return {key: value.strip() for key, _, value in fields}


def test_no_process_gains_privileges_and_the_gate_has_no_capability(stack: Stack,
                                                                    docker_client: Any) -> None:
    """The claude service runs with no-new-privileges, so even a `docker compose exec` that does
    not go through the `claude` wrapper cannot become root through a setuid binary; the gate
    holds the Docker socket with no capability at all."""
    as_claude = stack.claude("cat", "/proc/self/status", user="claude")
    assert as_claude.returncode == 0, as_claude.stderr
    assert _status(as_claude.stdout)["NoNewPrivs"] == "1"
    # A setuid-root program (made here by root, as a compromised image could ship one) gives
    # the agent's user nothing: it runs with the caller's ids.
    made = stack.claude("sh", "-c", "cp /usr/bin/id /usr/local/bin/suid-id && "
                        "chmod 4755 /usr/local/bin/suid-id", user="root")
    assert made.returncode == 0, made.stderr
    ran = stack.claude("/usr/local/bin/suid-id", "-u", user="claude")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == str(PUID)
    labels = [f"com.docker.compose.project={stack.project}",
              "com.docker.compose.service=sidecar-gate"]
    (gate,) = docker_client.containers.list(filters={"label": labels})
    status = _status(gate.exec_run(["cat", "/proc/1/status"]).output.decode())
    assert status["CapEff"] == status["CapBnd"] == status["CapPrm"] == "0" * 16
    assert status["NoNewPrivs"] == "1"
    # Without capabilities it still serves: a routed command reached its target above and
    # here the healthcheck (a request through it) passes.
    assert gate_health(stack, docker_client) == "healthy"


def test_files_belong_to_puid_pgid_and_secrets_are_shadowed(stack: Stack) -> None:
    command, spec = mapped_command(stack)
    claude_dir = next(iter(spec["paths"]))
    routed = stack.claude(command, "touch routed.txt", user="claude", workdir=claude_dir)
    assert routed.returncode == 0, routed.stderr
    own = stack.claude("touch", "/workspace/claude.txt", user="claude")
    assert own.returncode == 0, own.stderr
    for name in ("routed.txt", "claude.txt"):
        info = (stack.root / name).stat()
        assert (info.st_uid, info.st_gid) == (PUID, PGID), name
    shadowed = stack.claude("cat", "/workspace/.env", user="claude")
    assert shadowed.returncode == 0 and shadowed.stdout == ""
    assert "top-secret" in (stack.root / ".env").read_text()  # untouched on the host
    # .sidecar/ is read-only inside: the agent cannot widen its own routes.
    edit = stack.claude("sh", "-c", "echo x >> /workspace/.sidecar/bridge.yaml", user="claude")
    assert edit.returncode != 0


def test_credentials_survive_down_up_and_down_v_leaves_nothing(stack: Stack,
                                                               docker_client: Any) -> None:
    write = stack.claude("sh", "-c", "echo '{\"token\": 1}' > $CLAUDE_CONFIG_DIR/.credentials.json",
                         user="claude")
    assert write.returncode == 0, write.stderr
    stack.run("down", check=True)
    stack.up()
    wait_ready(stack, mapped_command(stack)[0])
    kept = stack.claude("cat", "/home/claude/.claude/.credentials.json", user="claude")
    assert kept.stdout.strip() == '{"token": 1}'
    stack.run("down", "-v", "--remove-orphans", "-t", "1", check=True)
    label = f"com.docker.compose.project={stack.project}"
    assert docker_client.containers.list(all=True, filters={"label": label}) == []
    assert docker_client.volumes.list(filters={"label": label}) == []
    assert docker_client.networks.list(filters={"label": label}) == []
