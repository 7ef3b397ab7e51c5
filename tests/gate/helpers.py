"""A tiny raw HTTP client for talking to the gate byte by byte (hostile requests need that)."""

from __future__ import annotations

import json
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    rest: bytes = b""
    sock: socket.socket | None = field(default=None, repr=False)

    def json(self) -> Any:
        return json.loads(self.body)


def connect(address: str, timeout: float = 30.0) -> socket.socket:
    if address.startswith("unix://"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address[len("unix://"):])
        return sock
    host, _, port = address[len("tcp://"):].rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    return sock


def read_reply(sock: socket.socket, buf: bytes = b"", *, head_only: bool = False) -> Reply:
    """Read one response (Content-Length framed, or up to close when none is given)."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"connection closed before a full response: {buf[:200]!r}")
        buf += data
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if head_only or status == 101:
        return Reply(status, headers, b"", rest=buf, sock=sock)
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(buf) < length:
            data = sock.recv(65536)
            if not data:
                break
            buf += data
        return Reply(status, headers, buf[:length], rest=buf[length:], sock=sock)
    while True:
        data = sock.recv(65536)
        if not data:
            break
        buf += data
    return Reply(status, headers, buf, sock=sock)


def encode_request(method: str, target: str, body: Any = None, *,
                   headers: dict[str, str] | None = None, host: str) -> bytes:
    """One well-formed HTTP/1.1 request with Connection: close (a JSON body unless bytes)."""
    data = b""
    hdrs = {"Host": host, "Connection": "close", **(headers or {})}
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
        hdrs["Content-Length"] = str(len(data))
    return f"{method} {target} HTTP/1.1\r\n".encode() + b"".join(
        f"{k}: {v}\r\n".encode() for k, v in hdrs.items()) + b"\r\n" + data


def request(address: str, method: str, target: str, body: Any = None, *,
            headers: dict[str, str] | None = None, head_only: bool = False) -> Reply:
    """Send one well-formed request on a new connection and read the reply."""
    # Close after the answer: the engine's own answers may be chunked, which this reader
    # only handles by reading to the end of the connection.
    raw = encode_request(method, target, body, headers=headers, host="docker")
    sock = connect(address)
    sock.sendall(raw)
    reply = read_reply(sock, head_only=head_only or method == "HEAD")
    if reply.status != 101:
        sock.close()
        reply.sock = None
    return reply


def send_raw(address: str, raw: bytes) -> Reply:
    """Send arbitrary bytes; return the first reply (connections the gate closes are fine)."""
    sock = connect(address)
    try:
        sock.sendall(raw)
        return read_reply(sock)
    finally:
        sock.close()


def demux(stream: bytes) -> tuple[bytes, bytes]:
    """Split a multiplexed (non-TTY) exec stream into stdout and stderr."""
    out, err = bytearray(), bytearray()
    i = 0
    while i + 8 <= len(stream):
        kind, size = stream[i], struct.unpack(">I", stream[i + 4:i + 8])[0]
        chunk = stream[i + 8:i + 8 + size]
        (out if kind == 1 else err).extend(chunk)
        i += 8 + size
    return bytes(out), bytes(err)


def run_exec(address: str, container: str, cmd: list[str], *, stdin: bytes | None = None,
             tty: bool = False, user: str | None = None, env: list[str] | None = None,
             prefix: str = "/v1.41") -> tuple[int | None, bytes, bytes]:
    """Create, start and inspect an exec through `address`, like the dispatcher does."""
    body: dict[str, Any] = {"AttachStdin": stdin is not None, "AttachStdout": True,
                            "AttachStderr": True, "Tty": tty, "Cmd": cmd}
    if user is not None:
        body["User"] = user
    if env is not None:
        body["Env"] = env
    created = request(address, "POST", f"{prefix}/containers/{container}/exec", body)
    assert created.status == 201, created.body
    exec_id = created.json()["Id"]
    started = request(address, "POST", f"{prefix}/exec/{exec_id}/start",
                      {"Detach": False, "Tty": tty},
                      headers={"Connection": "Upgrade", "Upgrade": "tcp"})
    assert started.status == 101, started.body
    sock = started.sock
    assert sock is not None
    writer = None
    if stdin is not None:
        # Write from a thread: the process's output must be read while stdin still flows.
        def feed() -> None:
            sock.sendall(stdin)
            sock.shutdown(socket.SHUT_WR)

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
    chunks = [started.rest]
    while True:
        data = sock.recv(1 << 20)
        if not data:
            break
        chunks.append(data)
    if writer is not None:
        writer.join()
    sock.close()
    stream = b"".join(chunks)
    out, err = (stream, b"") if tty else demux(stream)
    info = request(address, "GET", f"{prefix}/exec/{exec_id}/json")
    assert info.status == 200, info.body
    return info.json()["ExitCode"], out, err


def until_turned_away(address: str, timeout: float = 30.0) -> Reply:
    """Probe until the gate answers 503 (its connection cap is reached): the connections held
    before may still wait in the accept queue for a moment on a busy machine."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        sock = connect(address)
        try:
            sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = read_reply(sock)
        finally:
            sock.close()
        if reply.status == 503 or time.monotonic() > deadline:
            return reply
        time.sleep(0.05)

