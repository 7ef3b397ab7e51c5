"""Ask the project's running containers which programs they really have (`command -v`).

This runs on the host, as the user, through the Docker SDK: one exec per running service, in
the container the dispatcher would pick (`contract.service_members` / `pick_member`), as the
container's default user. Only names from init's own candidate list can come back, whatever
the container prints. No engine, no running container, no `sh`: no answer, and init falls back
to what it knows about the images.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sidecar_gen.compose.project import ComposeProject
from sidecar_gen.host.engine import client_for, find_endpoint
from sidecar_gen.runtime.contract import PROJECT_LABEL, is_protected, pick_member, service_members

if TYPE_CHECKING:
    from docker import DockerClient

# Prints each argument that names a program on the container's PATH.
PROBE_SCRIPT = 'for p do command -v "$p" >/dev/null 2>&1 && printf "%s\\n" "$p"; done; exit 0'
MAX_OUTPUT = 64 * 1024
ENGINE_TIMEOUT = 15


def _listing(client: DockerClient, project: str) -> list[dict[str, Any]]:
    containers = client.api.containers(filters={"label": [f"{PROJECT_LABEL}={project}"],
                                                "status": "running"})
    return [c for c in containers if isinstance(c, dict) and not is_protected(c)]


def _ask(client: DockerClient, container_id: str,
         candidates: tuple[str, ...]) -> frozenset[str] | None:
    try:
        exec_id = str(client.api.exec_create(container_id, ["sh", "-c", PROBE_SCRIPT, "sh",
                                                            *candidates],
                                             stdout=True, stderr=False)["Id"])
        output = client.api.exec_start(exec_id)
        status = client.api.exec_inspect(exec_id).get("ExitCode")
    except Exception:  # any engine failure means "no answer", never a crash
        return None
    if status != 0 or not isinstance(output, bytes):
        return None  # no sh in the image, or the exec was refused
    lines = output[:MAX_OUTPUT].decode("utf-8", "replace").splitlines()
    return frozenset(line.strip() for line in lines) & frozenset(candidates)


def probe_services(project: ComposeProject, candidates: Iterable[str],
                   client: DockerClient | None = None) -> dict[str, frozenset[str]]:
    """Service name -> the candidates found in its running container (services that answered).

    `client` is a docker SDK client; by default one is made for the engine `host.engine` finds,
    and an unreachable engine gives an empty answer.
    """
    wanted = tuple(candidates)
    own_client = client is None
    if client is None:
        try:
            client = client_for(find_endpoint(), ENGINE_TIMEOUT)
        except Exception:  # no engine: nothing to ask
            return {}
    try:
        try:
            listing = _listing(client, project.name)
        except Exception:
            return {}
        found: dict[str, frozenset[str]] = {}
        for service in project.services:
            member = pick_member(service_members(listing, service, project.name))
            if member is None or member.get("State") != "running":
                continue
            answer = _ask(client, str(member.get("Id")), wanted)
            if answer is not None:
                found[service] = answer
        return found
    finally:
        if own_client:
            with contextlib.suppress(Exception):
                client.close()
