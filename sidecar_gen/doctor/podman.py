"""What Podman's API service needs on this machine, checked by `sidecar doctor`.

Two limits found running the stack on Podman 4.3 (README: support matrix):

- rootful Podman gives every container `nofile=1048576` (and a large `nproc`); a service whose
  own hard limits are lower cannot set them, and no container starts ("error setting rlimit
  type 7"). The fix is a `default_ulimits` line in containers.conf.
- Podman runs healthchecks from systemd timers: without systemd no check ever runs, every
  service stays "starting", and `sidecar up` (compose `--wait`) waits forever.

Both are read on this machine only when the engine's socket is a local unix socket: the
service's limits through the socket's peer process (SO_PEERCRED, then /proc/PID/limits).
"""

from __future__ import annotations

import os
import re
import socket
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sidecar_gen.doctor import DoctorReport, Status
from sidecar_gen.host.engine import EngineIdentity
from sidecar_gen.runtime.names import ENGINE_SOCKET, GATE_SERVICE

if TYPE_CHECKING:
    from docker import DockerClient

PODMAN_NOFILE = 1048576  # what rootful Podman sets unless containers.conf says otherwise
CONF_FILES = (Path("/usr/share/containers/containers.conf"),
              Path("/etc/containers/containers.conf"))
_NOFILE = re.compile(r'^\s*default_ulimits\s*=.*"nofile=', re.MULTILINE)
FIX_LIMITS = ('add `default_ulimits = ["nofile=N:N", "nproc=M:M"]` (N, M at most the hard limits'
              ' of the Podman service) under [containers] in /etc/containers/containers.conf,'
              " then restart `podman system service`")


def _socket_path(identity: EngineIdentity) -> str | None:
    url = identity.endpoint.url
    return url.removeprefix("unix://") if url.startswith("unix:///") else None


def _peer_pid(path: str) -> int | None:
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(path)
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                    struct.calcsize("3i"))
    except OSError:
        return None
    pid: int = struct.unpack("3i", creds)[0]
    return pid or None


def hard_nofile(pid: int, proc: Path = Path("/proc")) -> int | None:
    """The hard open-files limit of process `pid` (None when unreadable or unlimited)."""
    try:
        text = (proc / str(pid) / "limits").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Max open files"):
            fields = line[len("Max open files"):].split()
            return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
    return None


def conf_sets_nofile(files: tuple[Path, ...] | None = None) -> bool:
    """Whether a containers.conf (`files`, default CONF_FILES) sets the containers' default
    open-files limit."""
    for path in CONF_FILES if files is None else files:
        try:
            if _NOFILE.search(path.read_text(encoding="utf-8", errors="replace")):
                return True
        except OSError:
            continue
    return False


def limits_problem(identity: EngineIdentity) -> str | None:
    """Why rootful Podman's containers cannot start on this host (its service's open-files
    limit is below what it gives each container, and no containers.conf lowers that), else
    None; None too when it cannot be known from here."""
    path = _socket_path(identity)
    if not identity.is_podman or identity.rootless or path is None:
        return None
    pid = _peer_pid(path)
    limit = hard_nofile(pid) if pid else None
    if limit is None or limit >= PODMAN_NOFILE or conf_sets_nofile():
        return None
    return (f"the Podman service may open at most {limit} files, less than the"
            f" {PODMAN_NOFILE} it gives each container: no container can start"
            " (error setting rlimit type 7)")


