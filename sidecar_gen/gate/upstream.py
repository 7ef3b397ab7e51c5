"""Transport to the real engine: HTTP/1.1 over its unix socket.

Requests are always built by the gate from parsed, checked parts; client bytes are never
forwarded before a decision, and only raw stream bytes after an allowed exec start. The engine
is the trusted side, so its answers are read by a small bounded reader (h11 parses what the
untrusted client sends); connections are kept alive and pooled by the server.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any

from sidecar_gen.errors import InputError

MAX_RESPONSE = 64 * 1024 * 1024
MAX_HEAD = 64 * 1024
RECV = 256 * 1024


class UpstreamError(Exception):
    """The engine could not be reached or answered something unparseable."""


def parse_upstream(url: str) -> str:
    """The socket path of a `unix:///path` upstream URL; raise `InputError` otherwise."""
    if not url.startswith("unix://") or len(url) <= len("unix://"):
        raise InputError(url, "the upstream must be unix:///path/to/docker.sock")
    return url[len("unix://"):]


@dataclass
class Response:
    """A complete (non-upgraded) upstream response."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


@dataclass
class Upgraded:
    """An upstream connection switched to a raw stream; `pending` holds bytes already read."""

    headers: list[tuple[bytes, bytes]]
    sock: socket.socket
    pending: bytes


class UpstreamConn:
    """A keep-alive HTTP connection to the engine's unix socket."""

    def __init__(self, path: str, timeout: float | None = 300.0) -> None:
        self._path = path
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._leftover = b""
        self._idle = False  # True between complete exchanges: safe to reuse or pool

    @property
    def reusable(self) -> bool:
        """Open and between complete request/response exchanges."""
        return self._sock is not None and self._idle

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self._timeout)
            try:
                sock.connect(self._path)
            except OSError as exc:
                sock.close()
                raise UpstreamError(f"cannot reach the engine at {self._path}: {exc}") from exc
            self._sock = sock
            self._leftover = b""
        return self._sock

    def close(self) -> None:
        """Close the connection (a new one is opened on the next request)."""
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def request(self, method: str, target: str, *, body: bytes | None = None,
                headers: list[tuple[str, str]] | None = None,
                upgrade: bool = False) -> Response | Upgraded:
        """Send one request; return the full response, or the raw socket after a 101."""
        for attempt in (0, 1):
            fresh = self._sock is None
            try:
                return self._request_once(method, target, body, headers or [], upgrade)
            except OSError as exc:
                self.close()
                # A kept-alive connection the engine closed meanwhile: retry once on a new
                # one. Never retry on a fresh connection (the request may have been applied).
                if fresh or attempt == 1:
                    raise UpstreamError(f"engine connection failed: {exc}") from exc
        raise AssertionError("unreachable")

    def _request_once(self, method: str, target: str, body: bytes | None,
                      headers: list[tuple[str, str]], upgrade: bool) -> Response | Upgraded:
        sock = self._connect()
        self._idle = False
        lines = [f"{method} {target} HTTP/1.1", "Host: docker",
                 *(f"{name}: {value}" for name, value in headers)]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        if upgrade:
            lines += ["Connection: Upgrade", "Upgrade: tcp"]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        reader = _Reader(sock, self._leftover)
        self._leftover = b""
        status, resp_headers = reader.head()
        while 100 <= status < 200 and status != 101:
            status, resp_headers = reader.head()
        if status == 101:
            if not upgrade:
                raise UpstreamError("engine switched protocols unasked")
            self._sock = None  # the socket now belongs to the caller
            return Upgraded(headers=resp_headers, sock=sock, pending=reader.take())
        fields = dict(resp_headers)
        keep = fields.get(b"connection", b"").lower() != b"close"
        if method == "HEAD" or status in (204, 304):
            data = b""
        elif b"chunked" in fields.get(b"transfer-encoding", b"").lower():
            data = reader.chunked()
        elif b"content-length" in fields:
            try:
                length = int(fields[b"content-length"])
            except ValueError as exc:
                raise UpstreamError("engine sent a bad Content-Length") from exc
            data = reader.exact(length)
        else:
            data, keep = reader.until_close(), False
        if keep:
            self._leftover = reader.take()
            self._idle = not self._leftover
        else:
            self.close()
        return Response(status=status, headers=resp_headers, body=data)

    def get_json(self, target: str) -> Any:
        """GET a JSON document; raise `UpstreamError` unless the engine answers 200."""
        resp = self.request("GET", target)
        if not isinstance(resp, Response) or resp.status != 200:
            status = resp.status if isinstance(resp, Response) else 101
            raise UpstreamError(f"engine answered {status} to GET {target}")
        try:
            return resp.json()
        except ValueError as exc:
            raise UpstreamError(f"engine sent invalid JSON for GET {target}") from exc


class _Reader:
    """Bounded reads of one engine response from a socket, with a carry-over buffer."""

    def __init__(self, sock: socket.socket, leftover: bytes) -> None:
        self._sock = sock
        self._buf = bytearray(leftover)

    def _more(self) -> None:
        data = self._sock.recv(RECV)
        if not data:
            raise ConnectionError("the engine closed the connection mid-response")
        self._buf += data

    def take(self) -> bytes:
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def head(self) -> tuple[int, list[tuple[bytes, bytes]]]:
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            if len(self._buf) > MAX_HEAD:
                raise UpstreamError("engine response head too large")
            self._more()
        head = bytes(self._buf[:end])
        del self._buf[:end + 4]
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise UpstreamError(f"engine sent a bad status line: {lines[0][:80]!r}")
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise UpstreamError("engine sent a bad header line")
            headers.append((name.strip().lower(), value.strip()))
        return int(parts[1]), headers

    def exact(self, size: int) -> bytes:
        if size > MAX_RESPONSE:
            raise UpstreamError("engine response too large")
        while len(self._buf) < size:
            self._more()
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def _line(self) -> bytes:
        while (end := self._buf.find(b"\r\n")) < 0:
            if len(self._buf) > MAX_HEAD:
                raise UpstreamError("engine sent a bad chunk header")
            self._more()
        line = bytes(self._buf[:end])
        del self._buf[:end + 2]
        return line

    def chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                size = int(self._line().split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise UpstreamError("engine sent a bad chunk size") from exc
            if size == 0:
                while self._line():  # trailers, up to the blank line
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_RESPONSE:
                raise UpstreamError("engine response too large")
            chunks.append(self.exact(size))
            if self.exact(2) != b"\r\n":
                raise UpstreamError("engine sent a bad chunk end")

    def until_close(self) -> bytes:
        while True:
            if len(self._buf) > MAX_RESPONSE:
                raise UpstreamError("engine response too large")
            data = self._sock.recv(RECV)
            if not data:
                return self.take()
            self._buf += data
