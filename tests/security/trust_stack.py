"""A rendered stack started with `sidecar up`, for the hostile-agent and doctor suites.

The project: one busybox service `app` that bind-mounts the project read-write (the normal
case, and the agent's way around `.sidecar/` being read-only in its own container), routed as
`app-sh` (a shell) and `tool` (a stand-in program), run as PUID:PGID, which own the project
like a real user's checkout; and `spare`, which no approved command routes to (yet). Claude
and the routed services have small limits (`sidecar.limits`), so hostile tests hit them. The
Claude image is the test image plus a stand-in `/usr/local/bin/claude`, so `sidecar doctor`
finds Claude Code. Each module gets one stack; a test that changes the project puts it back
with `restore()`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import BUSYBOX_IMAGE, TEST_LABEL, unique_name

PUID, PGID = 1234, 1234
SIDECAR = str(Path(sys.executable).parent / "sidecar")
FAKE_CLAUDE = "9.9.9 (Claude Code stand-in)"

COMPOSE = f"""\
services:
  app:
    image: {BUSYBOX_IMAGE}
    init: true
    entrypoint: [sh, -c]
    command:
      - "printf '#!/bin/sh\\\\necho tool 1.0\\\\n' > /bin/tool && chmod 755 /bin/tool
        && exec sleep 3600"
    volumes: ["./:/app"]
  spare:
    image: {BUSYBOX_IMAGE}
    init: true
    entrypoint: [sh, -c]
    command:
      - "printf '#!/bin/sh\\\\necho spare 1.0\\\\n' > /bin/tool && chmod 755 /bin/tool
        && exec sleep 3600"
"""

# The route every stack here starts from: a shell in the app service, as PUID (a format string).
APP_SH_ROUTE = """\
  app-sh:
    container: app
    exec: sh
    workdir: /app
    paths: {{/workspace: /app}}
    user: "${{PUID}}:${{PGID}}"
"""

BRIDGE = """\
version: "1"
commands:
""" + APP_SH_ROUTE + """\
  tool:
    container: app
    exec: tool
    workdir: /app
    paths: {{/workspace: /app}}
    user: "${{PUID}}:${{PGID}}"
sidecar:
  project: {project}
  image: {image}
  firewall: {{enabled: true}}
  limits:
    claude: {{memory: 512m, pids: 256}}
    routed: {{memory: 256m, pids: 128}}