def check_podman(report: DoctorReport, identity: EngineIdentity) -> None:
    """The Podman-only checks (limits, healthchecks); nothing for other engines."""
    if not identity.is_podman:
        return
    path = _socket_path(identity)
    if path is None:
        report.add("podman", Status.SKIP, f"{identity.endpoint.url} is not a local socket: its"
                   " limits and healthchecks cannot be checked from here")
        return
    problem = limits_problem(identity)
    if problem:
        report.add("podman limits", Status.FAIL, problem, FIX_LIMITS)
    else:
        report.add("podman limits", Status.OK, "containers get open-files limits the"
                   " service can set")
    if os.path.isdir("/run/systemd/system"):
        report.add("podman healthchecks", Status.OK, "systemd runs Podman's healthchecks")
    else:
        report.add("podman healthchecks", Status.WARN,
                   "no systemd: Podman runs no healthchecks by itself, so `sidecar up` waits"
                   " until its timeout for every service with one",
                   "run `podman healthcheck run` for the starting containers from a loop"
                   " (README: Podman set-up)")


_RLIMIT = re.compile(r"error setting rlimit type (\d+)")
_RLIMIT_NAMES = {"6": "processes (nproc)", "7": "open files (nofile)"}


def rlimit_failure(errors: list[str]) -> str | None:
    """The one line for containers that did not start because the engine could not set a
    resource limit (`errors`: their `State.Error`), None when that is not why."""
    for error in errors:
        found = _RLIMIT.search(error)
        if found:
            what = _RLIMIT_NAMES.get(found.group(1), f"resource {found.group(1)}")
            return (f"the engine could not give the containers its default limit of {what},"
                    f" which this host does not allow: {FIX_LIMITS} (Podman), or lower the"
                    " engine's default-ulimits (Docker)")
    return None


def start_errors(client: DockerClient, project: str) -> list[str]:
    """`State.Error` of the compose project's containers that have one."""
    from docker.errors import DockerException

    try:
        containers = client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={project}"})
    except DockerException:
        return []
    errors = []
    for container in containers:
        state = container.attrs.get("State") or {}
        if isinstance(state, dict) and state.get("Error"):
            errors.append(str(state["Error"]))
    return errors


def gate_socket_source(doc: Mapping[str, Any]) -> str | None:
    """The host path the gate service mounts as the engine's socket in a resolved model."""
    services = doc.get("services")
    gate = services.get(GATE_SERVICE) if isinstance(services, dict) else None
    volumes = gate.get("volumes") if isinstance(gate, dict) else None
    for volume in volumes if isinstance(volumes, list) else []:
        if isinstance(volume, dict) and volume.get("target") == ENGINE_SOCKET:
            source = volume.get("source")
            return source if isinstance(source, str) else None
    return None


def check_socket(report: DoctorReport, identity: EngineIdentity,
                 doc: Mapping[str, Any]) -> None:
    """Whether the gate mounts the socket of the engine sidecar reaches: with Podman or
    rootless Docker the default /var/run/docker.sock is another engine's, or none."""
    path = _socket_path(identity)
    source = gate_socket_source(doc)
    if path is None or source is None or identity.kind == "Docker Desktop":
        return  # Desktop's socket in its VM is /var/run/docker.sock, whatever the host's is
    try:
        same = os.path.samefile(path, source)
    except OSError:
        same = False
    if same:
        report.add("gate socket", Status.OK, f"the gate mounts {source}, the engine's socket")
    else:
        report.add("gate socket", Status.FAIL,
                   f"the gate mounts {source}, but the engine is at {path}",
                   f"export DOCKER_SOCKET={path}, then `sidecar trust` and `sidecar up`")


def up_failure_hint(client: DockerClient, project: str) -> str | None:
    """After compose failed to start `project`: the one thing to set when the engine could
    not give the containers its default limits, else None. Compose printed the engine's own
    words already; Docker records why in the containers' State, Podman records nothing there,
    so for Podman the service's limits on this host are looked at."""
    from docker.errors import DockerException

    from sidecar_gen.host.engine import engine_identity

    why = rlimit_failure(start_errors(client, project))
    if why is not None:
        return why
    try:
        problem = limits_problem(engine_identity(client))
    except DockerException:
        return None  # only a hint: compose's own error stands
    return f"{problem}: {FIX_LIMITS}" if problem else None
