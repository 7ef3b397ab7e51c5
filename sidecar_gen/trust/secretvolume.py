"""The `sidecar-secrets` volume: the broker's real credential, written only from the host.

`sidecar up` resolves the credential on the host (`auth.resolve`: its environment, else the
`sidecar auth` store) and puts it into the volume through the Engine API, as the policy volume
is filled (`policyvolume`: a helper container created, never started, the files sent with
`PUT /containers/{id}/archive`). Only the broker mounts the volume (read-only, at
BROKER_SECRETS); in it, one file per kind (0400), owned by the broker's user (`BROKER_UID`):
nobody else in the broker's container can read them, and no other container sees them. The
main stack's `up` and a session's `new`/`up` all hand it over through `hand_secret`, each into
its own compose project's volume. An empty volume (a stack started by hand) is a broker
without a credential.
The value is never in the project, a compose file, the policy volume, a command line or any
container's environment. A kind not held is an empty file (the archive API cannot
delete one): the broker reads an empty file as no credential of that kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sidecar_gen.auth import Resolved
from sidecar_gen.broker.credentials import GITHUB_TOKEN, KINDS
from sidecar_gen.runtime import contract
from sidecar_gen.runtime.names import (
    BROKER_SECRETS,
    BROKER_SERVICE,
    BROKER_UID,
    ENGINE_SOCKET,
    SECRETS_VOLUME,
)
from sidecar_gen.trust.policyvolume import (
    FILL_PATH,
    PolicyVolumeError,
    current_files,
    ensure_volume,
    helper_container,
    mounted_in_place,
    service_image,
    tar_files,
)

if TYPE_CHECKING:
    from docker import DockerClient

def secret_files(resolved: Resolved) -> dict[str, bytes]:
    """What the volume holds for `resolved`: every kind, empty when not held."""
    files = {kind: b"" for kind in KINDS}
    if resolved.anthropic is not None:
        files[resolved.anthropic.kind] = resolved.anthropic.value.encode("ascii") + b"\n"
    if resolved.github is not None:
        files[GITHUB_TOKEN] = resolved.github.value.encode("ascii") + b"\n"
    return files


def volume_name(model: Mapping[str, Any]) -> str:
    """The engine's name of the project's secrets volume."""
    volumes = model.get("volumes") or {}
    spec = volumes.get(SECRETS_VOLUME) if isinstance(volumes, dict) else None
    return str((spec.get("name") if isinstance(spec, dict) else None)
               or f"{model.get('name') or ''}_{SECRETS_VOLUME}")


def held_in_place(model: Mapping[str, Any], files: Mapping[str, bytes],
                  environ: Mapping[str, str] | None = None) -> bool:
    """True when the project's running broker already holds exactly `files` (the daily `up`:
    nothing to write, no restart; read over the engine's socket, no helper container)."""
    return mounted_in_place(model, contract.ROLE_BROKER, volume_name(model), BROKER_SECRETS,
                            wanted=files, environ=environ)


def archive(files: Mapping[str, bytes]) -> bytes:
    """The volume's files as the engine receives them: readable by the broker's user only."""
    return tar_files(files, mode=0o400, owner=BROKER_UID)


def fill_secrets(client: DockerClient, model: Mapping[str, Any], files: Mapping[str, bytes],
                 compose_version: str | None, image_service: str) -> bool:
    """Put `files` into the project's secrets volume (through a helper made from the image of
    `image_service`). True when the content changed (a running broker must restart: it reads
    its secrets once, at start)."""
    project = str(model.get("name") or "")
    name = volume_name(model)
    ensure_volume(client, name, project, compose_version, SECRETS_VOLUME)
    wanted = dict(files)
    with helper_container(client, service_image(model, image_service), name,
                          project) as helper:
        if current_files(helper, FILL_PATH) == wanted:
            return False
        if not helper.put_archive(FILL_PATH, archive(files)):
            raise PolicyVolumeError(f"the engine refused to write into volume {name}")
    return True


def restart_brokers(client: DockerClient, project: str, timeout: int) -> list[str]:
    """Restart the project's running broker containers (names, one entry each)."""
    done = []
    for container in client.containers.list(filters={"label": [
            f"{contract.PROJECT_LABEL}={project}",
            f"{contract.ROLE_LABEL}={contract.ROLE_BROKER}"]}):
        container.restart(timeout=timeout)
        done.append(f"{container.name} (restarted)")
    return done


