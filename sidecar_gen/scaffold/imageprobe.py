"""Ask the images on this machine which programs they hold, for services no container runs.

A service's image (its `image:`, else the one compose builds for it, `<project>-<service>`)
that exists locally is read without starting anything: a container is created from it (an
entrypoint that does not exist, no network), each program of init's catalogue is looked for on
the image's `PATH` with the engine's stat (`host.container.find_program`, links followed by the
engine; a package manager only where its interpreter is: `REQUIRES`), and the container is
removed with its anonymous volumes. Only catalogue names can come back. No engine, no such
image, or any engine failure: no answer, and init falls back to what it reads and knows. The
whole look is bounded in time (`SECONDS`).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from sidecar_gen.compose.project import ComposeProject, Service
from sidecar_gen.host.container import (
    Deadline,
    PeekError,
    container_path,
    find_program,
    stat_path,
)
from sidecar_gen.host.engine import client_for, find_endpoint
from sidecar_gen.runtime.contract import ROLE_IMAGE_PROBE, ROLE_LABEL
from sidecar_gen.scaffold.programs import REQUIRES

if TYPE_CHECKING:
    from docker import DockerClient

SECONDS = 30  # for every image of the project together
ENGINE_TIMEOUT = 15
WORKERS = 8  # stats in flight at once (the SDK's connection pool holds 10)
MAX_PATH_DIRS = 16  # an image's PATH is a handful of folders; more is not looked through
NEVER_RUN = "/sidecar-init-probe-never-started"  # the entrypoint: nothing to run, if started


def image_of(service: Service, project: str) -> str | None:
    """The image a service runs: its `image:`, else the one compose names its build."""
    if service.image:
        return service.image
    if service.build is not None and project:
        return f"{project}-{service.name}"
    return None


def _programs(client: DockerClient, image: str, candidates: tuple[str, ...],
              deadline: Deadline) -> frozenset[str] | None:
    try:
        config = client.images.get(image).attrs.get("Config") or {}
    except Exception:  # no such image here, or no engine: nothing to read
        return None
    listed = container_path(config).split(":")[:MAX_PATH_DIRS]
    search = ":".join(f for f in listed if f.startswith("/") and len(f) < 256)
    name = f"sidecar-init-probe-{secrets.token_hex(6)}"
    try:
        created = client.api.create_container(
            image, entrypoint=[NEVER_RUN], command=[], name=name, network_disabled=True,
            labels={ROLE_LABEL: ROLE_IMAGE_PROBE},
            host_config=client.api.create_host_config(network_mode="none"))
    except Exception:
        return None
    container_id = str(created.get("Id"))
    try:
        # Every stat of a created container costs the engine a mount of its file system: look
        # only in the PATH's folders that exist, each once (`/bin` is often `/usr/bin`), and a
        # few stats at a time.
        folders = _folders(client, container_id, search, deadline)

        def present(program: str) -> bool:
            return not deadline.expired and find_program(
                client, container_id, program, search_path=folders, workdir="/",
                deadline=deadline) is not None

        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            # Interpreters first; a package manager only where its interpreter is.
            first = [p for p in candidates if REQUIRES.get(p) not in candidates]
            found = {p for p, there in zip(first, pool.map(present, first), strict=True)
                     if there}
            then = [p for p in candidates if p not in first and REQUIRES[p] in found]
            found |= {p for p, there in zip(then, pool.map(present, then), strict=True)
                      if there}
    except PeekError:
        return None
    finally:
        with contextlib.suppress(Exception):
            client.api.remove_container(container_id, v=True, force=True)
    return None if deadline.expired else frozenset(found)


def _folders(client: DockerClient, container_id: str, search: str, deadline: Deadline) -> str:
    """The PATH's folders that exist in the container, links resolved, each once, in order."""
    seen: list[str] = []
    for listed in search.split(":"):
        folder, found = listed, stat_path(client, container_id, listed, deadline)
        if found is not None and found.is_link and found.link_target.startswith("/"):
            folder = found.link_target
            found = stat_path(client, container_id, folder, deadline)
        if found is not None and found.is_dir and folder not in seen:
            seen.append(folder)
    return ":".join(seen)


def probe_images(project: ComposeProject, services: Iterable[str], candidates: Iterable[str],
                 client: DockerClient | None = None) -> dict[str, tuple[str, frozenset[str]]]:
    """Service name -> (its image, the candidates on that image's PATH), for the `services`
    whose image exists on this machine. `client`: a docker SDK client (default: the engine
    `host.engine` finds; none reachable, no answer)."""
    wanted = tuple(candidates)
    own_client = client is None
    if client is None:
        try:
            client = client_for(find_endpoint(), ENGINE_TIMEOUT)
        except Exception:
            return {}
    deadline = Deadline(SECONDS)
    answers: dict[str, frozenset[str] | None] = {}
    out: dict[str, tuple[str, frozenset[str]]] = {}
    try:
        for name in services:
            image = image_of(project.services[name], project.name)
            if image is None or "$" in image:
                continue
            if image not in answers:
                answers[image] = _programs(client, image, wanted, deadline)
            found = answers[image]
            if found is not None:
                out[name] = (image, found)
        return out
    finally:
        if own_client:
            with contextlib.suppress(Exception):
                client.close()
