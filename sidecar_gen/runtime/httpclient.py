"""API calls: a minimal HTTP/1.1 client for the Docker Engine API over one socket.

Covers what the dispatcher needs: requests with JSON bodies, responses with Content-Length,
chunked or close-delimited bodies, and the `101 UPGRADED` hijack of `/exec/{id}/start`.
`http.client` would import the `email` package (~50 ms) on every command.
"""

from __future__ import annotations

import _socket

from sidecar_gen.runtime import jsonlite
from sidecar_gen.runtime.errors import DispatchError

# typing and collections.abc cost milliseconds to import on every command: types are for mypy only
# (mypy treats any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

API_PREFIX = "/v1.41"
MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def quote(text: str) -> str:
    """Percent-encode everything but RFC 3986 unreserved characters (urllib imports `re`)."""
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in text.encode("utf-8"))


class Response:
    """A parsed HTTP response."""

    __slots__ = ("body", "headers", "reason", "status")

    def __init__(self, status: int, reason: str, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        """The body decoded as JSON."""
        return jsonlite.loads(self.body)

    def message(self) -> str:
        """The daemon's error message: JSON `message`, else the body text, else the reason."""
        try:
            value = self.json()
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"]).strip()
        except ValueError:
            pass
        text = self.body.decode("utf-8", "replace").strip()
        return text.splitlines()[0] if text else f"HTTP {self.status} {self.reason}"


class ProtocolError(DispatchError):
    """The peer did not speak HTTP/1.1 as expected."""


class Connection:
    """One HTTP/1.1 connection (keep-alive) on a connected socket."""

    def __init__(self, sock: _socket.socket, host: str = "docker") -> None:
        self.sock = sock
        self.host = host
        self.buf = bytearray()

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def send_request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        upgrade: bool = False,
    ) -> None:
        """Send one request; `body` is encoded as JSON when not None."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", "User-Agent: claude-sidecar"]
        payload = b""
        if body is not None:
            payload = jsonlite.dumps(body).encode("ascii")
            lines.append("Content-Type: application/json")
            lines.append(f"Content-Length: {len(payload)}")
        elif method in ("POST", "PUT"):
            lines.append("Content-Length: 0")
        if upgrade:
            lines.append("Connection: Upgrade")
            lines.append("Upgrade: tcp")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.sock.sendall(head + payload)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def read_head(self) -> tuple[int, str, dict[str, str]]:
        """Read the status line and headers; the rest stays in `buf`."""
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self.buf) > MAX_HEAD:
                raise ProtocolError("Docker engine answered with oversized headers")
            if not self._fill():
                raise ProtocolError("Docker engine closed the connection without an answer")
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[: end + 4]
        status_line, *header_lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"Docker engine answered with a bad status line: {status_line!r}")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        return int(parts[1]), parts[2] if len(parts) > 2 else "", headers

    def _read_exact(self, size: int) -> bytes:
        while len(self.buf) < size:
            if not self._fill():
                raise ProtocolError("Docker engine closed the connection mid-answer")
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data

    def _read_line(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[: end + 2]
                return line
            if len(self.buf) > MAX_HEAD:
                raise ProtocolError("Docker engine sent an oversized chunk header")
            if not self._fill():
                raise ProtocolError("Docker engine closed the connection mid-answer")

    def read_body(self, method: str, status: int, headers: dict[str, str]) -> bytes:
        """Read the body that goes with a head just read."""
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts: list[bytes] = []
            total = 0
            while True:
                size_text = self._read_line().split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise ProtocolError("Docker engine sent a bad chunk size") from None
                if size == 0:
                    while self._read_line():  # trailers
                        pass
                    return b"".join(parts)
                total += size
                if total > MAX_BODY:
                    raise ProtocolError("Docker engine answer is too large")
                parts.append(self._read_exact(size))
                self._read_exact(2)
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit() or int(length) > MAX_BODY:
                raise ProtocolError("Docker engine sent a bad Content-Length")
            return self._read_exact(int(length))
        while self._fill():  # delimited by close
            if len(self.buf) > MAX_BODY:
                raise ProtocolError("Docker engine answer is too large")
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def request(self, method: str, path: str, body: Any = None) -> Response:
        """Send a request under the API prefix and read the whole response."""
        self.send_request(method, API_PREFIX + path, body)
        status, reason, headers = self.read_head()
        return Response(status, reason, headers, self.read_body(method, status, headers))

    def upgrade(self, path: str, body: Any) -> Response:
        """POST with `Upgrade: tcp`; on 101 (or a 200 hijack) the socket becomes a raw stream.

        On success the returned response has an empty body and `buf` holds stream bytes that
        arrived with the headers. Otherwise the error body is read.
        """
        self.send_request("POST", API_PREFIX + path, body, upgrade=True)
        status, reason, headers = self.read_head()
        content_type = headers.get("content-type", "")
        if status == 101 or (status == 200 and "json" not in content_type):
            return Response(status, reason, headers, b"")
        return Response(status, reason, headers, self.read_body("POST", status, headers))
