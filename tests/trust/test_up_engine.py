"""`sidecar up` against the real engine, where a failure must leave nothing behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import unique_name
from images import BUSYBOX_IMAGE

from sidecar_gen.compose.cli import ComposeTarget
from sidecar_gen.trust import actions

SIDECAR = str(Path(sys.executable).parent / "sidecar")
# A registry on a closed local port: the pull fails at once and nothing leaves the machine.
MISSING = "localhost:1/sidecar-test-missing:1"


def test_an_image_that_cannot_be_pulled_stops_up_before_anything_exists(
        target: ComposeTarget, docker_client: Any) -> None:
    # The policy volume is filled through a helper made from the gate's image: it must exist.
    (target.directory / ".sidecar" / "compose.yml").write_text(
        f"services:\n  claude:\n    image: {MISSING}\n  sidecar-gate:\n    image: {MISSING}\n"
        "volumes:\n  sidecar-policy:\n")
    project = unique_name("trustpull")
    env = {**target.environ(), "COMPOSE_PROJECT_NAME": project}
    up = subprocess.run([SIDECAR, "up"], cwd=target.directory, env=env, capture_output=True,
                        text=True, timeout=120)
    assert up.returncode == 1, up
    assert "connection refused" in up.stderr  # compose's own reason, then ours in one line
    assert up.stderr.splitlines()[-1].startswith(
        "sidecar: error: docker compose pull sidecar-gate failed (exit "), up.stderr
    label = f"com.docker.compose.project={project}"
    assert docker_client.containers.list(all=True, filters={"label": label}) == []
    assert docker_client.volumes.list(filters={"label": label}) == []


def test_a_build_at_start_uses_the_checked_dockerfile(target: ComposeTarget,
                                                      docker_client: Any) -> None:
    """The agent rewrites the Dockerfile between `up`'s check and compose's build (the window
    while the policy volume is filled): the image is built from the bytes that were checked."""
    root = target.directory
    (root / ".sidecar" / "compose.yml").write_text(
        f"services:\n  sidecar-gate:\n    image: {BUSYBOX_IMAGE}\n"
        "    volumes: [sidecar-policy:/run/sidecar/policy:ro]\n"
        "volumes:\n  sidecar-policy:\n")
    (root / "compose.yaml").write_text(
        "services:\n  built:\n    build: ./ctx\n    command: [sleep, '300']\n"
        "include:\n  - .sidecar/compose.yml\n")
    (root / "ctx").mkdir()
    dockerfile = root / "ctx" / "Dockerfile"
    dockerfile.write_text(f"FROM {BUSYBOX_IMAGE}\nARG X=dollar\nRUN echo \"$X\" > /dollar\n"
                          "RUN echo approved > /which\n")
    project = unique_name("trustbuild")
    target = ComposeTarget(root, project=project, env=target.environ())
    label = f"com.docker.compose.project={project}"
    try:
        with actions.locked(target) as store:
            check = actions.check_project(target, store, render_notes=False)

            def swap(_result: actions.StackUp) -> None:
                dockerfile.write_text(f"FROM {BUSYBOX_IMAGE}\nRUN echo swapped > /which\n")

            result = actions.start(check, ["built"], docker_client, before_compose=swap)
        assert result.compose_code == 0
        built = docker_client.containers.list(filters={"label": label})
        assert len(built) == 1
        assert built[0].exec_run(["cat", "/which"]).output == b"approved\n"
        # `$` reached the Dockerfile as written (compose would interpolate an unescaped one).
        assert built[0].exec_run(["cat", "/dollar"]).output == b"dollar\n"
    finally:
        subprocess.run(["docker", "compose", "-p", project, "down", "-v", "--rmi", "local",
                        "-t", "0"], cwd=root, capture_output=True, check=False, timeout=120)
