"""Scripted stand-ins for the broker's upstreams: the Messages API and a TLS test CA.

The model API cannot run here, so a small server takes its place: it answers each request with
what the test's script returns (SSE streamed as it is written, with pauses when asked) and
records every request exactly as it arrived (method, target, headers in order, body), so a
test asserts on what the real client, through the real broker, sent. TLS uses a CA made at
test time with the openssl command line; nothing here fakes the broker or Claude Code.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class TestCA:
    """A certificate authority and one server certificate, made with `openssl` in `folder`."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, folder: Path, names: Iterable[str] = ("localhost",),
                 ips: Iterable[str] = ("127.0.0.1",)) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.ca_cert = folder / "ca.pem"
        self.cert = folder / "server.pem"
        self.key = folder / "server.key"
        ca_key = folder / "ca.key"

        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", str(ca_key), "-out", str(self.ca_cert), "-days", "2",
                "-subj", "/CN=sidecar test CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        san = ",".join([*(f"DNS:{n}" for n in names), *(f"IP:{i}" for i in ips)])
        csr = folder / "server.csr"
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", str(self.key), "-out", str(csr), "-subj", "/CN=sidecar test upstream")
        ext = folder / "server.ext"
        ext.write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n"
                       "basicConstraints=CA:FALSE\n")
        openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca_cert), "-CAkey",
                str(ca_key), "-CAcreateserial", "-out", str(self.cert), "-days", "2",
                "-extfile", str(ext))

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context with this CA's server certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


@dataclass
class Recorded:
    """One request as the stand-in received it."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    peer: str = ""

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def header_all(self, name: str) -> list[str]:
        """Every value of header `name`."""
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.partition("?")[0]


@dataclass
class Pause:
    """In a reply's body: wait this many seconds before sending the next piece."""

    seconds: float


@dataclass
class Reply:
    """What the stand-in answers: status, headers, and the body in pieces (each piece is sent
    and flushed on its own, chunked unless `length` framing is asked for)."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: Iterable[bytes | Pause] = ()
    framing: str = "chunked"  # chunked | length | close


Script = Callable[[Recorded], Reply]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # A real API server sends each event at once (no Nagle delay between small writes).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _handle(self) -> None:
        try:
            self._receive()
        except (ValueError, ConnectionError):
            # A request cut before its end (the broker stopped it): never complete, never
            # recorded, nothing answered.
            self.close_connection = True

    def _receive(self) -> None:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            body = self.rfile.read(int(length)) if length else b""
        record = Recorded(self.command, self.path, list(self.headers.items()), body,
                          f"{self.client_address[0]}:{self.client_address[1]}")
        with self.server.lock:
            self.server.requests.append(record)
        reply = self.server.script(record)
        self._send(reply)

    def _read_chunked(self) -> bytes:
        out = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return out
            out += self.rfile.read(size)
            self.rfile.readline()

    def _send(self, reply: Reply) -> None:
        pieces = list(reply.body)
        self.send_response_only(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.framing == "length":
            total = sum(len(p) for p in pieces if isinstance(p, bytes))
            self.send_header("Content-Length", str(total))
        elif reply.framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.flush()
        for piece in pieces:
            if isinstance(piece, Pause):
                time.sleep(piece.seconds)
                continue
            if not piece:
                continue
            if reply.framing == "chunked":
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                self.wfile.write(piece)
            self.wfile.flush()
        if reply.framing == "chunked":
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle  # noqa: N815


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], script: Script) -> None:
        super().__init__(address, _Handler)
        self.script = script
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()


class StandIn:
    """A scripted HTTP(S) server in a background thread; `requests` is what it received."""

    def __init__(self, script: Script, *, ca: TestCA | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self._server = _Server((host, port), script)
        if ca is not None:
            context = ca.server_context()
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.scheme = "https" if ca is not None else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def requests(self) -> list[Recorded]:
        """A copy of every request received so far, in order."""
        with self._server.lock:
            return list(self._server.requests)

    def script(self, script: Script) -> None:
        """Answer from now on with `script`."""
        self._server.script = script

    def url(self, host: str = "127.0.0.1") -> str:
        """The base URL of the stand-in as reached through `host`."""
        return f"{self.scheme}://{host}:{self.port}"

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()


# -- the Messages API's streamed answers ------------------------------------------------------

def sse(event: str, data: dict[str, Any]) -> bytes:
    """One server-sent event as the Messages API sends it."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _message_start(model: str, input_tokens: int, message_id: str) -> bytes:
    return sse("message_start", {"type": "message_start", "message": {
        "id": message_id, "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}})


def _message_end(stop_reason: str, output_tokens: int) -> list[bytes]:
    return [sse("message_delta", {"type": "message_delta",
                                  "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                  "usage": {"output_tokens": output_tokens}}),
            sse("message_stop", {"type": "message_stop"})]


SSE_HEADERS = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"),
               ("request-id", "req_standin")]


def text_reply(text: str, *, model: str = "claude-test-1", input_tokens: int = 11,
               output_tokens: int = 7, pieces: int = 1, pause: float = 0.0) -> Reply:
    """A streamed text answer, the text split in `pieces` deltas with `pause` between them."""
    body: list[bytes | Pause] = [
        _message_start(model, input_tokens, "msg_standin_text"),
        sse("content_block_start", {"type": "content_block_start", "index": 0,
                                    "content_block": {"type": "text", "text": ""}}),
        sse("ping", {"type": "ping"})]
    step = max(1, -(-len(text) // pieces))
    for start in range(0, len(text), step):
        if pause and start:
            body.append(Pause(pause))
        body.append(sse("content_block_delta", {
            "type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": text[start:start + step]}}))
    body.append(sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
    body += _message_end("end_turn", output_tokens)
    return Reply(200, list(SSE_HEADERS), body)


def tool_use_reply(name: str, tool_input: dict[str, Any], *, tool_id: str = "toolu_standin_1",
                   model: str = "claude-test-1", input_tokens: int = 23,
                   output_tokens: int = 9) -> Reply:
    """A streamed answer that calls one tool."""
    partial = json.dumps(tool_input)
    body: list[bytes | Pause] = [
        _message_start(model, input_tokens, "msg_standin_tool"),
        sse("content_block_start", {"type": "content_block_start", "index": 0,
                                    "content_block": {"type": "tool_use", "id": tool_id,
                                                      "name": name, "input": {}}}),
        sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                    "delta": {"type": "input_json_delta",
                                              "partial_json": partial}}),
        sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        *_message_end("tool_use", output_tokens)]
    return Reply(200, list(SSE_HEADERS), body)


def json_reply(status: int, doc: Any, headers: list[tuple[str, str]] | None = None) -> Reply:
    """A JSON answer (Content-Length framed)."""
    return Reply(status, [("Content-Type", "application/json"), *(headers or [])],
                 [json.dumps(doc).encode()], framing="length")


def tool_results(record: Recorded) -> list[dict[str, Any]]:
    """The `tool_result` blocks of a Messages request's last user turn."""
    try:
        messages = record.json().get("messages") or []
    except (ValueError, AttributeError):
        return []
    if not messages or messages[-1].get("role") != "user":
        return []
    content = messages[-1].get("content")
    if not isinstance(content, list):
        return []
    return [block for block in content if isinstance(block, dict)
            and block.get("type") == "tool_result"]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
