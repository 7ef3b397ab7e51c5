"""The engine side of a session: the compose CLI (resolve, start) and the Docker API (volumes,
containers, state), both on the host.

Compose is run with the session's state folder as its project directory and without the
caller's `COMPOSE_*` variables, so nothing in the worktree (a `.env` with `COMPOSE_FILE` or
`COMPOSE_PROFILES`) changes what starts: the model file is the whole truth.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sidecar_gen.compose.cli import ComposeTarget, resolve_model
from sidecar_gen.host import process as hostproc
from sidecar_gen.host.engine import connect
from sidecar_gen.runtime.contract import (
    ONEOFF_LABEL,
    PROJECT_LABEL,
    ROLE_CLAUDE,
    ROLE_LABEL,
    SERVICE_LABEL,
)
from sidecar_gen.runtime.names import API_KEY_ENV, PASSTHROUGH_ENV
from sidecar_gen.session.store import SessionError, usage_error

if TYPE_CHECKING:
    from docker.models.containers import Container

VOLUME_LABEL = "com.docker.compose.volume"
HELPER_LABEL = "dev.claude-sidecar.helper"
READY_TIMEOUT = 120.0
# The entrypoint's last line before it waits for `docker compose exec` (images without a
# healthcheck: readiness is this line).
READY_LINE = b"sidecar: ready ("
LOGIN_FILES = (".credentials.json", ".claude.json")


def docker_cli() -> str:
    """The docker CLI (compose is its plugin)."""
    found = shutil.which("docker")
    if found is None:
        raise usage_error("the docker CLI is not installed (sessions use `docker compose`)")
    return found


def _last_lines(text: str, count: int = 3) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return "; ".join(lines[-count:]) or "no output"


def compose_config(project_dir: Path, project: str | None) -> dict[str, Any]:
    """What `docker compose [-p PROJECT] config` resolves in `project_dir`, as the user's shell
    would (their environment, the folder's `.env`), with the Claude container's pass-through
    variables left unset so they stay pass-through (and out of the stored model)."""
    env = {k: v for k, v in os.environ.items() if k not in (*PASSTHROUGH_ENV, API_KEY_ENV)}
    env["PWD"] = str(project_dir)  # `${PWD}` in a compose file means the project folder
    return resolve_model(ComposeTarget(project_dir, project, env)).doc


def _compose_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}


def compose_up(model_file: Path, project: str, services: Iterable[str]) -> None:
    """`docker compose up -d` of exactly the model in `model_file` (readiness: `wait_ready`),
    within the `compose-up` time limit (`host.process`)."""
    argv = [docker_cli(), "compose", "-p", project, "-f", str(model_file),
            "--project-directory", str(model_file.parent), "up", "-d", "--remove-orphans",
            *services]
    result = hostproc.run(hostproc.HostCommand(argv, "compose-up",
                                        f"docker compose up of the session {project}",
                                        cwd=model_file.parent, env=_compose_env()))
    if result.returncode != 0:
        raise SessionError(f"the session's stack did not start: {_last_lines(result.stderr)}")


def _health_argv(container: Container) -> list[str] | None:
    """The command of the container's healthcheck, as the engine runs it."""
    test = ((container.attrs.get("Config") or {}).get("Healthcheck") or {}).get("Test") or []
    if test[:1] == ["CMD"] and len(test) > 1:
        return [str(a) for a in test[1:]]
    if test[:1] == ["CMD-SHELL"] and len(test) == 2:
        return ["/bin/sh", "-c", str(test[1])]
    return None


class SessionEngine:
    """The Docker API on the host (the docker SDK, `host.engine`), for what compose does not
    do."""

    def __init__(self) -> None:
        self.client = connect(timeout=120)

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def containers(self, project: str) -> list[Container]:
        """The containers of compose project `project` (one-off `compose run` ones too)."""
        return list(self.client.containers.list(
            all=True, filters={"label": f"{PROJECT_LABEL}={project}"}))

    def claude_container(self, project: str) -> Container | None:
        """The session's Claude container (by its role label), if it exists."""
        for container in self.containers(project):
            labels = container.labels or {}
            if labels.get(ROLE_LABEL) == ROLE_CLAUDE and labels.get(ONEOFF_LABEL) != "True":
                return container
        return None

    def remove_project(self, project: str) -> list[str]:
        """Remove every container, network and volume of compose project `project`; return
        what was removed (`container NAME`, ...)."""
        removed: list[str] = []
        label = {"label": f"{PROJECT_LABEL}={project}"}
        for container in self.containers(project):
            container.remove(force=True, v=True)
            removed.append(f"container {container.name}")
        for network in self.client.networks.list(filters=label):
            network.remove()
            removed.append(f"network {network.name}")
        for volume in self.client.volumes.list(filters=label):
            volume.remove(force=True)
            removed.append(f"volume {volume.name}")
        return removed

    def volume_exists(self, name: str) -> bool:
        """True when a volume of that name exists."""
        import docker.errors

        try:
            self.client.volumes.get(name)
        except docker.errors.NotFound:
            return False
        return True

    def create_volume(self, name: str, project: str, key: str) -> None:
        """Create the session's volume `name` with the labels compose gives its own volumes,
        so `docker compose up` adopts it instead of warning about a foreign one."""
        self.client.volumes.create(name=name, labels={PROJECT_LABEL: project,
                                                      VOLUME_LABEL: key})

    def copy_volume(self, image: str, source: str, target: str) -> None:
        """Copy everything in volume `source` into `target` with a throwaway container of
        `image` (no network, root, ownership, modes and links kept)."""
        import docker.errors

        try:
            self.client.containers.run(
                image, ["-c", "cp -a /from/. /to/"], entrypoint=["/bin/sh"], user="0:0",
                remove=True, network_disabled=True, labels={HELPER_LABEL: "volume-copy"},
                volumes={source: {"bind": "/from", "mode": "ro"},
                         target: {"bind": "/to", "mode": "rw"}})
        except docker.errors.ContainerError as exc:
            stderr = exc.stderr
            text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else str(stderr)
            raise SessionError(f"copying volume {source} into {target} failed: "
                               f"{_last_lines(text)}") from None
        except docker.errors.ImageNotFound:
            raise SessionError(f"image {image} is missing: build or pull it first") from None

    def copy_files(self, image: str, source: str, target: str, names: Iterable[str]
                   ) -> list[str]:
        """Copy the files `names` at the top of volume `source` into `target` through a
        helper container that is created but never started (nothing runs: the archive API
        reads and writes its mounts); return the names that existed."""
        import docker.errors

        try:
            helper = self.client.containers.create(
                image, ["true"], entrypoint=["/bin/true"], network_disabled=True,
                labels={HELPER_LABEL: "login-copy"},
                volumes={source: {"bind": "/from", "mode": "ro"},
                         target: {"bind": "/to", "mode": "rw"}})
        except docker.errors.ImageNotFound:
            raise SessionError(f"image {image} is missing: build or pull it first") from None
        copied = []
        try:
            for name in names:
                try:
                    stream, _ = helper.get_archive(f"/from/{name}")
                except docker.errors.NotFound:
                    continue
                helper.put_archive("/to", b"".join(stream))
                copied.append(name)
        finally:
            helper.remove(force=True)
        return copied

    def give_back(self, image: str, path: Path, uid: int, gid: int) -> None:
        """Make everything under `path` belong to uid:gid, with a throwaway root container:
        routed commands that ran as root left files the user cannot delete."""
        import docker.errors

        try:
            self.client.containers.run(
                image, ["-c", f"chown -R -h {int(uid)}:{int(gid)} /tree"],
                entrypoint=["/bin/sh"], user="0:0", remove=True, network_disabled=True,
                labels={HELPER_LABEL: "give-back"},
                volumes={str(path): {"bind": "/tree", "mode": "rw"}})
        except docker.errors.DockerException as exc:
            raise SessionError(f"cannot give {path} back to {uid}:{gid}: {exc}") from None

    def _ready(self, container: Container, probed: dict[str, float]) -> bool:
        """One look at one container; SessionError when it will not become ready."""
        state = container.attrs.get("State") or {}
        health = (state.get("Health") or {}).get("Status")
        if container.status in ("exited", "dead", "removing") or health == "unhealthy":
            logs = container.logs(tail=5).decode(errors="replace")
            what = "is unhealthy" if health == "unhealthy" else f"is {container.status}"
            raise SessionError(f"container {container.name} {what}: {_last_lines(logs)}")
        if health == "healthy":
            return True
        if health == "starting":
            # The engine's first probe comes one `interval` after the start (10 s for the
            # gate); the same command, run now, says as much (at most once a second).
            argv = _health_argv(container)
            key = str(container.id)
            if argv is None or time.monotonic() - probed.get(key, 0.0) < 1.0:
                return False
            probed[key] = time.monotonic()
            return bool(container.exec_run(argv).exit_code == 0)
        if (container.labels or {}).get(ROLE_LABEL) == ROLE_CLAUDE:
            return READY_LINE in container.logs()  # an image without a healthcheck
        return bool(container.status == "running")

    def wait_ready(self, project: str, timeout: float = READY_TIMEOUT) -> None:
        """Until every container of compose project `project` is ready: healthy where it has
        a healthcheck, else running (Claude's: its entrypoint's ready line)."""
        deadline = time.monotonic() + timeout
        probed: dict[str, float] = {}
        while True:
            pending = []
            for container in self.containers(project):
                if (container.labels or {}).get(ONEOFF_LABEL) == "True":
                    continue
                if not self._ready(container, probed):
                    pending.append(str(container.name))
            if not pending:
                return
            if time.monotonic() > deadline:
                raise SessionError(f"not ready after {timeout:.0f} s: {', '.join(pending)}")
            time.sleep(0.2)


@dataclass(frozen=True)
class Published:
    """A port the session publishes on the host."""

    service: str
    port: str  # "80/tcp"
    host: str  # "127.0.0.1:49153"


def published_ports(containers: Iterable[Container]) -> list[Published]:
    """The host ports the containers publish, by service (for `new` to say where they are)."""
    out: list[Published] = []
    for container in containers:
        labels = container.labels or {}
        ports: Mapping[str, Any] = (container.attrs.get("NetworkSettings") or {}).get(
            "Ports") or {}
        for port, bindings in sorted(ports.items()):
            for binding in bindings or []:
                ip = binding.get("HostIp") or "0.0.0.0"
                if ":" in ip:
                    continue  # the IPv6 twin of an IPv4 binding: one line per port is enough
                out.append(Published(str(labels.get(SERVICE_LABEL, container.name)), port,
                                     f"{ip}:{binding.get('HostPort')}"))
    return out


def project_state(containers: Iterable[Container]) -> str:
    """One word for a session's containers: running, starting, unhealthy, partial, stopped,
    or absent."""
    members = [c for c in containers if (c.labels or {}).get(ONEOFF_LABEL) != "True"]
    if not members:
        return "absent"
    running = [c for c in members if c.status == "running"]
    if not running:
        return "stopped"
    if len(running) < len(members):
        return "partial"
    health = {((c.attrs.get("State") or {}).get("Health") or {}).get("Status")
              for c in running}
    if "unhealthy" in health:
        return "unhealthy"
    if "starting" in health:
        return "starting"
    return "running"

