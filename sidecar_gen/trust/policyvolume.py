"""The `sidecar-policy` volume: the approved bridge.yaml and allowed-domains.txt, read-only in
the gate and the claude container at `/run/sidecar/policy`, written only from the host.

Written through the Engine API: a helper container that is created but never started mounts
the volume and receives the files with `PUT /containers/{id}/archive`; then it is removed. No
process ever runs with the volume writable. The volume carries the labels compose puts on its
own volumes, so compose adopts it (and `docker compose down -v` removes it).
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from sidecar_gen.errors import ExitCode, SidecarError
from sidecar_gen.runtime import contract
from sidecar_gen.runtime.names import BRIDGE_CONFIG_ENV, POLICY_BRIDGE, POLICY_DIR, POLICY_VOLUME

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container
    from docker.models.volumes import Volume

FILL_PATH = "/sidecar-policy"  # where the helper mounts it: not a path the image has
HELPER_ROLE = "policy-writer"
VOLUME_LABEL = "com.docker.compose.volume"
VERSION_LABEL = "com.docker.compose.version"


class PolicyVolumeError(SidecarError):
    """The policy volume cannot be found, created or written."""

    exit_code = ExitCode.FINDINGS


def volume_name(model: Mapping[str, Any]) -> str:
    """The engine's name of the policy volume in a resolved compose model."""
    volumes = model.get("volumes") or {}
    spec = volumes.get(POLICY_VOLUME) if isinstance(volumes, dict) else None
    if spec is None:
        raise PolicyVolumeError(
            f"the compose model declares no `{POLICY_VOLUME}` volume: run `sidecar render` "
            "(the generated .sidecar/compose.yml predates it), then `sidecar trust`")
    name = spec.get("name") if isinstance(spec, dict) else None
    return str(name or f"{model.get('name')}_{POLICY_VOLUME}")


