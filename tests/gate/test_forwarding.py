"""What exactly reaches the engine: a recording upstream stands in for it.

Whatever reference the client uses (name, full id, id prefix, with or without a version), the
engine must receive the full id the gate checked, in a request line the gate built; and the
container list must never carry the client's question to the engine. The end-to-end side of
the same promise (the engine's own exec records) is in test_windows.py.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from gate.conftest import RunningGate, start_gate
from gate.helpers import request

TARGET = "a1" * 32
FOREIGN = "b2" * 32
EXEC = "e5" * 32
CANDIDATES = "GET /containers/json?all=1 HTTP/1.1"


class RecordingEngine:
    """A minimal engine on a unix socket: canned answers, every request line recorded."""

    def __init__(self, path: Path, labels: dict[str, str] | None = None) -> None:
        self.path = path
        self.labels = labels or {}  # the target's labels in the listing
        self.lines: list[str] = []
        self.bodies: list[bytes] = []
        self._sock = socket.socket(socket.AF_UNIX)
        self._sock.bind(str(path))
        self._sock.listen(64)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = {k.lower(): v.strip() for k, _, v in
                           (line.partition(":") for line in lines[1:])}
                length = int(headers.get("content-length", "0"))
                while len(buf) < length:
                    buf += conn.recv(65536)
                body, buf = buf[:length], buf[length:]
                self.lines.append(lines[0])
                self.bodies.append(body)
                status, answer = self._answer(lines[0], self.labels)
                if status == 101:
                    conn.sendall(b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\n"
                                 b"Upgrade: tcp\r\n\r\n")
                    return
                data = json.dumps(answer).encode()
                conn.sendall(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(data)}\r\n\r\n".encode() + data)

    @staticmethod
    def _answer(line: str, labels: dict[str, str]) -> tuple[int, Any]:
        method, target, _ = line.split(" ")
        path = target.split("?")[0].removeprefix("/v1.41")
        if path == "/containers/json":
            return 200, [{"Id": TARGET, "Names": ["/tgt"], "State": "running", "Labels": labels},
                         {"Id": FOREIGN, "Names": ["/foreign"], "State": "running",
                          "Labels": {}}]
        if path == f"/containers/{TARGET[:12]}/json":
            return 200, {"Id": TARGET}  # the engine's own resolution of the prefix
        if path.startswith("/containers/") and path.endswith("/json"):
            return 200, {"Id": path.split("/")[2], "Config": {"Labels": {}}}
        if path.endswith("/exec") and method == "POST":
            return 201, {"Id": EXEC}
        if path.endswith("/start"):
            return 101, None
        return 200, {"ExitCode": 0, "Running": False}


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[RecordingEngine, RunningGate]]:
    engine = RecordingEngine(tmp_path / "engine.sock")
    gate = start_gate(tmp_path, bridge={"version": "1", "commands": {
        "tool": {"container": "tgt", "exec": "sh", "user": "app"}}},
        upstream=f"unix://{engine.path}")
    try:
        yield engine, gate
    finally:
        gate.stop()
        engine.close()


@pytest.mark.parametrize("prefix", ["", "/v1.41", "/v1.47"])
@pytest.mark.parametrize("ref", ["tgt", TARGET, TARGET[:12]])
def test_the_engine_receives_the_full_id_that_was_checked(
        recorded: tuple[RecordingEngine, RunningGate], ref: str, prefix: str) -> None:
    engine, gate = recorded
    body = {"Cmd": ["sh", "-c", "id"], "User": "app", "AttachStdout": True, "Tty": False}
    created = request(gate.address, "POST", f"{prefix}/containers/{ref}/exec", body)
    assert created.status == 201, created.body
    inspected = request(gate.address, "GET", f"{prefix}/containers/{ref}/json")
    assert inspected.status == 200
    started = request(gate.address, "POST", f"{prefix}/exec/{EXEC}/start", {"Detach": False},
                      headers={"Connection": "Upgrade", "Upgrade": "tcp"})
    assert started.status == 101
    assert started.sock is not None
    started.sock.close()
    assert request(gate.address, "POST", f"{prefix}/exec/{EXEC}/resize?w=80&h=24").status == 200
    assert request(gate.address, "GET", f"{prefix}/exec/{EXEC}/json").status == 200
    confirm = [f"GET /containers/{ref}/json HTTP/1.1"] if ref == TARGET[:12] else []
    assert engine.lines == [
        CANDIDATES, *confirm, f"POST {prefix}/containers/{TARGET}/exec HTTP/1.1",
        CANDIDATES, *confirm, f"GET {prefix}/containers/{TARGET}/json HTTP/1.1",
        CANDIDATES, f"POST {prefix}/exec/{EXEC}/start HTTP/1.1",
        CANDIDATES, f"POST {prefix}/exec/{EXEC}/resize?h=24&w=80 HTTP/1.1",
        CANDIDATES, f"GET {prefix}/exec/{EXEC}/json HTTP/1.1",
    ]
    # The exec body is the gate's re-encoding of what it checked, not the client's bytes.
    forwarded = engine.bodies[engine.lines.index(
        f"POST {prefix}/containers/{TARGET}/exec HTTP/1.1")]
    assert json.loads(forwarded) == body


def test_the_container_list_never_carries_the_client_question(
        recorded: tuple[RecordingEngine, RunningGate]) -> None:
    engine, gate = recorded
    queries = [
        "all=1", "limit=1", "size=0",
        "filters=" + quote(json.dumps({"before": ["foreign"]})),
        "filters=" + quote(json.dumps({"since": [FOREIGN]})),
        "filters=" + quote(json.dumps({"name": ["foreign"], "label": ["x=y"]})),
    ]
    answers = {}
    for query in queries:
        reply = request(gate.address, "GET", f"/v1.41/containers/json?{query}")
        answers[query] = (reply.status, reply.body)
    assert set(engine.lines) == {CANDIDATES}
    assert len(engine.lines) == len(queries)
    assert answers["all=1"] == (200, json.dumps([
        {"Id": TARGET, "Names": ["/tgt"], "State": "running", "Labels": {}}]).encode())
    # `foreign` exists on the "host" but is not a target: answered like a missing container.
    assert answers[queries[3]][0] == answers[queries[4]][0] == 404
    assert json.loads(answers[queries[3]][1]) == {"message": "No such container: foreign"}


def test_nothing_reaches_the_engine_for_a_refused_request(
        recorded: tuple[RecordingEngine, RunningGate]) -> None:
    engine, gate = recorded
    for method, target, body in (
            ("POST", "/containers/create", {"Image": "x"}),
            ("POST", f"/containers/{FOREIGN}/exec", {"Cmd": ["id"]}),
            ("POST", "/containers/tgt/exec", {"Cmd": ["id"], "User": "root"}),
            ("POST", f"/exec/{'f' * 64}/start", {"Detach": False})):
        assert request(gate.address, method, target, body).status == 403
    # Only the fixed candidate listings of the two container decisions.
    assert engine.lines == [CANDIDATES, CANDIDATES]
    with contextlib.suppress(OSError):
        engine.close()


def test_a_service_member_is_remembered_by_full_id_never_by_name(tmp_path: Path) -> None:
    """Membership of a compose service rests on labels, which never change: known by full id,
    a member needs no new listing for the rest of a dispatch. Names, and a new policy, do."""
    engine = RecordingEngine(tmp_path / "engine.sock", labels={
        "com.docker.compose.service": "web", "com.docker.compose.project": "shop"})
    config = tmp_path / "bridge.yaml"
    config.write_text("version: '1'\ncommands: {tool: {container: web, exec: sh}}\n")
    gate = start_gate(tmp_path, config=config, upstream=f"unix://{engine.path}")
    try:
        listed = request(gate.address, "GET", "/v1.41/containers/json")  # the dispatcher's
        assert [c["Id"] for c in listed.json()] == [TARGET]
        assert request(gate.address, "POST", f"/v1.41/containers/{TARGET}/exec",
                       {"Cmd": ["id"]}).status == 201
        started = request(gate.address, "POST", f"/v1.41/exec/{EXEC}/start", {},
                          headers={"Connection": "Upgrade", "Upgrade": "tcp"})
        assert started.status == 101 and started.sock is not None
        started.sock.close()
        assert request(gate.address, "GET", f"/v1.41/exec/{EXEC}/json").status == 200
        assert engine.lines == [CANDIDATES, f"POST /v1.41/containers/{TARGET}/exec HTTP/1.1",
                                f"POST /v1.41/exec/{EXEC}/start HTTP/1.1",
                                f"GET /v1.41/exec/{EXEC}/json HTTP/1.1"]
        engine.lines.clear()
        # By name: always a new listing (a name can move to another container at any time).
        assert request(gate.address, "POST", "/containers/tgt/exec", {"Cmd": ["id"]}).status \
            == 201
        assert engine.lines == [CANDIDATES, f"POST /containers/{TARGET}/exec HTTP/1.1"]
        engine.lines.clear()
        # A reloaded policy forgets what the old one granted.
        gate.reload()
        assert request(gate.address, "POST", f"/containers/{TARGET}/exec",
                       {"Cmd": ["id"]}).status == 201
        assert engine.lines == [CANDIDATES, f"POST /containers/{TARGET}/exec HTTP/1.1"]
        engine.lines.clear()
        config.write_text("version: '1'\ncommands: {tool: {container: other, exec: sh}}\n")
        gate.reload()
        assert request(gate.address, "GET", f"/exec/{EXEC}/json").status == 403
        assert request(gate.address, "POST", f"/containers/{TARGET}/exec",
                       {"Cmd": ["id"]}).status == 403
        assert engine.lines == [CANDIDATES, CANDIDATES]
    finally:
        gate.stop()
        engine.close()
