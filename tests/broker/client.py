"""A small HTTP client for the broker tests: raw bytes out (hostile requests need that),
responses parsed with h11, with the time each piece of the body arrived."""

from __future__ import annotations

import json
import socket
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import h11
from gate.helpers import encode_request


@dataclass
class Answer:
    """One response as the client saw it."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    pieces: list[tuple[float, bytes]] = field(default_factory=list)  # (monotonic time, bytes)
    sent_at: float = 0.0
    closed_after: bool = False  # the server closed the connection after this response

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def message(self) -> str:
        """The refusal's one line (Anthropic error shape, or text for git)."""
        if self.header("content-type") == "application/json":
            return str(self.json()["error"]["message"])
        return self.body.decode()


def connect(port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


# Bytes read past the end of a response (the next one's start), per socket.
_SURPLUS: weakref.WeakKeyDictionary[socket.socket, bytes] = weakref.WeakKeyDictionary()


def read_answer(sock: socket.socket, method: bytes = b"POST", *,
                sent_at: float = 0.0) -> Answer:
    """Read one response from `sock` (h11 as a client that sent a `method` request); bytes
    of the next response that came with it are kept for the next call."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target=b"/", headers=[(b"Host", b"x")]))
    conn.send(h11.EndOfMessage())
    surplus = _SURPLUS.pop(sock, b"")
    if surplus:
        conn.receive_data(surplus)
    answer = _read(conn, sock, sent_at)
    if conn.their_state is h11.DONE:
        data, _closed = conn.trailing_data
        if data:
            _SURPLUS[sock] = bytes(data)
    return answer


def _read(conn: h11.Connection, sock: socket.socket, sent_at: float) -> Answer:
    answer: Answer | None = None
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = sock.recv(1 << 16)
            conn.receive_data(data)
            continue
        if isinstance(event, h11.InformationalResponse):
            continue
        if isinstance(event, h11.Response):
            answer = Answer(event.status_code,
                            [(k.decode().lower(), v.decode("latin-1")) for k, v in event.headers],
                            b"", sent_at=sent_at)
            continue
        assert answer is not None, event
        if isinstance(event, h11.Data):
            answer.pieces.append((time.monotonic(), bytes(event.data)))
            answer.body += bytes(event.data)
            continue
        if isinstance(event, h11.EndOfMessage):
            answer.closed_after = conn.our_state is h11.MUST_CLOSE or \
                conn.their_state is h11.MUST_CLOSE
            return answer
        if isinstance(event, h11.ConnectionClosed):
            answer.closed_after = True
            return answer
        raise AssertionError(event)


def send(port: int, raw: bytes, *, method: bytes | None = None, timeout: float = 30.0) -> Answer:
    """Send `raw` on a new connection; read one response (the method is read off `raw`)."""
    with connect(port, timeout=timeout) as sock:
        sent_at = time.monotonic()
        sock.sendall(raw)
        return read_answer(sock, method or raw.split(b" ", 1)[0], sent_at=sent_at)


def request(port: int, method: str, target: str, body: Any = None, *,
            headers: dict[str, str] | None = None, timeout: float = 30.0) -> Answer:
    """One well-formed request (JSON when `body` is not bytes), Connection: close."""
    raw = encode_request(method, target, body, headers=headers, host="127.0.0.1")
    return send(port, raw, method=method.encode(), timeout=timeout)


def messages(port: int, body: Any = None, *, key: str = "sk-ant-api03-sidecar-broker-placeholder",
             headers: dict[str, str] | None = None, timeout: float = 30.0) -> Answer:
    """What Claude Code sends: POST /v1/messages?beta=true with the placeholder key."""
    doc = body if body is not None else {"model": "claude-test-1", "max_tokens": 16,
                                         "stream": True,
                                         "messages": [{"role": "user", "content": "hi"}]}
    return request(port, "POST", "/v1/messages?beta=true", doc,
                   headers={"x-api-key": key, "anthropic-version": "2023-06-01",
                            **(headers or {})}, timeout=timeout)


def closed_by_peer(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True when the peer closed the connection (EOF or reset) within `timeout`."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(1 << 16)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
