"""A real socket pair whose far end answers one request: the dispatcher's HTTP and Engine API
layers tested on real sockets, byte for byte."""

from __future__ import annotations

import socket
import threading

from sidecar_gen.runtime import httpclient


def serve(answer: bytes) -> tuple[httpclient.Connection, threading.Thread, list[bytes]]:
    """A socketpair whose far end reads one request head and writes `answer` verbatim."""
    ours, theirs = socket.socketpair()
    seen: list[bytes] = []

    def server() -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += theirs.recv(65536)
        seen.append(data)
        theirs.sendall(answer)
        theirs.close()

    thread = threading.Thread(target=server)
    thread.start()
    import _socket

    raw = _socket.socket(fileno=ours.detach())
    return httpclient.Connection(raw), thread, seen


def answer(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body
