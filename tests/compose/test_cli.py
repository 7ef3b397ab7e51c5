"""What `sidecar up` hands to compose is exactly the model it verified: compose accepts it on
stdin and resolves it to itself, whatever the folder says by then."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from sidecar_gen.compose.cli import ComposeTarget, resolve_model, up_argv


def test_the_verified_model_round_trips_through_stdin(target: ComposeTarget) -> None:
    root = target.directory
    (root / "compose.yaml").write_text(
        "name: demo\nservices:\n  app:\n    image: busybox\n    profiles: [dev]\n"
        "    command: [sh, -c, 'echo $$HOME ${GREETING:-hi}']\n"
        "    environment: {SHELL_TOKEN: null, UNSET: null}\n"
        "    labels: {literal: \"$$x\"}\n")
    env = {**target.environ(), "COMPOSE_PROFILES": "dev"}
    model = resolve_model(ComposeTarget(root, env=env))
    assert model.profiles() == ["dev"]
    # By the time compose starts, the agent has rewritten everything in the folder.
    (root / ".env").write_text("UNSET=filled-later\nGREETING=changed\nCOMPOSE_FILE=evil.yml\n"
                               "COMPOSE_PROFILES=other\n")
    (root / "compose.yaml").write_text("services:\n  app:\n    image: evil\n")
    argv = up_argv(target, model, [])
    assert argv[-5:] == ["-f", "-", "up", "-d", "--wait"]
    config = [*argv[:-3], "config", "--format", "json"]  # the same flags, asking for the model
    result = subprocess.run(config, input=model.text, capture_output=True, text=True,
                            cwd=root, env=target.environ(), check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == model.doc
    service = model.doc["services"]["app"]
    assert service["environment"] == {"SHELL_TOKEN": "shell-secret", "UNSET": None}
    assert service["command"] == ["sh", "-c", "echo $$HOME hi"]


def test_a_session_names_its_own_project(target: ComposeTarget) -> None:
    # `sidecar session` runs the same checks on `-p <project>-NAME`.
    session = ComposeTarget(target.directory, project="demo-s1", env=target.environ())
    assert session.argv("ps") == ["docker", "compose", "-p", "demo-s1", "ps"]
    model = resolve_model(session)
    assert model.name == "demo-s1"
    assert model.doc["networks"]["default"]["name"] == "demo-s1_default"



def test_compose_reaches_the_engine_container_host_names(tmp_path: Any) -> None:
    """Compose reads DOCKER_HOST only: Podman's CONTAINER_HOST is handed on as that; the
    socket the gate mounts (DOCKER_SOCKET) is never derived (it is part of the approval)."""
    podman = "unix:///run/podman/podman.sock"

    def environ(**env: str) -> dict[str, str]:
        result = ComposeTarget(tmp_path, env={"PATH": "/bin", **env}).environ()
        return {k: v for k, v in result.items() if k.startswith("DOCKER_")}

    assert environ(CONTAINER_HOST=podman) == {"DOCKER_HOST": podman}
    assert environ(CONTAINER_HOST=podman, DOCKER_HOST="unix:///d.sock") == {
        "DOCKER_HOST": "unix:///d.sock"}
    assert environ(DOCKER_HOST=podman) == {"DOCKER_HOST": podman}
    assert environ() == {}
