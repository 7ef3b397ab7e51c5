"""Asking a container without trusting it, within a time limit (for `sidecar doctor`).

The agent controls the targets (root there, when a route runs without `user:`) and the user
`claude` in the claude container. Whatever runs there can hang, or print anything, forged
verdict lines and terminal escapes included. So:

- Nothing runs in a target. A routed program is looked up the way the exec would find it,
  from the outside: the container's `PATH` (inspect), then the engine's stat of each candidate
  (`HEAD /containers/{id}/archive?path=...`; a link is followed by the engine, inside the
  container's root). A file is read through the engine's archive (`GET`), size-capped.
- What must run in the claude container (the firewall's status, Claude Code's version) runs
  by absolute path with a PATH that leaves the routed commands' wrappers out (a route named
  `python3` or `iptables` would otherwise run in a target), under a limit enforced from the
  host (the engine's socket is read with a deadline; `timeout` in the container is only the
  second line) and with its output capped. The caller shows that output only quoted.

Every call takes a `Deadline` (doctor's whole run has one) and never waits past it.
"""

from __future__ import annotations

import io
import socket
import tarfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from sidecar_gen.host.container import (
    Deadline,
    PathStat,
    PeekError,
    archive_endpoint,
    container_path,
    find_program,
    stat_path,
)
from sidecar_gen.runtime.frames import STDERR, STDOUT, Demuxer

# What doctor's checks use from here; the stat and the lookup live in `host.container`.
__all__ = ["Deadline", "ExecResult", "PathStat", "PeekError", "container_path", "find_program",
           "read_file", "run", "stat_path"]

if TYPE_CHECKING:
    from docker import APIClient, DockerClient

# The claude image's PATH without /opt/sidecar/wrappers (the routed commands) and the claude
# wrapper's folder: only root-owned folders of the image.
SAFE_PATH = "/opt/sidecar/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_OUTPUT = 64 * 1024
MAX_FILE = 1 << 20


def read_file(client: DockerClient, container_id: str, path: str, deadline: Deadline, *,
              limit: int = MAX_FILE, cap: float = 10) -> bytes | None:
    """A regular file's bytes, through the engine's archive (None: missing or not a regular
    file); runs nothing in the container."""
    api, url, timeout = archive_endpoint(client, container_id, deadline, cap)
    try:
        response = api.get(url, params={"path": path}, stream=True, timeout=timeout,
                           headers={"Accept-Encoding": "identity"})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise PeekError(f"the engine answered {response.status_code}")
        # One member and its tar header, uncompressed (the engine gzips when asked to).
        data = response.raw.read(limit + 2048, decode_content=True)
        response.close()
    except PeekError:
        raise
    except Exception as exc:
        raise PeekError(f"the engine did not answer ({type(exc).__name__})") from None
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            member = archive.next()
            if member is None or not member.isfile() or member.size > limit:
                return None
            handle = archive.extractfile(member)
            return handle.read() if handle is not None else None
    except tarfile.TarError:
        return None


@dataclass(frozen=True)
class ExecResult:
    """One exec's outcome: `code` None when it did not finish in time (`timed_out`)."""

    code: int | None
    out: str
    err: str
    timed_out: bool = False
    seconds: float = 0.0  # the time it was given


def run(client: DockerClient, container_id: str, argv: list[str], deadline: Deadline, *, user: str,
        cap: float, env: dict[str, str] | None = None) -> ExecResult:
    """Run `argv` (an absolute path first) in the container; read its output until it ends,
    MAX_OUTPUT bytes or `cap` seconds (and the deadline) have passed, whichever comes first."""
    api = client.api
    limit = deadline.left(cap)
    if limit <= 0:
        return ExecResult(None, "", "", timed_out=True, seconds=0.0)
    end = time.monotonic() + limit
    environment = [f"{k}={v}" for k, v in {"PATH": SAFE_PATH, **(env or {})}.items()]
    # The container's `timeout` ends it there too (unless the agent stops it: the host's
    # deadline is what holds).
    command = ["/usr/bin/timeout", "-k", "2", str(max(1, int(limit))), *argv]
    try:
        exec_id = api.exec_create(container_id, command, stdout=True, stderr=True, user=user,
                                  environment=environment)["Id"]
        sock = api.exec_start(exec_id, socket=True)
    except Exception as exc:
        raise PeekError(f"the engine refused the exec ({type(exc).__name__}: "
                        f"{getattr(exc, 'explanation', None) or exc})") from None
    # The SDK hands the socket back wrapped (a SocketIO); the deadline needs the socket itself.
    raw = cast("socket.socket", getattr(sock, "_sock", sock))
    streams = {STDOUT: bytearray(), STDERR: bytearray()}
    demux = Demuxer()
    timed_out = False
    try:
        while sum(map(len, streams.values())) < MAX_OUTPUT:
            left = end - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            raw.settimeout(left)
            try:
                data = raw.recv(65536)
            except TimeoutError:
                timed_out = True
                break
            except OSError:
                break
            if not data:
                break
            for stream, piece in demux.feed(data):
                if stream in streams:
                    streams[stream] += piece
    finally:
        sock.close()
    out, err = (bytes(streams[s][:MAX_OUTPUT]).decode("utf-8", "replace")
                for s in (STDOUT, STDERR))
    if timed_out:
        return ExecResult(None, out, err, timed_out=True, seconds=limit)
    return ExecResult(_exit_code(api, exec_id, end), out, err, seconds=limit)


def _exit_code(api: APIClient, exec_id: str, end: float) -> int | None:
    """The exec's exit code: the engine records it a moment after the stream ends."""
    while True:
        try:
            code = api.exec_inspect(exec_id).get("ExitCode")
        except Exception:
            return None
        if isinstance(code, int) or time.monotonic() >= end:
            return code if isinstance(code, int) else None
        time.sleep(0.05)
