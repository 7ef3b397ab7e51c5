"""The gate's server: the listening socket and one event loop for every client connection.

One thread (the loop) owns the client connections: it accepts (beyond `max_connections`, a
fast 503 and close), reads requests with deadlines for slow heads, bodies and idle
connections, writes what could not be sent at once, and relays every upgraded exec stream.
A small pool of worker threads (`serving.Workers`) takes each new connection at once and
serves the requests that arrive at once through `handle` (the decisions, which wait on the
engine); whatever would make a worker wait goes back to the loop through the four calls of
`serving.Loop`, which the server implements. So a flood of connections costs a
few KiB each, never a thread, and cannot delay the next command once it is gone. Nothing here
knows what is allowed.
"""

from __future__ import annotations

import _socket
import contextlib
import heapq
import itertools
import math
import os
import selectors
import socket
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sidecar_gen.errors import InputError
from sidecar_gen.gate import MAX_CONNECTIONS
from sidecar_gen.gate.http import (
    MalformedError,
    RequestReader,
    json_message,
    raw_response,
    render,
)
from sidecar_gen.gate.relay import READ, WRITE, Relay, StreamEnd, sync_interest
from sidecar_gen.gate.serving import RECV, Client, Handler, Workers, send_now
from sidecar_gen.runtime import transport
from sidecar_gen.runtime.errors import DispatchError

BUSY = raw_response(503, json_message("sidecar gate: too many connections; try again"))


@dataclass(frozen=True)
class Limits:
    """What one client may hold, and for how long."""

    max_connections: int = MAX_CONNECTIONS  # client connections at once, exec streams included
    head_timeout: float = 10.0  # a request head must be complete this long after it started
    body_timeout: float = 30.0  # ... and its body this long after the head
    idle_timeout: float = 60.0  # a kept-alive connection may wait this long for a request
    write_timeout: float = 30.0  # the client must take an answer within this time
    workers: int = 16  # threads deciding requests (they wait on the engine)


def bind(listen: str) -> tuple[socket.socket, str]:
    """The listening socket for `tcp://HOST:PORT` or `unix:///path`, and its actual address."""
    try:
        scheme, where, port = transport.parse_host(listen, any_port=True)
    except DispatchError:
        raise InputError(listen, "the listen address must be tcp://HOST:PORT or unix:///path") \
            from None
    try:
        if scheme == "tcp":
            family = socket.AF_INET6 if ":" in where else socket.AF_INET
            sock = socket.create_server((where, port), family=family, backlog=1024)
            return sock, f"tcp://{where}:{sock.getsockname()[1]}"
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(where).st_mode):
                os.unlink(where)  # a stale socket from an earlier run
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(where)
            sock.listen(1024)
        except OSError:
            sock.close()
            raise
        return sock, listen
    except OSError as exc:
        raise InputError(listen, f"cannot listen: {exc.strerror or exc}") from None