@dataclass
class Handed:
    """What `hand_secret` did, in words (never the value)."""

    kind: str | None = None  # the Anthropic credential's kind; None: the broker has none
    credential: str = ""  # "the API key from environment ANTHROPIC_API_KEY"; "" without one
    restarted: list[str] = field(default_factory=list)  # brokers restarted (it changed)
    notes: list[str] = field(default_factory=list)


def hand_secret(model: Mapping[str, Any], environ: Mapping[str, str],
                client: DockerClient | Callable[[], DockerClient],
                compose_version: str | None, image_service: str, *, again: str,
                timeout: int) -> Handed:
    """Give the broker of compose project `model` the credential in force (`auth.resolve`:
    `environ`, else the `sidecar auth` store of its state folder) through its secrets volume;
    restart a running broker when it changed. The one way the main stack (`sidecar up`) and a
    session (`sidecar session new/up`) hand it over; `again` is the command that retries.

    `client` is the engine's client, or how to connect when one is needed: the daily start
    finds the running broker already holding it (`held_in_place`: two reads over the engine's
    socket) and writes nothing."""
    from sidecar_gen.auth import CredentialStore, resolve
    from sidecar_gen.trust.record import state_root

    resolved = resolve(CredentialStore(state_root(environ)), environ)
    files = secret_files(resolved)
    handed = Handed()
    if not held_in_place(model, files, environ):
        engine = client() if callable(client) else client
        if fill_secrets(engine, model, files, compose_version, image_service):
            handed.restarted = restart_brokers(engine, str(model.get("name") or ""), timeout)
    note = github_token_note(model, has_token=resolved.github is not None, again=again)
    if note:
        handed.notes.append(note)
    source = resolved.anthropic
    if source is None:
        handed.notes.append(
            "no Anthropic credential: the broker started without one and Claude Code cannot "
            "reach the model; run `sidecar auth set --api-key` (or --oauth-token), or set "
            f"ANTHROPIC_API_KEY, then `{again}` again")
        return handed
    handed.kind = source.kind
    handed.credential = f"the {source.description} from {source.origin}"
    return handed


def github_token_note(doc: Mapping[str, Any], *, has_token: bool,
                      again: str = "sidecar up") -> str | None:
    """The note for a broker rendered with GitHub repositories (`sidecar.broker.github`) when
    the host holds no GitHub token: git over HTTPS to them would be refused. Else None."""
    broker = (doc.get("services") or {}).get(BROKER_SERVICE) or {}
    argv = broker.get("entrypoint") if isinstance(broker, dict) else None
    listed = [a for a in argv or () if isinstance(a, str) and a.startswith("--github-repo=")]
    if not listed or has_token:
        return None
    return (f"no GitHub token: bridge.yaml lists {len(listed)} GitHub repositor"
            f"{'y' if len(listed) == 1 else 'ies'} (sidecar.broker.github) and the broker "
            f"refuses git over HTTPS to them; run `sidecar auth set --github-token`, then "
            f"`{again}` again")


def design_problems(model: Mapping[str, Any]) -> list[str]:
    """The secrets volume is a plain local volume, mounted by the broker only, read-only; the
    broker mounts no engine socket (no service holds both the secret and the engine)."""
    problems = []
    volumes = model.get("volumes") or {}
    spec = volumes.get(SECRETS_VOLUME) if isinstance(volumes, dict) else None
    if isinstance(spec, dict) and (spec.get("external") or spec.get("driver_opts")
                                   or spec.get("driver") not in (None, "local")):
        problems.append(f"the `{SECRETS_VOLUME}` volume is external or has a driver")
    services = model.get("services") or {}
    for name, service in sorted(services.items() if isinstance(services, dict) else []):
        if not isinstance(service, dict):
            continue
        labels = service.get("labels")
        role = labels.get(contract.ROLE_LABEL) if isinstance(labels, dict) else None
        for mount in service.get("volumes") or []:
            if role == contract.ROLE_BROKER and isinstance(mount, dict) and (
                    mount.get("target") == ENGINE_SOCKET
                    or str(mount.get("source") or "").endswith(".sock")):
                problems.append(f"service {name} (broker) mounts an engine socket "
                                f"({mount.get('source')})")
            if not isinstance(mount, dict) or mount.get("source") != SECRETS_VOLUME:
                continue
            if role != contract.ROLE_BROKER:
                problems.append(f"service {name} mounts `{SECRETS_VOLUME}` (only the broker "
                                "may: it holds the real credential)")
            elif not mount.get("read_only"):
                problems.append(f"service {name} mounts `{SECRETS_VOLUME}` read-write")
    return problems
