"""HTTP/1.1 on the client side: requests assembled from bytes as they arrive, responses rendered.

No sockets here: the server feeds received bytes in and writes what comes out. Requests are
parsed with h11 after a stricter pre-scan (h11 is lenient about bare LF, obsolete folding and
Content-Length together with Transfer-Encoding: parsers that disagree are how requests get
smuggled), with bounded head and body sizes.
"""

from __future__ import annotations

import _socket
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import h11

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
_REASONS = {101: b"UPGRADED", 200: b"OK", 201: b"Created", 204: b"No Content",
            304: b"Not Modified", 400: b"Bad Request", 403: b"Forbidden", 404: b"Not Found",
            408: b"Request Timeout", 409: b"Conflict", 500: b"Internal Server Error",
            502: b"Bad Gateway", 503: b"Service Unavailable"}
_UNSAFE = re.compile(rb"[\r\n\x00]")


JSON_TYPE = [(b"Content-Type", b"application/json")]


class MalformedError(Exception):
    """Bad HTTP from the client: answered 400 and the connection closed."""


@dataclass
class Answer:
    """A complete response to send."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=lambda: list(JSON_TYPE))
    length: bytes | None = None  # HEAD: the Content-Length of the body not sent
    close: bool = False


@dataclass
class Switch:
    """A `101 UPGRADED`: from now on the client connection is relayed to `upstream`."""

    headers: list[tuple[bytes, bytes]]
    upstream: _socket.socket
    early: bytes = b""  # stream bytes the engine sent along with its 101
    # Told, when the stream ends, the bytes the client and the engine sent through it.
    on_end: Callable[[int, int], None] | None = None


@dataclass
class Request:
    """One complete request, and the h11 connection its response must be rendered with."""

    method: str
    target: str
    headers: dict[bytes, bytes]  # lower-case names
    body: bytes
    conn: h11.Connection

    def leftover(self) -> bytes | None:
        """Bytes received after this request (the next one), or None when the connection must
        close after the response (the client asked to, spoke HTTP/1.0, or asked to upgrade)."""
        if self.conn.their_state is not h11.DONE:
            return None
        data, closed = self.conn.trailing_data
        return None if closed else bytes(data)


def json_message(message: str) -> bytes:
    """An engine-style error body."""
    return json.dumps({"message": message}).encode()


def split_head(buf: bytes | bytearray) -> int:
    """End offset of the request head (after the blank line), or -1 when incomplete."""
    crlf = buf.find(b"\r\n\r\n")
    lf = buf.find(b"\n\n")
    ends = [i + 4 for i in (crlf,) if i >= 0] + [i + 2 for i in (lf,) if i >= 0]
    return min(ends) if ends else -1


def prescan(head: bytes) -> None:
    """Checks h11 is lenient about: bare LF, obsolete folding, CL together with TE."""
    lines = head.split(b"\r\n")
    if any(b"\n" in line or b"\r" in line for line in lines):
        raise MalformedError("bare CR or LF in the request head")
    names: list[bytes] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            raise MalformedError("obsolete header line folding")
        names.append(line.split(b":", 1)[0].strip().lower())
    if b"content-length" in names and b"transfer-encoding" in names:
        raise MalformedError("both Content-Length and Transfer-Encoding")
    if names.count(b"content-length") > 1 or names.count(b"transfer-encoding") > 1:
        raise MalformedError("repeated Content-Length or Transfer-Encoding")


class RequestReader:
    """Assembles one request from the bytes received so far (non-blocking, bounded).

    `feed` the bytes; `poll` returns the `Request` once complete, None while more is needed,
    and raises `MalformedError` for bad HTTP. `reply_now` holds bytes to send at once (a
    `100 Continue`).
    """

    def __init__(self, data: bytes = b"", *, max_body: int = MAX_BODY) -> None:
        self._buf = bytearray(data)
        self._max_body = max_body
        self._h11: h11.Connection | None = None
        self._event: h11.Request | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._continued = False
        self._error: MalformedError | None = None  # once malformed, always malformed
        self.reply_now = b""

    @property
    def started(self) -> bool:
        """True once any byte of the request arrived."""
        return bool(self._buf) or self._h11 is not None

    @property
    def head_done(self) -> bool:
        """True once the request head was parsed (the body may still be arriving)."""
        return self._event is not None

    @property
    def conn(self) -> h11.Connection | None:
        """The h11 connection (for rendering an answer to a half-read request)."""
        return self._h11

    @property
    def method_and_target(self) -> tuple[str, str]:
        """For the log: what the head said, or '-' before it was parsed."""
        if self._event is None:
            return "-", "-"
        return (self._event.method.decode("ascii", "replace"),
                self._event.target.decode("ascii", "replace"))

    def feed(self, data: bytes) -> None:
        """Add received bytes (the end of the stream is the server's to handle: h11 would take
        empty bytes for it)."""
        if not data:
            return
        if self._h11 is None:
            self._buf += data
        else:
            self._h11.receive_data(data)

    def poll(self) -> Request | None:
        """Advance as far as the bytes allow."""
        if self._error is not None:
            raise self._error
        try:
            if self._h11 is None and not self._parse_head():
                return None
            return self._parse_body()
        except h11.RemoteProtocolError as exc:
            self._error = MalformedError(f"bad HTTP: {exc}")
        except MalformedError as exc:
            self._error = exc
        raise self._error

    def _parse_head(self) -> bool:
        end = split_head(self._buf)
        if end < 0:
            if len(self._buf) > MAX_HEAD:
                raise MalformedError("request head too large")
            return False
        if end > MAX_HEAD:
            raise MalformedError("request head too large")
        prescan(bytes(self._buf[:end]))
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        conn.receive_data(bytes(self._buf))
        self._buf.clear()
        self._h11 = conn
        event = conn.next_event()
        if not isinstance(event, h11.Request):
            raise MalformedError("incomplete request")
        headers = {k.lower(): v for k, v in event.headers}
        if event.http_version == b"1.0" and b"host" not in headers:
            raise MalformedError("HTTP/1.0 request without Host")
        self._event = event
        return True

    def _parse_body(self) -> Request | None:
        assert self._h11 is not None and self._event is not None
        while True:
            event = self._h11.next_event()
            if event is h11.NEED_DATA:
                if self._h11.they_are_waiting_for_100_continue and not self._continued:
                    self._continued = True
                    self.reply_now = self._h11.send(
                        h11.InformationalResponse(status_code=100, headers=[])) or b""
                return None
            if isinstance(event, h11.Data):
                self._size += len(event.data)
                if self._size > self._max_body:
                    raise MalformedError(f"request body larger than {self._max_body} bytes")
                self._chunks.append(bytes(event.data))
                continue
            if isinstance(event, h11.EndOfMessage):
                return Request(method=self._event.method.decode("ascii", "replace"),
                               target=self._event.target.decode("ascii", "replace"),
                               headers={k.lower(): v for k, v in self._event.headers},
                               body=b"".join(self._chunks), conn=self._h11)
            if isinstance(event, h11.ConnectionClosed):
                raise MalformedError("connection closed inside the request")
            raise MalformedError("unexpected event in the request")


def _head(status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
    lines = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Status"))]
    for name, value in headers:
        if _UNSAFE.search(name) or _UNSAFE.search(value) or b":" in name:
            raise ValueError(f"header {name!r} cannot be sent")
        lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def render(status: int, body: bytes, *, headers: list[tuple[bytes, bytes]] | None = None,
           head_only: bool = False, length: bytes | None = None, close: bool = False) -> bytes:
    """A complete response (Content-Length framed); `head_only` for HEAD: the headers only,
    with `length` as the Content-Length of the body not sent.

    Rendered here rather than through h11's state machine: every part is the gate's own or
    the engine's (checked for line breaks), and this is the hot path of every request.
    """
    hdrs = list(headers if headers is not None else JSON_TYPE)
    bodyless = status < 200 or status in (204, 304)
    if not bodyless:
        hdrs.append((b"Content-Length", length if head_only and length else b"%d" % len(body)))
    if close:
        hdrs.append((b"Connection", b"close"))
    return _head(status, hdrs) + (b"" if head_only or bodyless else body)


def raw_response(status: int, body: bytes) -> bytes:
    """A response that closes the connection, for when no request was parsed."""
    return render(status, body, close=True)


def render_upgrade(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The `101 UPGRADED` that hands the connection over to the raw exec stream."""
    return _head(101, [*headers, (b"Connection", b"Upgrade"), (b"Upgrade", b"tcp")])


def upgrade_leftover(conn: h11.Connection) -> bytes:
    """Bytes the client sent after its upgrade request (already stream bytes)."""
    data, _closed = conn.trailing_data
    return bytes(data)
