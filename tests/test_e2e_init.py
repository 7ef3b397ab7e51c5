"""End to end on a real engine: init on example projects that are really up."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import BUSYBOX_IMAGE, unique_name

from sidecar_gen.config import load_bridge

REPO = Path(__file__).resolve().parent.parent
IMAGE_VARS = ("PHP_IMAGE", "DB_IMAGE", "NODE_IMAGE", "REDIS_IMAGE", "GO_IMAGE", "POSTGRES_IMAGE")


def _override(compose_file: Path) -> str:
    """Keep every service of the example alive on the local busybox image."""
    from ruamel.yaml import YAML

    services = YAML(typ="safe").load(compose_file.read_text())["services"]
    lines = ["services:"]
    for name in services:
        lines += [f"  {name}:", "    command: [sleep, '3600']", "    init: true",
                  "    ports: !reset []", "    depends_on: !reset []"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("example", ["laravel", "node-app", "go-service"])
def test_init_names_the_running_containers(example: str, tmp_path: Path, docker_client: Any,
                                           compose_cli: list[str], sidecar_cli: list[str]) -> None:
    project_dir = tmp_path / unique_name(example)
    shutil.copytree(REPO / "examples" / example, project_dir,
                    ignore=shutil.ignore_patterns(".sidecar"))
    override = tmp_path / "override.yaml"
    override.write_text(_override(project_dir / "compose.yaml"))
    env = {**os.environ, **{v: BUSYBOX_IMAGE for v in IMAGE_VARS}}
    env.pop("COMPOSE_PROJECT_NAME", None)
    files = ["-f", str(project_dir / "compose.yaml"), "-f", str(override)]
    if example == "go-service":
        # The fixed container_name would collide between runs: rename it uniquely.
        text = (project_dir / "compose.yaml").read_text()
        fixed = unique_name("api")
        (project_dir / "compose.yaml").write_text(text.replace("go-service-api", fixed))
    up = subprocess.run([*compose_cli, *files, "up", "-d", "--quiet-pull"], cwd=project_dir,
                        env=env, capture_output=True, text=True)
    try:
        assert up.returncode == 0, up.stderr
        # init sees the real image names (the busybox stand-in is only for running the stack).
        user_env = {k: v for k, v in env.items() if k not in IMAGE_VARS}
        init = subprocess.run([*sidecar_cli, "init"], cwd=project_dir, env=user_env,
                              capture_output=True, text=True)
        assert init.returncode == 0, init.stderr
        assert "via docker compose config" in init.stdout
        bridge = load_bridge(project_dir / ".sidecar" / "bridge.yaml")
        ps = subprocess.run([*compose_cli, *files, "ps", "--format", "json"], cwd=project_dir,
                            env=env, capture_output=True, text=True, check=True)
        raw = ps.stdout.strip()
        rows = json.loads(raw) if raw.startswith("[") else [json.loads(x) for x in
                                                             raw.splitlines()]
        running = {row["Service"]: row["Name"] for row in rows}
        assert bridge.containers, "init proposed no containers"
        for logical, real in bridge.containers.items():
            assert running[logical] == real
            # The name is really a container the engine knows, and it is running.
            assert docker_client.containers.get(real).status == "running"
        # Each mapped path is where the project really is mounted in that container.
        for command in bridge.commands.values():
            container = docker_client.containers.get(bridge.resolve_container(command.container))
            mounts = {m["Destination"]: m["Source"] for m in container.attrs["Mounts"]
                      if m["Type"] == "bind"}
            for claude, target in command.paths:
                rel = os.path.relpath(claude, "/workspace")
                expected = project_dir if rel == "." else project_dir / rel
                assert Path(mounts[target]).resolve() == expected.resolve()
        validate = subprocess.run([*sidecar_cli, "validate", "--strict"], cwd=project_dir,
                                  capture_output=True, text=True)
        assert validate.returncode == 0, validate.stdout
    finally:
        subprocess.run([*compose_cli, *files, "down", "-v", "--remove-orphans", "-t", "0"],
                       cwd=project_dir, env=env, capture_output=True)