class Server:
    """The event loop serving one listening socket; `handle` runs in the worker threads.

    `log` writes the decision log's connection-level lines (refused connections, malformed
    or incomplete requests), each with the `policy()` in force.
    """

    def __init__(self, sock: socket.socket, address: str, *, handle: Handler,
                 log: Callable[..., None], policy: Callable[[], str],
                 limits: Limits | None = None) -> None:
        self.address = address
        self._sock = sock
        self._sock.setblocking(False)
        self._log = log
        self._policy = policy
        self._serving = Workers(self, handle, log, policy)
        self._limits = limits or Limits()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        for end in (self._wake_r, self._wake_w):
            end.setblocking(False)
        self._workers = ThreadPoolExecutor(max_workers=max(1, self._limits.workers),
                                           thread_name_prefix="sidecar-gate")
        self._done: deque[tuple[Client, bytes, Callable[[], None]]] = deque()
        self._clients: set[Client] = set()
        self._relays: dict[Relay, dict[_socket.socket, int]] = {}
        self._deadlines: list[tuple[float, int, Client | Relay]] = []  # lazily superseded
        self._seq = itertools.count()
        self._refused = 0
        self._refused_since = time.monotonic()
        self._stop = threading.Event()
        self._between: list[Callable[[], None]] = []  # run in the loop's thread (signals)
        self._accepting = True
        self._resume_at = 0.0

    # -- lifecycle -------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Serve until `shutdown()`; then close every connection."""
        self._selector.register(self._sock, READ, self._sock)
        self._selector.register(self._wake_r, READ, self._wake_r)
        try:
            while not self._stop.is_set():
                events = self._selector.select(self._timeout())
                now = time.monotonic()
                streams: dict[Relay, None] = {}
                for key, mask in events:
                    if isinstance(key.data, Relay):
                        streams[key.data] = None  # both its sockets: one pump
                    else:
                        self._guarded(key.data, self._on_event, key.data, mask, now)
                for stream in streams:
                    if stream in self._relays:
                        self._guarded(stream, self._pump_relay, stream, now)
                self._finish_done()
                self._expire(time.monotonic())
                while self._between:
                    self._between.pop(0)()
        finally:
            self._close_all()

    def _guarded(self, item: object, action: Callable[..., None], *args: object) -> None:
        """Run one connection's step; a bug in it ends that connection, never the loop."""
        try:
            action(*args)
        except Exception as exc:
            self._log(peer=getattr(item, "peer", "-"), method="-", path="-", decision="error",
                      status=500, policy=self._policy(),
                      reason=f"internal error: {type(exc).__name__}: {exc}")
            if isinstance(item, Client):
                self.close_client(item)
            elif isinstance(item, Relay):
                self._end_relay(item)

    def shutdown(self) -> None:
        """Stop serving (from any thread or a signal handler)."""
        self._stop.set()
        self._wake()

    def call_soon(self, action: Callable[[], None]) -> None:
        """Run `action` in the loop's thread (safe from a signal handler)."""
        self._between.append(action)
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _timeout(self) -> float:
        soonest = self._deadlines[0][0] if self._deadlines else math.inf
        if not self._accepting:
            soonest = min(soonest, self._resume_at)
        return max(0.0, min(1.0, soonest - time.monotonic()))

    def _close_all(self) -> None:
        self._flush_refusals(force=True)
        for client in list(self._clients):
            self.close_client(client)
        for stream in list(self._relays):
            self._end_relay(stream)
        self._workers.shutdown(wait=False, cancel_futures=True)
        self._selector.close()
        for sock in (self._sock, self._wake_r, self._wake_w):
            sock.close()
        if self.address.startswith("unix://"):
            with contextlib.suppress(OSError):
                os.unlink(self.address[len("unix://"):])

    # -- events ----------------------------------------------------------------------------

    def _on_event(self, data: object, mask: int, now: float) -> None:
        if data is self._sock:
            self._accept(now)
        elif data is self._wake_r:
            with contextlib.suppress(OSError):
                while self._wake_r.recv(4096):
                    pass
        elif isinstance(data, Client):
            if mask & READ and data.phase == "read":
                self._read(data, now)
            if mask & WRITE and data.phase == "write":
                self._write(data, now)

    def _accept(self, now: float) -> None:
        while True:
            try:
                sock, addr = self._sock.accept()
            except BlockingIOError:
                return
            except OSError:
                # Out of file descriptors, most likely: stop accepting for a moment instead of
                # spinning on a listening socket that stays readable.
                self._selector.unregister(self._sock)
                self._accepting, self._resume_at = False, now + 0.1
                return
            if len(self._clients) + len(self._relays) >= self._limits.max_connections:
                self._turn_away(sock)
                continue
            sock.setblocking(False)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                # Small request/response exchanges: never wait for Nagle.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peer = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) and addr else "unix"
            client = Client(sock, peer)
            client.phase = "busy"
            self._clients.add(client)
            # A worker wakes while the client sends its first request, and serves it if it
            # comes at once; else (slow, idle) the loop takes the connection, with deadlines.
            self._workers.submit(self._serving.serve, client)

    def _turn_away(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.setblocking(False)
            sock.send(BUSY)
            # Read what the client already sent: closing with unread bytes would reset the
            # connection and could discard the 503 before the client reads it.
            sock.recv(RECV)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        self._refused += 1
        self._flush_refusals()

    def _flush_refusals(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self._refused or (not force and now - self._refused_since < 1.0):
            return
        cap = self._limits.max_connections
        self._log(peer="-", method="-", path="-", decision="deny",
                  reason=f"connection cap ({cap}) reached: answered 503 and closed",
                  status=503, policy=self._policy(), count=self._refused)
        self._refused, self._refused_since = 0, now

    def _arm(self, client: Client, deadline: float) -> None:
        client.deadline = deadline
        heapq.heappush(self._deadlines, (deadline, next(self._seq), client))

    def _expire(self, now: float) -> None:
        self._flush_refusals()
        if not self._accepting and now >= self._resume_at:
            self._accepting = True
            self._selector.register(self._sock, READ, self._sock)
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, _seq, item = heapq.heappop(self._deadlines)
            if isinstance(item, Relay):
                if item in self._relays and item.finished(now):
                    self._end_relay(item)  # the engine's side ended; the drain time is over
            elif item.deadline != deadline or item not in self._clients:
                continue  # superseded
            elif item.phase == "read" and item.reader.started:
                method, target = item.reader.method_and_target
                self._deny_malformed(item, method, target, "request not complete in time",
                                     status=408)
            elif item.phase in ("read", "write"):
                self.close_client(item)

    # -- reading and answering -------------------------------------------------------------

    def _read(self, client: Client, now: float) -> None:
        try:
            data = client.sock.recv(RECV)
        except BlockingIOError:
            return
        except OSError:
            self.close_client(client)
            return
        if not data:
            if client.reader.head_done:
                method, target = client.reader.method_and_target
                self._deny_malformed(client, method, target,
                                     "connection closed inside the request body")
            else:
                self.close_client(client)
            return
        if not client.reader.started and client.deadline - now > self._limits.head_timeout:
            self._arm(client, now + self._limits.head_timeout)  # was idle: the head starts
        client.reader.feed(data)
        self._advance(client, now)

    def _advance(self, client: Client, now: float) -> None:
        reader = client.reader
        had_head = reader.head_done
        try:
            request = reader.poll()
        except MalformedError as exc:
            method, target = reader.method_and_target
            self._deny_malformed(client, method, target, str(exc))
            return
        if reader.reply_now:
            send_now(client, reader.reply_now)
            reader.reply_now = b""
        if request is None:
            if reader.head_done and not had_head:
                self._arm(client, now + self._limits.body_timeout)
            return
        client.phase = "busy"
        client.deadline = 0.0
        self._selector.unregister(client.sock)
        self._workers.submit(self._serving.work, client, request)

    # -- what the workers hand back (`serving.Loop`) ---------------------------------------

    def resume(self, client: Client, reader: RequestReader, *, fresh: bool = False) -> None:
        """Take the connection back to read its next request here, with its deadlines."""
        now = time.monotonic()
        client.reader = reader
        client.phase = "read"
        self._selector.register(client.sock, READ, client)
        self._arm(client, now + (self._limits.head_timeout if reader.started or fresh
                                 else self._limits.idle_timeout))
        self._advance(client, now)

    def complete(self, client: Client, rest: bytes, then: Callable[[], None]) -> None:
        """Send `rest`, then run `then`, in the loop's thread (from a worker)."""
        self._done.append((client, rest, then))
        self._wake()

    def _finish_done(self) -> None:
        now = time.monotonic()
        while self._done:
            client, rest, then = self._done.popleft()
            if client not in self._clients:
                continue
            if rest:
                client.out += rest
                client.phase, client.then = "write", then
                self._selector.register(client.sock, WRITE, client)
                self._arm(client, now + self._limits.write_timeout)
            else:
                self._guarded(client, then)

    def _write(self, client: Client, now: float) -> None:
        try:
            sent = client.sock.send(client.out)
        except BlockingIOError:
            return
        except OSError:
            self.close_client(client)
            return
        del client.out[:sent]
        if client.out:
            return
        self._selector.unregister(client.sock)
        then, client.then = client.then, None
        if then is not None:
            then()

    def _deny_malformed(self, client: Client, method: str, target: str, reason: str, *,
                        status: int = 400) -> None:
        self._log(peer=client.peer, method=method, path=target, decision="deny",
                  reason=reason, status=status, policy=self._policy())
        message = json_message(f"sidecar gate: malformed request: {reason}")
        data = render(status, message, close=True)
        if client.phase == "read":
            self._selector.unregister(client.sock)
        client.phase = "busy"
        self.complete(client, send_now(client, data), lambda: self.close_client(client))

    def close_client(self, client: Client) -> None:
        """Close one client connection (in the loop's thread)."""
        if client not in self._clients:
            return
        self._clients.discard(client)
        if client.phase in ("read", "write"):
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(client.sock)
        client.phase = "closed"
        with contextlib.suppress(OSError):
            client.sock.close()

    # -- exec streams ----------------------------------------------------------------------

    def start_relay(self, client: Client, upstream: _socket.socket, *, to_upstream: bytes,
                    to_client: bytes, on_end: StreamEnd | None = None) -> None:
        """Relay the upgraded exec stream; the client's connection slot passes to it."""
        self._clients.discard(client)  # the slot passes to the stream
        stream = Relay(client.sock, upstream, to_upstream=to_upstream, to_client=to_client,
                       on_end=on_end)
        self._relays[stream] = {}
        self._pump_relay(stream, time.monotonic())

    def _pump_relay(self, stream: Relay, now: float) -> None:
        drain_was = stream.drain_until
        stream.pump(now)
        if stream.finished(now):
            self._end_relay(stream)
            return
        if stream.drain_until is not None and drain_was is None:
            heapq.heappush(self._deadlines, (stream.drain_until, next(self._seq), stream))
        sync_interest(self._selector, self._relays[stream], stream.interest(), stream)

    def _end_relay(self, stream: Relay) -> None:
        registered = self._relays.pop(stream, {})
        for sock in registered:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
        stream.close()