def _policy_mounts(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    volumes = spec.get("volumes")
    return [v for v in (volumes if isinstance(volumes, list) else [])
            if isinstance(v, dict) and (v.get("source") == POLICY_VOLUME
                                        or v.get("target") == POLICY_DIR)]


def design_problems(model: Mapping[str, Any]) -> list[str]:
    """What in a resolved model breaks the policy volume's design, whoever approved it: the
    volume is a plain local volume, mounted read-only wherever it is mounted, and the gate and
    claude see exactly it at POLICY_DIR. (A diff line like `read_only: false` is easy to miss;
    this is not.)"""
    problems = []
    volumes = model.get("volumes") or {}
    spec = volumes.get(POLICY_VOLUME) if isinstance(volumes, dict) else None
    if isinstance(spec, dict):
        if spec.get("external"):
            problems.append(f"the `{POLICY_VOLUME}` volume is external")
        if spec.get("driver") not in (None, "local") or spec.get("driver_opts"):
            problems.append(f"the `{POLICY_VOLUME}` volume has a driver or driver options "
                            "(a bind in disguise?)")
    services = model.get("services") or {}
    for name, service in sorted(services.items() if isinstance(services, dict) else []):
        if not isinstance(service, dict):
            continue
        mounts = _policy_mounts(service)
        for mount in mounts:
            if mount.get("source") == POLICY_VOLUME and not mount.get("read_only"):
                problems.append(f"service {name} mounts `{POLICY_VOLUME}` read-write")
            if mount.get("target") == POLICY_DIR and mount.get("source") != POLICY_VOLUME:
                problems.append(f"service {name} mounts {mount.get('source')} at {POLICY_DIR}")
        labels = service.get("labels")
        role = labels.get(contract.ROLE_LABEL) if isinstance(labels, dict) else None
        if role in (contract.ROLE_GATE, contract.ROLE_CLAUDE) and not any(
                m.get("source") == POLICY_VOLUME and m.get("target") == POLICY_DIR
                for m in mounts):
            problems.append(f"service {name} ({role}) does not mount `{POLICY_VOLUME}` at "
                            f"{POLICY_DIR}")
        if role == contract.ROLE_GATE and not _gate_reads_policy(service):
            problems.append(f"service {name} (gate) does not run with --config={POLICY_BRIDGE}")
        env = service.get("environment")
        if role == contract.ROLE_CLAUDE and (
                not isinstance(env, dict) or env.get(BRIDGE_CONFIG_ENV) != POLICY_BRIDGE):
            problems.append(f"service {name} (claude) does not set "
                            f"{BRIDGE_CONFIG_ENV}={POLICY_BRIDGE}")
    return problems


def _gate_reads_policy(service: Mapping[str, Any]) -> bool:
    words = [str(w) for part in ("entrypoint", "command")
             for w in (service.get(part) or []) if isinstance(service.get(part), list)]
    return any(word == f"--config={POLICY_BRIDGE}" or (word == "--config" and nxt == POLICY_BRIDGE)
               for word, nxt in zip(words, [*words[1:], ""], strict=False))


def service_image(model: Mapping[str, Any], service: str) -> str:
    """The image of one service of the model."""
    spec = (model.get("services") or {}).get(service)
    image = spec.get("image") if isinstance(spec, dict) else None
    if not image:
        raise PolicyVolumeError(f"the compose model has no image for service {service}")
    return str(image)


def ensure_volume(client: DockerClient, name: str, project: str,
                  compose_version: str | None, key: str = POLICY_VOLUME) -> Volume:
    """The volume (`key` in the compose file), created with compose's labels when missing;
    refuse one of another project."""
    import docker.errors

    try:
        volume = client.volumes.get(name)
    except docker.errors.NotFound:
        labels = {contract.PROJECT_LABEL: project, VOLUME_LABEL: key,
                  VERSION_LABEL: compose_version or ""}
        return client.volumes.create(name=name, driver="local", labels=labels)
    labels = volume.attrs.get("Labels") or {}
    if labels.get(contract.PROJECT_LABEL) != project:
        raise PolicyVolumeError(
            f"volume {name} exists but does not belong to compose project {project}: "
            "remove it (docker volume rm) and run `sidecar up` again")
    return volume


def tar_files(files: Mapping[str, bytes], *, mode: int = 0o644, owner: int = 0) -> bytes:
    """An archive of `files` for the engine's `PUT /archive`, each with `mode`, owned by
    `owner` (user and group)."""
    import tarfile

    buffer = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, now
            info.uid = info.gid = owner
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _untar(stream: Iterable[bytes]) -> dict[str, bytes]:
    import tarfile

    data = b"".join(stream)
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            if member.isfile():
                handle = archive.extractfile(member)
                if handle is not None:
                    out[member.name.split("/", 1)[-1]] = handle.read()
    return out


def has_image(client: DockerClient, image: str) -> bool:
    """True when the engine has `image` locally."""
    import docker.errors

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


@contextlib.contextmanager
def helper_container(client: DockerClient, image: str, volume: str,
            project: str) -> Iterator[Container]:
    import docker.errors

    if not has_image(client, image):
        raise PolicyVolumeError(f"image {image} is not on this machine: pull or build it "
                                "first (docker compose pull sidecar-gate)")
    helper = client.containers.create(
        image, command=["true"], entrypoint=["true"], network_mode="none",
        volumes={volume: {"bind": FILL_PATH, "mode": "rw"}},
        labels={contract.ROLE_LABEL: HELPER_ROLE, "dev.claude-sidecar.project": project})
    try:
        yield helper
    finally:
        with contextlib.suppress(docker.errors.APIError):
            helper.remove(force=True, v=False)


def current_files(container: Container, path: str) -> dict[str, bytes]:
    """The regular files under `path` in `container` (names relative to it), read through the
    engine's archive."""
    import docker.errors

    try:
        stream, _stat = container.get_archive(path + "/.")
    except docker.errors.NotFound:
        return {}
    return _untar(stream)


def _reader(client: DockerClient, project: str, volume: str) -> Container | None:
    """A running container of the project that mounts the volume at POLICY_DIR (the gate):
    reading through it spares creating a helper when nothing changed."""
    for container in client.containers.list(filters={"label": [
            f"{contract.PROJECT_LABEL}={project}", f"{contract.ROLE_LABEL}={contract.ROLE_GATE}"]}):
        if any(m.get("Name") == volume and m.get("Destination") == POLICY_DIR
               for m in container.attrs.get("Mounts") or ()):
            return container
    return None


def fill_policy(client: DockerClient, model: Mapping[str, Any], files: Mapping[str, str],
                compose_version: str | None, image_service: str) -> bool:
    """Put `files` (the approved policy) into the project's policy volume, through a helper
    made from the image of service `image_service` (the gate's: the stack needs it anyway).

    Returns True when the volume's content changed (the running gate and claude must then pick
    it up), False when it already held exactly these files.
    """
    project = str(model.get("name") or "")
    name = volume_name(model)
    image = service_image(model, image_service)
    ensure_volume(client, name, project, compose_version)
    wanted = {key: value.encode("utf-8") for key, value in files.items()}
    reader = _reader(client, project, name)
    if reader is not None and current_files(reader, POLICY_DIR) == wanted:
        return False
    with helper_container(client, image, name, project) as helper:
        if current_files(helper, FILL_PATH) == wanted:
            return False
        if not helper.put_archive(FILL_PATH, tar_files(wanted)):
            raise PolicyVolumeError(f"the engine refused to write into volume {name}")
    return True


def approved_in_place(model: Mapping[str, Any], files: Mapping[str, str],
                      environ: Mapping[str, str] | None = None) -> bool:
    """True when the project's running gate already reads exactly `files` from the project's
    policy volume: the daily `up` then has nothing to write and nobody to reload."""
    try:
        name = volume_name(model)
    except PolicyVolumeError:
        return False  # `fill_policy` says why
    wanted = {key: value.encode("utf-8") for key, value in files.items()}
    return mounted_in_place(model, contract.ROLE_GATE, name, POLICY_DIR, wanted=wanted,
                            environ=environ)


def mounted_in_place(model: Mapping[str, Any], role: str, volume: str, destination: str, *,
                     wanted: Mapping[str, bytes],
                     environ: Mapping[str, str] | None = None) -> bool:
    """True when a running container of the project with `role` mounts `volume` at
    `destination` and finds exactly `wanted` there.

    Asked over the engine's unix socket with the standard library's sockets
    (`runtime.httpclient`: the docker SDK costs a tenth of a second to import); two reads,
    nothing written. False whenever it cannot be told that way (another transport, no running
    container, an unexpected answer): the caller then writes the volume, which decides.
    """
    import tarfile

    from sidecar_gen.host.engine import find_endpoint
    from sidecar_gen.runtime import httpclient, jsonlite, transport
    from sidecar_gen.runtime.errors import DispatchError

    try:
        endpoint = find_endpoint(environ)
        if endpoint.tls_dir is not None or not endpoint.url.startswith("unix://"):
            return False
        sock = transport.connect(transport.parse_host(endpoint.url), timeout=30)
    except (SidecarError, DispatchError):
        return False
    conn = httpclient.Connection(sock)
    quote = httpclient.quote
    try:
        project = str(model.get("name") or "")
        # The volume is not inspected: one a running container of the project mounts is the
        # one `ensure_volume` accepted before that container was created, and in use it
        # cannot be removed and made anew.
        filters = jsonlite.dumps({"label": [f"{contract.PROJECT_LABEL}={project}",
                                            f"{contract.ROLE_LABEL}={role}"]})
        listed = conn.request("GET", f"/containers/json?filters={quote(filters)}")
        for container in listed.json() if listed.status == 200 else ():
            if not any(m.get("Name") == volume and m.get("Destination") == destination
                       for m in container.get("Mounts") or ()):
                continue
            archive = conn.request("GET", f"/containers/{quote(str(container.get('Id')))}"
                                          f"/archive?path={quote(destination + '/.')}")
            return archive.status == 200 and _untar([archive.body]) == dict(wanted)
        return False
    except (OSError, ValueError, TypeError, AttributeError, tarfile.TarError, DispatchError,
            SidecarError):
        return False
    finally:
        conn.close()
