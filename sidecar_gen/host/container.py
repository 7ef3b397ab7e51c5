"""Reading a container from the outside, through the engine: nothing runs in it.

The engine's stat of a path (`HEAD /containers/{id}/archive?path=...`; a link is followed by the
engine, inside the container's root), where an exec would find a program on the container's
`PATH`, and the deadline no call waits past. `doctor` asks the user's containers this way
without trusting them; `sidecar init` asks a created, never started container what its image
holds.
"""

from __future__ import annotations

import base64
import json
import posixpath
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from docker import APIClient, DockerClient

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # runc's default
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
    def is_dir(self) -> bool:
        """A directory."""
        return bool(self.mode & _MODE_DIR)

    @property
    def runnable(self) -> bool:
        """A regular file with an execute bit."""
        return not self.mode & _MODE_TYPE and bool(self.mode & 0o111)


def archive_endpoint(client: DockerClient, container_id: str, deadline: Deadline,
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
    api, url, timeout = archive_endpoint(client, container_id, deadline, cap)
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
