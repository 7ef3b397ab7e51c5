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

import base64
import io
import json
import posixpath
import socket
import tarfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from sidecar_gen.runtime.frames import STDERR, STDOUT, Demuxer

if TYPE_CHECKING:
    from docker import APIClient, DockerClient

# The claude image's PATH without /opt/sidecar/wrappers (the routed commands) and the claude
# wrapper's folder: only root-owned folders of the image.
SAFE_PATH = "/opt/sidecar/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # runc's default
MAX_OUTPUT = 64 * 1024
MAX_FILE = 1 << 20
STAT_HEADER = "X-Docker-Container-Path-Stat"
# Go's os.FileMode bits, as the engine reports a path's mode.
_MODE_DIR = 1 << 31
_MODE_SYMLINK = 1 << 27
_MODE_TYPE = _MODE_DIR | _MODE_SYMLINK | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19)


class Deadline:
    """A point in time that nothing may wait past."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def left(self, cap: float | None = None) -> float:
        """Seconds left (never below 0), at most `cap`."""
        left = max(0.0, self._end - time.monotonic())
        return left if cap is None else min(left, cap)

    @property
    def expired(self) -> bool:
        """True once the time is up."""
        return self.left() <= 0


class PeekError(Exception):
    """The engine did not answer (in time), or answered with an error."""


@dataclass(frozen=True)
class PathStat:
    """What the engine says about one path in a container."""

    mode: int
    link_target: str = ""

    @property
    def is_link(self) -> bool:
        """A symbolic link (`link_target` is where it leads, fully resolved)."""
        return bool(self.mode & _MODE_SYMLINK)

    @property
    def runnable(self) -> bool:
        """A regular file with an execute bit."""
        return not self.mode & _MODE_TYPE and bool(self.mode & 0o111)


def _archive(client: DockerClient, container_id: str, deadline: Deadline,
             cap: float) -> tuple[APIClient, str, float]:
    """The API client, the container's archive endpoint (`HEAD`: stat, `GET`: read, addressed
    as the SDK's own calls do) and the seconds left for one call to it."""
    timeout = deadline.left(cap)
    if timeout <= 0:
        raise PeekError("out of time")
    api = client.api
    cid = quote(container_id, safe="")
    return api, f"{api.base_url}/v{api.api_version}/containers/{cid}/archive", timeout


def stat_path(client: DockerClient, container_id: str, path: str, deadline: Deadline,
              cap: float = 10) -> PathStat | None:
    """The engine's stat of `path` in the container (None: no such path). Runs nothing there."""
    api, url, timeout = _archive(client, container_id, deadline, cap)
    try:
        response = api.head(url, params={"path": path}, timeout=timeout)
    except Exception as exc:  # the SDK's transports raise several types
        raise PeekError(f"the engine did not answer ({type(exc).__name__})") from None
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise PeekError(f"the engine answered {response.status_code}")
    try:
        info = json.loads(base64.b64decode(response.headers.get(STAT_HEADER, "")))
        return PathStat(int(info["mode"]), str(info.get("linkTarget") or ""))
    except (ValueError, KeyError, TypeError) as exc:
        raise PeekError(f"the engine's stat is unreadable ({exc})") from None


def container_path(config: dict[str, Any], env: dict[str, str] | None = None) -> str:
    """The PATH an exec in a container with this `Config` (inspect) searches: the exec's own
    `env`, else the container's, else runc's default."""
    if env and "PATH" in env:
        return env["PATH"]
    for entry in config.get("Env") or ():
        if isinstance(entry, str) and entry.startswith("PATH="):
            return entry[5:]
    return DEFAULT_PATH


def find_program(client: DockerClient, container_id: str, program: str, *, search_path: str,
                 workdir: str, deadline: Deadline) -> str | None:
    """Where an exec of `program` would find it in the container (like `command -v`), found
    from the outside; None when nowhere. Raises PeekError when the engine does not answer."""
    base = workdir if workdir.startswith("/") else "/"
    if "/" in program:
        candidates = [posixpath.normpath(posixpath.join(base, program))]
    else:
        candidates = [posixpath.normpath(posixpath.join(base, folder or ".", program))
                      for folder in search_path.split(":")]
    for candidate in candidates:
        found = stat_path(client, container_id, candidate, deadline)
        if found is not None and found.is_link and found.link_target.startswith("/"):
            found = stat_path(client, container_id, found.link_target, deadline)
        if found is not None and found.runnable:
            return candidate
    return None


def read_file(client: DockerClient, container_id: str, path: str, deadline: Deadline, *,
              limit: int = MAX_FILE, cap: float = 10) -> bytes | None:
    """A regular file's bytes, through the engine's archive (None: missing or not a regular
    file); runs nothing in the container."""
    api, url, timeout = _archive(client, container_id, deadline, cap)
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