"""
# What `limits:` above gives the containers (compose spells memory in bytes).
CLAUDE_LIMIT = (512 << 20, 256)
ROUTED_LIMIT = (256 << 20, 128)

DOTENV = "APP_SECRET=top-secret-value\n"


def fake_claude_image(client: Any, base: str) -> str:
    """`base` plus a stand-in Claude Code binary (built once per base image)."""
    tag = f"sidecar-test/claude-fake:{base.rsplit(':', 1)[-1]}"
    lock = Path("/tmp/sidecar-test-claude-image.lock")
    lock.touch(exist_ok=True)
    with lock.open("r+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        with contextlib.suppress(Exception):
            client.images.get(tag)
            return tag
        dockerfile = (f"FROM {base}\n"
                      f"RUN printf '#!/bin/sh\\necho \"{FAKE_CLAUDE}\"\\n' "
                      "> /usr/local/bin/claude && chmod 755 /usr/local/bin/claude\n")
        built = subprocess.run(["docker", "build", "--quiet", "--force-rm", "-t", tag, "-"],
                               input=dockerfile, capture_output=True, text=True, timeout=300,
                               env={**os.environ, "DOCKER_BUILDKIT": "0"})
        assert built.returncode == 0, built.stderr
    return tag


@dataclass
class TrustStack:
    root: Path
    project: str
    env: dict[str, str]
    client: Any
    originals: dict[str, str] = field(default_factory=dict)

    def sidecar(self, *args: str, input_: str | None = None,
                timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """The sidecar CLI on the host, in the project folder, with the stack's environment."""
        return subprocess.run([SIDECAR, *args], cwd=self.root, env=self.env, input=input_,
                              capture_output=True, text=True, timeout=timeout)

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Plain `docker compose` in the project folder."""
        result = subprocess.run(["docker", "compose", "-p", self.project, *args], cwd=self.root,
                                env=self.env, capture_output=True, text=True, timeout=300)
        if check:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def claude(self, *argv: str, user: str = "claude",
               input_: str | None = None) -> subprocess.CompletedProcess[str]:
        """A command in the claude container, as the agent (user claude) by default."""
        return subprocess.run(
            ["docker", "compose", "-p", self.project, "exec", "-T", "--user", user, "claude",
             *argv], cwd=self.root, env=self.env, input=input_, capture_output=True, text=True,
            timeout=120)

    def routed(self, script: str, input_: str | None = None) -> subprocess.CompletedProcess[str]:
        """`app-sh -c SCRIPT` typed by the agent: runs in `app`, which mounts the project."""
        return self.claude("app-sh", "-c", script, input_=input_)

    def container(self, service: str) -> Any:
        """The running container of a compose service."""
        found = self.client.containers.list(all=True, filters={"label": [
            f"com.docker.compose.project={self.project}",
            f"com.docker.compose.service={service}"]})
        assert len(found) == 1, found
        return found[0]

    def wait_ready(self, command: str = "tool", timeout: float = 90) -> None:
        """Until a routed command works from the claude container (wrappers installed).

        First the image's own readiness check (what `--wait` and the `claude` wrapper wait
        for): a routed command started while the firewall still loads can wait on a dropped
        connection far longer than this (it did after a plain `compose start`)."""
        ready = self.compose("exec", "-T", "claude", "/usr/local/sbin/sidecar-health",
                             "--wait", str(int(timeout)), check=False)
        assert ready.returncode == 0, ready.stdout + ready.stderr
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.claude(command)
            if last.returncode == 0 and last.stdout.endswith(" 1.0\n"):
                return
            time.sleep(0.3)
        raise AssertionError(f"the stack never became ready: {last}")

    def write(self, rel: str, text: str) -> None:
        """Write a project file as its owner would (the host user whose ids PUID/PGID are)."""
        path = self.root / rel
        path.write_text(text)
        os.chown(path, PUID, PGID)

    def restore(self) -> None:
        """Put every original file back, drop the others, approve, start: a clean stack."""
        for rel, text in self.originals.items():
            if (self.root / rel).read_text() != text:
                self.write(rel, text)
        for rel in ("compose.override.yaml", "evil.yml"):
            (self.root / rel).unlink(missing_ok=True)
        approved = self.sidecar("trust", "--yes")
        assert approved.returncode == 0, approved.stderr
        up = self.sidecar("up")
        assert up.returncode == 0, up.stdout + up.stderr
        self.wait_ready()


@pytest.fixture(scope="module")
def trust_stack(tmp_path_factory: pytest.TempPathFactory, docker_client: Any,
                claude_image: str, compose_cli: list[str]) -> Iterator[TrustStack]:
    """The stack, approved on first use by `sidecar up` and ready for routed commands."""
    project = unique_name("trust")
    root = tmp_path_factory.mktemp("trust") / project
    (root / ".sidecar").mkdir(parents=True)
    image = fake_claude_image(docker_client, claude_image)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    env.update({"PUID": str(PUID), "PGID": str(PGID), "COMPOSE_PROJECT_NAME": project,
                "XDG_STATE_HOME": str(root.parent / "state"), "NO_COLOR": "1",
                # The broker's credential (a test value: the upstream is never reached).
                "ANTHROPIC_API_KEY": "sk-ant-api03-trust-stack-test-key-0123456789"})
    stack = TrustStack(root, project, env, docker_client)
    (root / "compose.yaml").write_text(COMPOSE)
    (root / ".env").write_text(DOTENV)
    (root / ".sidecar" / "bridge.yaml").write_text(BRIDGE.format(image=image, project=project))
    rendered = stack.sidecar("render")
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    for path in [root, *root.rglob("*")]:
        os.lchown(path, PUID, PGID)
    stack.originals = {rel: (root / rel).read_text() for rel in (
        "compose.yaml", ".env", ".sidecar/bridge.yaml", ".sidecar/compose.yml",
        ".sidecar/allowed-domains.txt")}
    try:
        up = stack.sidecar("up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "trust on first use" in up.stderr
        stack.wait_ready()
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans", "-t", "1", check=False)


@pytest.fixture
def foreign(docker_client: Any) -> Iterator[Any]:
    """A container outside the project, running as root: what a widened policy would reach."""
    container = docker_client.containers.run(
        BUSYBOX_IMAGE, "sleep 3600", name=unique_name("foreign"), detach=True, init=True,
        labels={TEST_LABEL: "1"})
    try:
        yield container
    finally:
        container.remove(force=True)
