"""The gate's side of the real engine: the one Engine API client (`runtime.httpclient`) over the
one transport (`runtime.transport`), with a small pool of kept-alive connections.

Requests are always built by the gate from parsed, checked parts; client bytes reach the
engine only as raw stream bytes after an allowed exec start. The engine is the trusted side.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sidecar_gen.runtime import transport
from sidecar_gen.runtime.contract import PROJECT_LABEL
from sidecar_gen.runtime.errors import DispatchError
from sidecar_gen.runtime.httpclient import Connection, ProtocolError

POOL_SIZE = 16
TIMEOUT = 120.0
# Headers of the engine's answers that reach the client (the others describe the engine's own
# connection, or nothing the Docker clients read).
FORWARD_HEADERS = ("content-type", "api-version", "docker-experimental", "ostype", "server",
                   "date", "cache-control", "pragma", "builder-version", "swarm")


class UpstreamError(Exception):
    """The engine could not be reached or answered something unusable."""


@dataclass
class Reply:
    """A complete engine answer."""

    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON; UpstreamError when it is not."""
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise UpstreamError("the engine sent invalid JSON") from exc

    def forward_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers a client may see."""
        return [(name.encode(), self.headers[name].encode("latin-1"))
                for name in FORWARD_HEADERS if name in self.headers]


@dataclass
class Upgraded:
    """An engine connection switched to the raw exec stream."""

    headers: dict[str, str]
    conn: Connection  # its socket now carries the stream; `conn.buf` holds early bytes


class Engine:
    """Calls to the engine at `endpoint` (a DOCKER_HOST-style URL), thread-safe."""

    def __init__(self, endpoint: str, timeout: float = TIMEOUT) -> None:
        try:
            self._endpoint = transport.parse_host(endpoint)
        except DispatchError as exc:
            raise ValueError(str(exc)) from None
        self.describe = transport.describe(self._endpoint)
        self._timeout = timeout
        self._pool: list[Connection] = []
        self._lock = threading.Lock()

    def _connect(self) -> Connection:
        try:
            return Connection(transport.connect(self._endpoint, timeout=self._timeout))
        except DispatchError as exc:
            raise UpstreamError(f"cannot reach the engine at {self.describe}: {exc}") from None

    def _take(self) -> tuple[Connection, bool]:
        with self._lock:
            if self._pool:
                return self._pool.pop(), True
        return self._connect(), False

    def _give(self, conn: Connection) -> None:
        with self._lock:
            if len(self._pool) < POOL_SIZE and not conn.buf:
                self._pool.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close the pooled connections."""
        with self._lock:
            pool, self._pool = self._pool, []
        for conn in pool:
            conn.close()

    def call(self, method: str, path: str, body: Any = None) -> Reply:
        """One request (path as given, version prefix included); the complete answer."""
        for attempt in (0, 1):
            conn, reused = self._take()
            try:
                conn.send_request(method, path, body)
                status, _reason, headers = conn.read_head()
                data = conn.read_body(method, status, headers)
            except (OSError, ProtocolError) as exc:
                conn.close()
                # A kept-alive connection the engine closed meanwhile: retry once on a new one.
                # Never on a fresh connection (the request may have been applied).
                if reused and attempt == 0:
                    continue
                raise UpstreamError(f"engine connection failed: {exc}") from None
            if headers.get("connection", "").lower() == "close":
                conn.close()
            else:
                self._give(conn)
            return Reply(status, headers, data)
        raise AssertionError("unreachable")

    def upgrade(self, path: str, body: Any) -> Reply | Upgraded:
        """POST an exec start with `Upgrade: tcp` on a new connection: the raw stream on 101,
        else the engine's answer."""
        conn = self._connect()
        try:
            conn.send_request("POST", path, body, upgrade=True)
            status, _reason, headers = conn.read_head()
            if status == 101:
                return Upgraded(headers, conn)
            data = conn.read_body("POST", status, headers)
        except (OSError, ProtocolError) as exc:
            conn.close()
            raise UpstreamError(f"engine connection failed: {exc}") from None
        conn.close()
        return Reply(status, headers, data)

    def get_json(self, path: str) -> Any:
        """GET a JSON document; UpstreamError unless the engine answers 200."""
        reply = self.call("GET", path)
        if reply.status != 200:
            raise UpstreamError(f"the engine answered {reply.status} to GET {path}")
        return reply.json()

    def listing(self, project: str | None, *, ids: Iterable[str] = (),
                size: bool = False) -> list[dict[str, Any]]:
        """`GET /containers/json?all=1`: of compose project `project` only (one label filter,
        answered from the engine's index), or of these full `ids`, or of every container."""
        filters: dict[str, list[str]] = {}
        if project is not None:
            filters["label"] = [f"{PROJECT_LABEL}={project}"]
        wanted = list(ids)
        if wanted:
            filters["id"] = wanted
        path = "/containers/json?all=1" + ("&size=1" if size else "")
        if filters:
            path += "&filters=" + quote(json.dumps(filters, separators=(",", ":")), safe="")
        value = self.get_json(path)
        if not isinstance(value, list):
            raise UpstreamError("the engine sent a container list that is not a list")
        return [c for c in value if isinstance(c, dict)]

    def container_project(self, ref: str) -> tuple[bool, str | None]:
        """(exists, compose project label) of one container."""
        reply = self.call("GET", f"/containers/{quote(ref, safe='')}/json")
        if reply.status == 404:
            return False, None
        if reply.status != 200:
            raise UpstreamError(f"the engine answered {reply.status} to an inspect")
        info = reply.json()
        labels = (info.get("Config") or {}).get("Labels") or {}
        project = labels.get(PROJECT_LABEL) if isinstance(labels, dict) else None
        return True, project if isinstance(project, str) else None

    def resolves_to(self, ref: str) -> str | None:
        """The full id the engine resolves `ref` to, or None (missing or ambiguous)."""
        reply = self.call("GET", f"/containers/{quote(ref, safe='')}/json")
        if reply.status != 200:
            return None
        cid = reply.json().get("Id")
        return cid if isinstance(cid, str) else None
