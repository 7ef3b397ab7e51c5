"""The upgraded-stream relay on its own, over socket pairs (no engine needed)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time

import pytest

from sidecar_gen.gate import relay as relay_mod
from sidecar_gen.gate.relay import relay


def _pairs() -> tuple[socket.socket, socket.socket, socket.socket, socket.socket]:
    client_far, client_near = socket.socketpair()
    upstream_near, upstream_far = socket.socketpair()
    return client_far, client_near, upstream_near, upstream_far


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("mode", ["splice", "threads"])
def test_both_directions_and_half_closes(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if mode == "threads":
        monkeypatch.delattr(os, "splice", raising=False)
    elif not hasattr(os, "splice"):
        pytest.skip("no splice(2) on this platform")
    client_far, client_near, upstream_near, upstream_far = _pairs()
    counts: list[tuple[int, int]] = []
    worker = threading.Thread(target=relay, args=(client_near, upstream_near),
                              kwargs={"to_upstream": b"early-in ", "to_client": b"early-out ",
                                      "on_end": lambda i, o: counts.append((i, o))})
    worker.start()
    payload = os.urandom(3 * 1024 * 1024)
    received: dict[str, bytes] = {}
    # The engine side echoes until EOF (like `cat`), then closes its write side.
    def engine() -> None:
        data = _read_all(upstream_far)
        received["engine"] = data
        upstream_far.sendall(data[::-1])
        upstream_far.shutdown(socket.SHUT_WR)

    echo = threading.Thread(target=engine)
    echo.start()
    client_far.sendall(payload)
    client_far.shutdown(socket.SHUT_WR)  # stdin EOF must reach the engine side
    out = _read_all(client_far)
    echo.join(10)
    worker.join(10)
    assert not worker.is_alive()
    assert received["engine"] == b"early-in " + payload
    assert out == b"early-out " + (b"early-in " + payload)[::-1]
    # Told once, at the end: every byte each side sent, the early ones included (issue 20.7).
    assert counts == [(len(b"early-in ") + len(payload), len(out))]


def test_engine_end_stops_waiting_for_client_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay_mod, "DRAIN_SECONDS", 0.3)
    client_far, client_near, upstream_near, upstream_far = _pairs()
    worker = threading.Thread(target=relay, args=(client_near, upstream_near))
    worker.start()
    upstream_far.sendall(b"bye")
    upstream_far.close()  # the process exited; the client never closes its stdin
    start = time.monotonic()
    assert _read_all(client_far) == b"bye"
    worker.join(5)
    assert not worker.is_alive()
    assert time.monotonic() - start < 3


def test_client_gone_mid_stream_ends_the_relay() -> None:
    client_far, client_near, upstream_near, upstream_far = _pairs()
    worker = threading.Thread(target=relay, args=(client_near, upstream_near))
    worker.start()
    client_far.close()

    def engine() -> None:
        # The gate closes its engine connection: the engine's write fails, as it would.
        with contextlib.suppress(OSError):
            upstream_far.sendall(b"x" * 1_000_000)

    sender = threading.Thread(target=engine, daemon=True)
    sender.start()
    worker.join(10)
    assert not worker.is_alive()
    upstream_near.close()  # what the server does after relay() returns
    sender.join(10)
    assert not sender.is_alive()
