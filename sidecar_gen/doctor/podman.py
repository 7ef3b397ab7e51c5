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
from pathlib import Path

from sidecar_gen.doctor import DoctorReport, Status
from sidecar_gen.host.engine import EngineIdentity

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


def conf_sets_nofile(files: tuple[Path, ...] = CONF_FILES) -> bool:
    """Whether a containers.conf sets the containers' default open-files limit."""
    for path in files:
        try:
            if _NOFILE.search(path.read_text(encoding="utf-8", errors="replace")):
                return True
        except OSError:
            continue
    return False


def check_podman(report: DoctorReport, identity: EngineIdentity) -> None:
    """The Podman-only checks (limits, healthchecks); nothing for other engines."""
    if not identity.is_podman:
        return
    path = _socket_path(identity)
    if path is None:
        report.add("podman", Status.SKIP, f"{identity.endpoint.url} is not a local socket: its"
                   " limits and healthchecks cannot be checked from here")
        return
    pid = _peer_pid(path)
    limit = hard_nofile(pid) if pid else None
    if (not identity.rootless and limit is not None and limit < PODMAN_NOFILE
            and not conf_sets_nofile()):
        report.add("podman limits", Status.FAIL,
                   f"the Podman service may open at most {limit} files, less than the"
                   f" {PODMAN_NOFILE} it gives each container: no container can start"
                   " (error setting rlimit type 7)", FIX_LIMITS)
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
