"""End to end on a real engine: init on projects that are really up.

- The examples: every route init writes (by compose service, no container names) resolves, the
  way the dispatcher resolves it, to a running container of that project, and each mapped path
  is where that container really has the project mounted.
- Asking the containers: busybox stand-ins with some programs present and some absent; init
  proposes exactly the present ones; a stopped service's image is read instead (it has none).
- Reading a local image: an image with some programs on its own PATH and no container running;
  init finds exactly those, and the engine's events show a container created and destroyed,
  never started.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import BUSYBOX_IMAGE, unique_name

from sidecar_gen.config import load_bridge
from sidecar_gen.runtime.contract import (
    PROJECT_LABEL,
    ROLE_IMAGE_PROBE,
    ROLE_LABEL,
    pick_member,
    service_members,
)

REPO = Path(__file__).resolve().parents[2]
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


def _user_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in IMAGE_VARS}
    for key in [k for k in env if k.startswith("COMPOSE_")]:
        env.pop(key)
    return env


@pytest.mark.parametrize("example", ["laravel", "node-app", "go-service"])
def test_init_routes_resolve_to_the_running_containers(example: str, tmp_path: Path,
                                                       docker_client: Any,
                                                       compose_cli: list[str],
                                                       sidecar_cli: list[str]) -> None:
    project_dir = tmp_path / unique_name(example)
    shutil.copytree(REPO / "examples" / example, project_dir,
                    ignore=shutil.ignore_patterns(".sidecar"))
    override = tmp_path / "override.yaml"
    override.write_text(_override(project_dir / "compose.yaml"))
    user_env = _user_env()
    stack_env = {**user_env, **{v: BUSYBOX_IMAGE for v in IMAGE_VARS}}
    files = ["-f", str(project_dir / "compose.yaml"), "-f", str(override)]
    if example == "go-service":
        # The fixed container_name would collide between runs: rename it uniquely.
        text = (project_dir / "compose.yaml").read_text()
        (project_dir / "compose.yaml").write_text(text.replace("go-service-api",
                                                               unique_name("api")))
    up = subprocess.run([*compose_cli, *files, "up", "-d", "--quiet-pull"], cwd=project_dir,
                        env=stack_env, capture_output=True, text=True)
    try:
        assert up.returncode == 0, up.stderr
        # The busybox stand-ins have none of the real images' programs: no asking here.
        init = subprocess.run([*sidecar_cli, "init", "--no-probe"], cwd=project_dir,
                              env=user_env, capture_output=True, text=True)
        assert init.returncode == 0, init.stderr
        assert "via docker compose config" in init.stdout
        bridge = load_bridge(project_dir / ".sidecar" / "bridge.yaml")
        assert bridge.commands and not bridge.containers
        assert bridge.stack.project is None
        project = project_dir.name.lower()
        listing = docker_client.api.containers(
            all=True, filters={"label": [f"{PROJECT_LABEL}={project}"]})
        for name, route in bridge.commands.items():
            member = pick_member(service_members(listing, route.container, project))
            assert member is not None, f"{name}: no container of service {route.container}"
            assert member["State"] == "running"
            container = docker_client.containers.get(member["Id"])
            mounts = {m["Destination"]: m["Source"] for m in container.attrs["Mounts"]
                      if m["Type"] == "bind"}
            for claude, target in route.paths:
                rel = os.path.relpath(claude, "/workspace")
                expected = project_dir if rel == "." else project_dir / rel
                assert Path(mounts[target]).resolve() == expected.resolve()
            if route.workdir:
                probe = container.exec_run(["test", "-d", route.workdir])
                assert probe.exit_code == 0, f"{name}: workdir {route.workdir} is no directory"
        validate = subprocess.run([*sidecar_cli, "validate", "--strict"], cwd=project_dir,
                                  env=user_env, capture_output=True, text=True)
        assert validate.returncode == 0, validate.stdout
    finally:
        subprocess.run([*compose_cli, *files, "down", "-v", "--remove-orphans", "-t", "0"],
                       cwd=project_dir, env=stack_env, capture_output=True)


def _stand_in(*programs: str, where: str = "/usr/bin") -> list[str]:
    """A start command that installs executable stand-ins for `programs`, then stays up."""
    script = "; ".join(
        f"mkdir -p {where} && printf '#!/bin/sh\\necho {p}\\n' > {where}/{p} && "
        f"chmod 755 {where}/{p}" for p in programs)
    return ["sh", "-c", f"{script}; touch /ready; exec sleep 3600"]


def _wait_ready(docker_client: Any, container_id: str, timeout: float = 60) -> None:
    container = docker_client.containers.get(container_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if container.exec_run(["test", "-e", "/ready"]).exit_code == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"stand-in {container.name} never became ready")


def test_init_proposes_exactly_the_programs_the_containers_have(
        tmp_path: Path, docker_client: Any, compose_cli: list[str],
        sidecar_cli: list[str]) -> None:
    # An image whose name says "php" (knowledge: it has php, not composer) whose running
    # container has composer and no php: what the container says wins.
    tag = unique_name("t")
    docker_client.images.get(BUSYBOX_IMAGE).tag("sidecar-test/php", tag)
    php_image = f"sidecar-test/php:{tag}"
    project_dir = tmp_path / unique_name("probe")
    project_dir.mkdir()
    compose = {"services": {
        "app": {"image": php_image, "init": True, "volumes": [".:/srv"], "working_dir": "/srv",
                "command": _stand_in("composer", "node")},
        "db": {"image": BUSYBOX_IMAGE, "init": True, "command": _stand_in("mariadb",
                                                                          where="/opt/db/bin"),
               "environment": {"PATH": "/opt/db/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
        "idle": {"image": php_image, "init": True, "command": ["sleep", "3600"]},
    }}
    (project_dir / "compose.yaml").write_text(json.dumps(compose))
    env = _user_env()
    up = subprocess.run([*compose_cli, "up", "-d"], cwd=project_dir, env=env,
                        capture_output=True, text=True)
    try:
        assert up.returncode == 0, up.stderr
        stop = subprocess.run([*compose_cli, "stop", "-t", "0", "idle"], cwd=project_dir,
                              env=env, capture_output=True, text=True)
        assert stop.returncode == 0, stop.stderr
        project = project_dir.name.lower()
        listing = docker_client.api.containers(
            filters={"label": [f"{PROJECT_LABEL}={project}"]})
        for service in ("app", "db"):
            member = pick_member(service_members(listing, service, project))
            assert member is not None
            _wait_ready(docker_client, str(member["Id"]))
        init = subprocess.run([*sidecar_cli, "init"], cwd=project_dir, env=env,
                              capture_output=True, text=True)
        assert init.returncode == 0, init.stderr
        assert "asked the running containers of app, db which programs they have" in \
            init.stdout
        bridge = load_bridge(project_dir / ".sidecar" / "bridge.yaml")
        found = {name: route.container for name, route in bridge.commands.items()}
        # app: composer and node (found), not php (absent there); db: mariadb (found, on its
        # own PATH), nothing else; idle is stopped: its image (busybox under a php name) is
        # read, and has none of them.
        assert found == {"composer": "app", "node": "app", "mariadb": "db"}
        assert "read the images on this machine of idle (no container started)" in init.stdout
        text = (project_dir / ".sidecar" / "bridge.yaml").read_text()
        assert "  composer:  # found in the running container\n" in text
        assert f"  # idle (the image {php_image}: none of the known programs)" in text
        assert bridge.commands["composer"].paths == (("/workspace", "/srv"),)
        # Without asking, the same project gets what the images are known to have.
        again = subprocess.run([*sidecar_cli, "init", "--no-probe", "--force"],
                               cwd=project_dir, env=env, capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
        unprobed = load_bridge(project_dir / ".sidecar" / "bridge.yaml")
        assert {n: r.container for n, r in unprobed.commands.items()} == {"php": "app"}
    finally:
        subprocess.run([*compose_cli, "down", "-v", "--remove-orphans", "-t", "0"],
                       cwd=project_dir, env=env, capture_output=True)
        with contextlib.suppress(Exception):
            docker_client.images.remove(php_image)


def test_init_reads_a_local_image_without_starting_it(tmp_path: Path, docker_client: Any,
                                                      compose_cli: list[str],
                                                      sidecar_cli: list[str]) -> None:
    # php on the image's own PATH, composer a link to it, node present but not executable: the
    # engine's stat of the image's files, through a container that is created and removed.
    tag = f"sidecar-test/imageprobe:{unique_name('t')}"
    context = tmp_path / "image"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {BUSYBOX_IMAGE}\n"
        "RUN mkdir -p /opt/tools && printf '#!/bin/sh\\necho php\\n' > /opt/tools/php"
        " && chmod 755 /opt/tools/php && ln -s /opt/tools/php /opt/tools/composer"
        " && printf 'not a program' > /opt/tools/node && chmod 644 /opt/tools/node\n"
        "ENV PATH=/opt/tools:/bin\n")
    docker_client.images.build(path=str(context), tag=tag, rm=True)
    project_dir = tmp_path / unique_name("imageprobe")
    project_dir.mkdir()
    (project_dir / "compose.yaml").write_text(json.dumps({"services": {
        "app": {"image": tag, "volumes": [".:/srv"], "working_dir": "/srv"}}}))
    since = int(time.time()) - 1
    try:
        init = subprocess.run([*sidecar_cli, "init"], cwd=project_dir, env=_user_env(),
                              capture_output=True, text=True)
        until = int(time.time()) + 1
        assert init.returncode == 0, init.stderr
        assert "read the images on this machine of app (no container started)" in init.stdout
        bridge = load_bridge(project_dir / ".sidecar" / "bridge.yaml")
        assert {n: r.container for n, r in bridge.commands.items()} == {"php": "app",
                                                                        "composer": "app"}
        text = (project_dir / ".sidecar" / "bridge.yaml").read_text()
        assert f"  php:  # found in the image {tag}\n" in text
        events = [e.get("Action") for e in docker_client.api.events(
            since=since, until=until, decode=True,
            filters={"type": "container", "image": tag})]
        assert "create" in events and "destroy" in events, events
        assert "start" not in events, events
        left = docker_client.containers.list(
            all=True, filters={"label": f"{ROLE_LABEL}={ROLE_IMAGE_PROBE}"})
        assert left == []
    finally:
        with contextlib.suppress(Exception):
            docker_client.images.remove(tag, force=True)
