"""A first run with no set-up, on a real engine: `sidecar up` in a bundled example with no
`.sidecar/` runs init and render, shows the plan, asks once, and starts the stack; declined,
it leaves the folder and the engine as they were. Then `sidecar claude` enters the stack.

The example's services run on the local busybox image (its `*_IMAGE` variables), kept alive
by a `compose.override.yaml` of the user's own; the Claude image is the local test image
(SIDECAR_IMAGE, which init writes as `sidecar.image`). About 20-30 s in all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import BUSYBOX_IMAGE, unique_name
from screen import on_a_terminal

REPO = Path(__file__).resolve().parent.parent
OVERRIDE = """\
services:
  api:
    container_name: {project}-api
    entrypoint: [sh, -c]
    command: ["exec sleep 3600"]
    init: true
  postgres:
    entrypoint: [sh, -c]
    command: ["exec sleep 3600"]
    init: true
"""


@dataclass
class Example:
    root: Path
    project: str
    env: dict[str, str]
    sidecar: list[str]

    def sidecar_run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.sidecar, *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=timeout)

    def on_terminal(self, args: list[str], answer: bytes | None) -> tuple[int, str]:
        """Run `sidecar ARGS` on a pseudo-terminal, answering `answer` to its question."""
        output, code = on_a_terminal([*self.sidecar, *args], self.root, self.env, answer)
        return code, output.decode("utf-8", "replace")


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture
def example(tmp_path: Path, claude_image: str, compose_cli: list[str],
            sidecar_cli: list[str]) -> Iterator[Example]:
    project = unique_name("firstrun")
    root = tmp_path / project
    shutil.copytree(REPO / "examples" / "go-service", root,
                    ignore=shutil.ignore_patterns(".sidecar"))
    (root / "compose.override.yaml").write_text(OVERRIDE.format(project=project))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "SIDECAR_"))}
    env.update({"GO_IMAGE": BUSYBOX_IMAGE, "POSTGRES_IMAGE": BUSYBOX_IMAGE,
                "SIDECAR_IMAGE": claude_image, "COMPOSE_PROJECT_NAME": project,
                "XDG_STATE_HOME": str(tmp_path / "state")})
    try:
        yield Example(root, project, env, sidecar_cli)
    finally:
        subprocess.run([*compose_cli, "-p", project, "down", "-v", "--remove-orphans", "-t",
                        "1"], cwd=root, env=env, capture_output=True, timeout=120, check=False)


def _engine_state(docker_client: Any, project: str) -> tuple[list[str], list[str]]:
    label = f"com.docker.compose.project={project}"
    containers = docker_client.containers.list(all=True, filters={"label": label})
    volumes = docker_client.volumes.list(filters={"label": label})
    return sorted(c.name for c in containers), sorted(v.name for v in volumes)


def test_a_declined_first_run_leaves_nothing(example: Example, docker_client: Any) -> None:
    before = _files(example.root)
    code, output = example.on_terminal(["up"], b"n\n")
    assert code == 1, output
    screen = output.replace("\r\n", "\n")
    assert "sidecar: first run in this project: wrote .sidecar/bridge.yaml, " in screen
    assert "services added: claude, sidecar-broker, sidecar-gate (image sidecar-test/claude:" \
        in screen
    assert "  new      compose.override.yaml\n" in screen  # what the approval would cover
    assert "sidecar: error: not approved: removed what this run wrote; nothing started" in screen
    assert _files(example.root) == before
    assert _engine_state(docker_client, example.project) == ([], [])
    assert not list((Path(example.env["XDG_STATE_HOME"])).rglob("approval.json"))


def test_a_first_run_starts_the_stack_and_claude_enters_it(example: Example,
                                                            docker_client: Any) -> None:
    override = (example.root / "compose.override.yaml").read_bytes()
    first = example.sidecar_run("up", "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "routes (the command Claude types -> the service that runs it):" in first.stdout
    assert "approved what is there now (trust on first use)" in first.stderr
    assert (example.root / "compose.override.yaml").read_bytes() == override
    containers, _ = _engine_state(docker_client, example.project)
    assert f"{example.project}-claude-1" in containers
    claude = docker_client.containers.get(f"{example.project}-claude-1")
    assert claude.attrs["State"]["Health"]["Status"] == "healthy"
    # The daily `up`: the ordinary check, no second plan.
    again = example.sidecar_run("up")
    assert again.returncode == 0, again.stderr
    assert "first run" not in again.stdout
    assert "matches your approval of " in again.stderr
    # The daily `up` read the running gate's policy over the socket: exactly the approved one.
    from sidecar_gen.compose.cli import ComposeTarget
    from sidecar_gen.trust.actions import check_project, locked
    from sidecar_gen.trust.policyvolume import approved_in_place

    target = ComposeTarget(example.root, env=example.env)
    with locked(target) as store:
        check = check_project(target, store, render_notes=False, reuse=True)
        approved = store.load(target.directory)
    assert check.snapshot.cached and approved is not None
    doc = check.snapshot.resolved.doc
    assert approved_in_place(doc, approved.policy, example.env)
    other = {**approved.policy, "allowed-domains.txt": "evil.example\n"}
    assert not approved_in_place(doc, other, example.env)
    # `sidecar claude` from a subfolder: the stack's Claude Code, its exit code passed through
    # (the test image has no Claude Code: the wrapper in the container says so, exit 127).
    enter = subprocess.run([*example.sidecar, "claude", "--version"], cwd=example.root / "cmd",
                           env=example.env, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=120)
    assert enter.returncode == 127, enter
    assert "claude: Claude Code is not installed in this image" in enter.stderr
    claude.stop(timeout=1)
    stopped = example.sidecar_run("claude")
    assert stopped.returncode == 1
    assert stopped.stderr == (f"sidecar: error: the stack of {example.root} is not running "
                              "(partial): start it with `sidecar up`\n")
