"""`sidecar up` against the real engine, where a failure must leave nothing behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import unique_name

from sidecar_gen.composecli import ComposeTarget

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
