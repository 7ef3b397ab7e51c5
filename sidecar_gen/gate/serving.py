"""What the worker threads do with a client connection: read a request that comes at once,
take it through the decisions, send the answer, and hand the connection back to the event
loop (`server.Server`, through the four calls of `Loop`) whenever it would have to wait.

A worker never waits long on a client: for a new connection's first request FIRST_WAIT, for
the next one after an answer NEXT_WAIT (the dispatcher sends it as soon as it has the answer).
So a slow or idle client costs the loop a few KiB, never a worker for longer than that.
"""

from __future__ import annotations

import _socket
import select
import socket
import time
from collections.abc import Callable
from typing import Protocol

from sidecar_gen.gate.http import (
    Answer,
    MalformedError,
    Request,
    RequestReader,
    Switch,
    json_message,
    raw_response,
    render,
    render_upgrade,
    upgrade_leftover,
)
from sidecar_gen.gate.relay import StreamEnd

RECV = 65536
# How long a worker waits for a connection's first request, and for the next one after an
# answer (the dispatcher sends its next request as soon as it has the answer).
FIRST_WAIT, NEXT_WAIT = 0.005, 0.02
Handler = Callable[[Request, str], Answer | Switch]  # (request, peer) -> what to answer


class Client:
    """One client connection and where it is in its life."""

    __slots__ = ("deadline", "out", "peer", "phase", "reader", "sock", "then")

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.peer = peer
        self.reader = RequestReader()
        self.out = bytearray()  # answer bytes not sent yet
        self.phase = "read"  # read -> busy (a worker decides) -> write -> read | closed
        self.then: Callable[[], None] | None = None  # what follows the write
        self.deadline = 0.0


class Loop(Protocol):
    """What a worker hands back to the event loop, which owns every connection that waits."""

    def complete(self, client: Client, rest: bytes, then: Callable[[], None]) -> None:
        """Send `rest` (what the socket did not take), then run `then`, in the loop."""

    def close_client(self, client: Client) -> None:
        """Close the connection (in the loop)."""

    def resume(self, client: Client, reader: RequestReader, *, fresh: bool = False) -> None:
        """Read the connection's next request in the loop, with its deadlines."""

    def start_relay(self, client: Client, upstream: _socket.socket, *, to_upstream: bytes,
                    to_client: bytes, on_end: StreamEnd | None = None) -> None:
        """Relay the upgraded exec stream between the client and the engine; `on_end` gets
        the byte counts when it ends."""


def send_now(client: Client, data: bytes) -> bytes:
    """Send what the socket takes without blocking; return the rest."""
    try:
        sent = client.sock.send(data)
    except BlockingIOError:
        sent = 0
    except OSError:
        return b""
    return data[sent:]


class Workers:
    """The worker side of the server: `serve` a new connection, `work` on a request read."""

    def __init__(self, loop: Loop, handle: Handler, log: Callable[..., None],
                 policy: Callable[[], str]) -> None:
        self._loop = loop
        self._handle = handle
        self._log = log
        self._policy = policy

    def serve(self, client: Client) -> None:
        """In a worker: a new connection's first request, if it comes at once."""
        request = self._linger(client, b"", first=True)
        if request is not None:
            self.work(client, request)

    def work(self, client: Client, request: Request) -> None:
        """In a worker: decide, render and send the answer, and go on with the next request
        on the connection if it comes at once; the loop does the rest."""
        try:
            while True:
                leftover = self._answer(client, request, self._handle(request, client.peer))
                if leftover is None:
                    return
                nxt = self._linger(client, leftover, first=False)
                if nxt is None:
                    return
                request = nxt
        except Exception as exc:  # a bug: record it, answer if possible, drop the connection
            self._log(peer=client.peer, method=request.method, path=request.target,
                      decision="error", status=500, policy=self._policy(),
                      reason=f"internal error: {type(exc).__name__}: {exc}")
            rest = send_now(client, raw_response(
                500, json_message("sidecar gate: internal error")))
            self._loop.complete(client, rest, lambda: self._loop.close_client(client))

    def _answer(self, client: Client, request: Request,
                outcome: Answer | Switch) -> bytes | None:
        if isinstance(outcome, Switch):
            rest = send_now(client, render_upgrade(outcome.headers))
            early, upstream = upgrade_leftover(request.conn), outcome.upstream
            on_end = outcome.on_end
            counted = None if on_end is None else (  # the 101's own rest is not output
                lambda given, got: on_end(given, got - len(rest)))
            self._loop.complete(client, b"", lambda: self._loop.start_relay(
                client, upstream, to_upstream=early, to_client=rest + outcome.early,
                on_end=counted))
            return None
        data = render(outcome.status, outcome.body, headers=outcome.headers,
                      head_only=request.method == "HEAD", length=outcome.length,
                      close=outcome.close)
        leftover = None if outcome.close else request.leftover()
        rest = send_now(client, data)
        if leftover is None:
            self._loop.complete(client, rest, lambda: self._loop.close_client(client))
        elif rest:
            self._loop.complete(client, rest,
                                lambda: self._loop.resume(client, RequestReader(leftover)))
        else:
            return leftover
        return None

    def _linger(self, client: Client, leftover: bytes, *, first: bool) -> Request | None:
        """A complete request read at once (FIRST_WAIT, NEXT_WAIT), else None and the loop
        takes the connection over, with its deadlines."""
        reader = RequestReader(leftover)
        deadline = time.monotonic() + (FIRST_WAIT if first else NEXT_WAIT)
        poller = select.poll()  # not select(): descriptors above 1024 are common here
        poller.register(client.sock, select.POLLIN)
        while True:
            try:
                request = reader.poll()
            except MalformedError:
                break  # the loop answers it
            if reader.reply_now:
                send_now(client, reader.reply_now)
                reader.reply_now = b""
            if request is not None:
                return request
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(remaining * 1000):
                break
            try:
                data = client.sock.recv(RECV)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                break
            if not data:
                break  # the loop sees the end of the stream too
            reader.feed(data)
        self._loop.complete(client, b"", lambda: self._loop.resume(client, reader, fresh=first))
        return None

