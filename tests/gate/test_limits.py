"""Bounded resources: slow heads and bodies time out, a connection cap answers a
fast 503, and a flood of half-sent requests neither grows the gate's memory nor delays the
next routed command once it is gone.

The time and memory bounds are functional (what must hold), with wide margins; the
measured figures are in bench/gate_flood.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gate.conftest import RunningGate
from gate.helpers import connect, request, run_exec, until_turned_away
from gate.test_dispatcher import start_proxy, stop_proxy

pytestmark = pytest.mark.docker


def _bridge(name: str) -> dict[str, Any]:
    return {"version": "1", "commands": {"tool": {"container": name, "exec": "sh"}}}


def _closed_by_gate(sock: socket.socket) -> bytes:
    """Everything the gate sends until it closes the connection (30 s at most)."""
    sock.settimeout(30)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_slow_heads_bodies_and_idle_connections_time_out(
        gate_factory: Callable[..., RunningGate], make_container: Callable[..., Any]) -> None:
    box = make_container()
    gate = gate_factory(bridge=_bridge(box.name), head_timeout=1.0, body_timeout=1.0)
    slow_head, slow_body, idle = (connect(gate.address) for _ in range(3))
    slow_head.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n")
    slow_body.sendall(b"POST /containers/" + box.name.encode() + b"/exec HTTP/1.1\r\n"
                      b"Host: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
                      b"\r\n{\"Cmd\": ")
    # Meanwhile the gate serves others: one loop, never blocked by a slow client.
    assert run_exec(gate.address, box.name, ["true"])[0] == 0
    for sock in (slow_head, slow_body):
        answer = _closed_by_gate(sock)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"request not complete in time" in answer
    assert _closed_by_gate(idle) == b""  # never sent a byte: closed without a word
    timeouts = [d for d in gate.log_lines() if d["status"] == 408]
    assert sorted(d["method"] for d in timeouts) == ["-", "POST"]
    assert box.client.api.inspect_container(box.id)["ExecIDs"] is None


def test_beyond_the_cap_a_fast_503(gate_factory: Callable[..., RunningGate],
                                   make_container: Callable[..., Any]) -> None:
    box = make_container()
    gate = gate_factory(bridge=_bridge(box.name), max_connections=8)
    held = [connect(gate.address) for _ in range(8)]
    for sock in held:
        sock.sendall(b"GET /_ping HTTP/1.1\r\n")  # half-sent: each holds its slot
    reply = until_turned_away(gate.address)
    assert reply.status == 503
    assert "too many connections" in reply.json()["message"]
    for sock in held:
        sock.close()
    deadline = time.monotonic() + 10
    while request(gate.address, "GET", "/_ping").status != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert run_exec(gate.address, box.name, ["true"])[0] == 0
    gate.stop()  # flushes the count of refused connections to the log
    refused = [d for d in gate.log_lines() if d["status"] == 503]
    assert sum(d["count"] for d in refused) >= 1
    assert all(d["reason"].startswith("connection cap (8) reached") for d in refused)


def test_the_connection_cap_has_one_default() -> None:
    """`sidecar proxy` without --max-connections and a gate built without `Limits` hold the
    same number of connections: the one README documents (issue 20.9)."""
    import typer.main
    from conftest import REPO

    from sidecar_gen.cli import app
    from sidecar_gen.gate import MAX_CONNECTIONS
    from sidecar_gen.gate.server import Limits

    proxy = typer.main.get_command(app).commands["proxy"]  # type: ignore[attr-defined]
    [option] = [p for p in proxy.params if p.name == "max_connections"]
    assert option.default == Limits().max_connections == MAX_CONNECTIONS
    readme = (REPO / "README.md").read_text()
    assert f"`--max-connections` (default {MAX_CONNECTIONS})" in readme
    assert f"[--max-connections {MAX_CONNECTIONS}]" in readme


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def many_files() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_flood_of_2000_half_sent_requests(
        tmp_path: Path, sidecar_cli: list[str], make_container: Callable[..., Any],
        many_files: None) -> None:
    box = make_container()
    config = tmp_path / "bridge.yaml"
    config.write_text(json.dumps(_bridge(box.name)))
    proc, address, log = start_proxy(tmp_path, sidecar_cli, config)
    try:
        assert run_exec(address, box.name, ["true"])[0] == 0
        idle = _rss_kib(proc.pid)
        clients = []
        for _ in range(2000):
            sock = connect(address)
            sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n")  # never finished
            clients.append(sock)
        # Every connection beyond the cap gets its 503 (on a busy machine the loop may still be
        # accepting for a moment: look again until all have it, or 60 s passed).
        for sock in clients:
            sock.setblocking(False)
        waiting, busy = list(clients), 0
        deadline = time.monotonic() + 60
        while busy < 2000 - 256 and time.monotonic() < deadline:
            still = []
            for sock in waiting:
                try:
                    data = sock.recv(64)
                except BlockingIOError:
                    still.append(sock)
                    continue
                busy += data.startswith(b"HTTP/1.1 503 ")
            waiting = still
            time.sleep(0.1)
        rss = _rss_kib(proc.pid)
        threads = len(os.listdir(f"/proc/{proc.pid}/task"))
        for sock in clients:
            sock.close()
        start = time.monotonic()
        code, _out, _err = run_exec(address, box.name, ["true"])
        recovery = time.monotonic() - start
        print(f"flood: {busy} answered 503; gate RSS {idle / 1024:.1f} MiB idle, "
              f"{rss / 1024:.1f} MiB held; {threads} threads; next command {recovery:.3f} s")
        assert code == 0
        assert busy == 2000 - 256  # the default cap
        assert rss - idle < 32 * 1024, (idle, rss)
        assert threads < 40
        assert recovery < 1.0
    finally:
        stop_proxy(proc)
    counted = sum(d.get("count", 0) for d in map(json.loads, log.read_text().splitlines()))
    assert counted == busy
