"""HTTP/1.1 on the client side: request heads read with limits, refusals rendered.

Heads are pre-scanned with the gate's check for what h11 is lenient about (bare LF, obsolete
folding, Content-Length with Transfer-Encoding, repeated framing headers: how requests are
smuggled), then parsed by h11, one fresh h11 connection per request. Bodies are not read
here: the exchange streams them upstream. A refusal closes the connection, so nothing
pipelined behind a refused request is ever read.
"""

from __future__ import annotations

import json
import socket
import time
from http import HTTPStatus

import h11

from sidecar_gen.gate.http import MalformedError, prescan, split_head

MAX_HEAD = 32 * 1024
READ_SIZE = 64 * 1024
_ERROR_TYPE = {400: "invalid_request_error", 401: "authentication_error",
               403: "permission_error", 404: "not_found_error", 408: "timeout_error",
               413: "request_too_large", 417: "invalid_request_error",
               502: "api_error", 503: "overloaded_error", 504: "timeout_error"}


class ClientGoneError(Exception):
    """The client closed the connection or stopped reading."""


class BadHeadError(Exception):
    """The request head could not be read: answered with `status`, then the connection closes."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ClientSocket:
    """The client's socket, with the bytes received but not used yet."""

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.peer = peer
        self.buffer = b""
        self._timeout: float | None = None

    def _set_timeout(self, timeout: float) -> None:
        if timeout != self._timeout:  # a syscall: not once per chunk of a stream
            self.sock.settimeout(timeout)
            self._timeout = timeout

    def recv(self, timeout: float) -> bytes:
        """The next bytes (waiting at most `timeout`); b'' when the client closed."""
        self._set_timeout(max(timeout, 0.001))
        try:
            return self.sock.recv(READ_SIZE)
        except TimeoutError:
            raise
        except OSError:
            return b""

    def send(self, data: bytes, timeout: float) -> None:
        """Send all of `data`; ClientGoneError when the client closed or took nothing for
        `timeout` seconds."""
        if not data:
            return
        self._set_timeout(timeout)
        try:
            self.sock.sendall(data)
        except OSError as exc:  # TimeoutError included
            raise ClientGoneError(str(exc)) from None

    def read_head(self, *, wait: float, complete: float) -> bytes | None:
        """The next request head (the rest stays in `buffer`); None when the client closed
        (or stayed silent `wait` seconds) before sending a byte of it. BadHeadError when the
        head is too large, malformed at the line level, or not complete `complete` seconds
        after its first byte."""
        deadline: float | None = time.monotonic() + complete if self.buffer else None
        while True:
            end = split_head(self.buffer)
            if end >= 0:
                if end > MAX_HEAD:
                    raise BadHeadError(431, f"request head larger than {MAX_HEAD} bytes")
                head, self.buffer = self.buffer[:end], self.buffer[end:]
                return head
            if len(self.buffer) > MAX_HEAD:
                raise BadHeadError(431, f"request head larger than {MAX_HEAD} bytes")
            left = wait if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise BadHeadError(408, f"request head not complete within {complete:g} s")
            try:
                data = self.recv(left)
            except TimeoutError:
                if deadline is None:
                    return None  # an idle kept-alive connection: just close it
                raise BadHeadError(408, f"request head not complete within {complete:g} s") \
                    from None
            if not data:
                if self.buffer:
                    raise BadHeadError(400, "connection closed inside the request head")
                return None
            if deadline is None:
                deadline = time.monotonic() + complete
            self.buffer += data


def parse_head(head: bytes) -> tuple[h11.Connection, h11.Request]:
    """A fresh h11 server connection that has read `head`, and the request it holds;
    BadHeadError(400) for what parsers could read two ways."""
    try:
        prescan(head)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        conn.receive_data(head)
        event = conn.next_event()
    except MalformedError as exc:
        raise BadHeadError(400, str(exc)) from None
    except h11.RemoteProtocolError as exc:
        raise BadHeadError(400, f"bad HTTP: {exc}") from None
    if not isinstance(event, h11.Request):
        raise BadHeadError(400, "incomplete request head")
    return conn, event


def error_body(status: int, message: str, *, plain: bool) -> tuple[bytes, bytes]:
    """(content type, body) of a refusal: Anthropic's error shape, or one line of text for
    git (which shows a text/plain body to the user as `remote: ...`)."""
    text = f"sidecar broker: {message}"
    if plain:
        return b"text/plain; charset=utf-8", text.encode() + b"\n"
    doc = {"type": "error", "error": {"type": _ERROR_TYPE.get(status, "api_error"),
                                      "message": text}}
    return b"application/json", json.dumps(doc, ensure_ascii=True).encode()


def render_refusal(status: int, message: str, *, plain: bool, head_only: bool = False) -> bytes:
    """A complete response that ends the connection."""
    ctype, body = error_body(status, message, plain=plain)
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: ".encode() + ctype +
            b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
    return head if head_only else head + body
