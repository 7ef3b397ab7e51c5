"""The gate's server: the listening socket and one event loop for every client connection.

One thread (the loop) owns all client I/O: it accepts (beyond `max_connections`, a fast 503
and close), reads requests with deadlines for slow heads, bodies and idle connections, writes
answers, and relays every upgraded exec stream. A small pool of worker threads takes each
complete request through the decisions (`endpoints.decide`), which wait on the engine. So a
flood of connections costs a few KiB each, never a thread, and cannot delay the next command
once it is gone.
"""

from __future__ import annotations

import _socket
import contextlib
import heapq
import itertools
import os
import selectors
import signal
import socket
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sidecar_gen.errors import InputError
from sidecar_gen.gate import policyfile
from sidecar_gen.gate.audit import DecisionLog
from sidecar_gen.gate.endpoints import Answer, Gatekeeper, Switch, decide
from sidecar_gen.gate.engine import Engine, UpstreamError
from sidecar_gen.gate.http import (
    MalformedError,
    Request,
    RequestReader,
    json_message,
    raw_response,
    render,
    render_upgrade,
    upgrade_leftover,
)
from sidecar_gen.gate.policy import self_container_ids
from sidecar_gen.gate.relay import READ, WRITE, Relay, sync_interest
from sidecar_gen.model import Bridge
from sidecar_gen.runtime import transport
from sidecar_gen.runtime.errors import DispatchError

RECV = 65536
BUSY = raw_response(503, json_message("sidecar gate: too many connections; try again"))


@dataclass
class GateOptions:
    """Everything `Gate` needs; the CLI fills it from flags."""

    listen: str
    upstream: str = "unix:///var/run/docker.sock"
    config: Path | None = None  # the approved bridge.yaml, read at start and on SIGHUP
    bridge: Bridge | None = None  # a fixed policy (tests), instead of `config`
    workspace: Path | None = None  # the workspace's bridge.yaml, only compared with `config`
    project: str | None = None  # the compose project to serve when not running in one
    strict: bool = False
    log: IO[str] | None = None  # decision log stream; None: stderr
    notices: IO[str] | None = None  # one-line notices (policy, scope); None: stderr
    self_ids: frozenset[str] | None = None  # the gate's own container; None: detect
    proc_root: Path = field(default_factory=lambda: Path("/proc/self"))
    max_connections: int = 256
    head_timeout: float = 10.0  # a request head must be complete this long after it started
    body_timeout: float = 30.0  # ... and its body this long after the head
    idle_timeout: float = 60.0  # a kept-alive connection may wait this long for a request
    write_timeout: float = 30.0  # the client must take an answer within this time
    workers: int = 16


def detect_self_ids(proc_root: Path = Path("/proc/self")) -> frozenset[str]:
    """The gate's own container id(s), from mountinfo, cgroup and hostname (empty on a host)."""

    def read(name: str) -> str:
        try:
            return (proc_root / name).read_text(errors="replace")
        except OSError:
            return ""

    return self_container_ids(read("mountinfo"), read("cgroup"), socket.gethostname())


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


class _Client:
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


class Gate:
    """A running gate: a listening socket, its event loop and its workers."""

    def __init__(self, options: GateOptions) -> None:
        self._options = options
        self._notices = options.notices if options.notices is not None else sys.stderr
        self._log = DecisionLog(options.log if options.log is not None else sys.stderr)
        try:
            engine = Engine(options.upstream)
        except ValueError as exc:
            raise InputError(options.upstream, f"the upstream must be unix:///path or "
                                               f"tcp://HOST:PORT ({exc})") from None
        self._sock, self.address = bind(options.listen)
        self._sock.setblocking(False)
        self.self_ids = (options.self_ids if options.self_ids is not None
                         else detect_self_ids(options.proc_root))
        self.keeper = Gatekeeper(engine, self._load(), self_ids=self.self_ids,
                                 project=options.project)
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        for end in (self._wake_r, self._wake_w):
            end.setblocking(False)
        self._workers = ThreadPoolExecutor(max_workers=max(1, options.workers),
                                           thread_name_prefix="sidecar-gate")
        self._done: deque[tuple[_Client, bytes, Callable[[], None]]] = deque()
        self._clients: set[_Client] = set()
        self._relays: dict[Relay, dict[_socket.socket, int]] = {}
        self._deadlines: list[tuple[float, int, _Client]] = []
        self._seq = itertools.count()
        self._refused = 0
        self._refused_since = time.monotonic()
        self._stop = threading.Event()
        self._reload_asked = False
        self._accepting = True
        self._resume_at = 0.0
        self._note_scope()

    # -- policy ----------------------------------------------------------------------------

    def _notice(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._notices.write(line + "\n")
            self._notices.flush()

    def _load(self) -> policyfile.PolicyState:
        options = self._options
        if options.bridge is not None:
            return policyfile.from_bridge(options.bridge, strict=options.strict,
                                          environ=os.environ)
        state, line = policyfile.load(options.config, strict=options.strict,
                                      environ=os.environ)
        self._notice(line)
        differs = policyfile.compare_workspace(state, options.workspace)
        if differs:
            self._notice(differs)
        return state

    def reload(self) -> None:
        """Read the approved policy again (what SIGHUP does); never on a file change."""
        self.keeper.state = self._load()

    def _note_scope(self) -> None:
        try:
            scope = self.keeper.scope()
        except UpstreamError as exc:
            self._notice(f"sidecar gate: {exc}; the compose project is determined on the first "
                         "request")
            return
        if scope:
            self._notice(f"sidecar gate: targets are limited to compose project {scope}")
        else:
            self._notice("sidecar gate: not in a compose project: targets are not limited to "
                         "one (pass --project to limit them)")

    # -- lifecycle -------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Serve until `shutdown()`; then close every connection."""
        self._selector.register(self._sock, READ, self._sock)
        self._selector.register(self._wake_r, READ, self._wake_r)
        try:
            while not self._stop.is_set():
                events = self._selector.select(self._timeout())
                now = time.monotonic()
                for key, mask in events:
                    self._on_event(key.data, mask, now)
                self._finish_done()
                self._expire(time.monotonic())
                if self._reload_asked:
                    self._reload_asked = False
                    self.reload()
        finally:
            self._close_all()

    def shutdown(self) -> None:
        """Stop serving (from any thread or a signal handler)."""
        self._stop.set()
        self._wake()

    def ask_reload(self) -> None:
        """Reload the policy in the loop's thread (safe from a signal handler)."""
        self._reload_asked = True
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _timeout(self) -> float:
        now = time.monotonic()
        soonest = now + 1.0
        if self._deadlines:
            soonest = min(soonest, self._deadlines[0][0])
        for stream in self._relays:
            if stream.drain_until is not None:
                soonest = min(soonest, stream.drain_until)
        if not self._accepting:
            soonest = min(soonest, self._resume_at)
        return max(0.0, soonest - now)

    def _close_all(self) -> None:
        self._flush_refusals(force=True)
        for client in list(self._clients):
            self._close(client)
        for stream in list(self._relays):
            self._end_relay(stream)
        self._workers.shutdown(wait=False, cancel_futures=True)
        self._selector.close()
        for sock in (self._sock, self._wake_r, self._wake_w):
            sock.close()
        self.keeper.engine.close()
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
        elif isinstance(data, _Client):
            if mask & READ and data.phase == "read":
                self._read(data, now)
            if mask & WRITE and data.phase == "write":
                self._write(data, now)
        elif isinstance(data, Relay):
            data.pump(now)
            self._sync_relay(data, now)

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
            if len(self._clients) + len(self._relays) >= self._options.max_connections:
                self._turn_away(sock)
                continue
            sock.setblocking(False)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                # Small request/response exchanges: never wait for Nagle.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peer = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) and addr else "unix"
            client = _Client(sock, peer)
            self._clients.add(client)
            self._selector.register(sock, READ, client)
            self._arm(client, now + self._options.head_timeout)

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
        cap = self._options.max_connections
        self._log.record(peer="-", method="-", path="-", decision="deny",
                         reason=f"connection cap ({cap}) reached: answered 503 and closed",
                         status=503, policy=self.keeper.state.header, count=self._refused)
        self._refused, self._refused_since = 0, now

    def _arm(self, client: _Client, deadline: float) -> None:
        client.deadline = deadline
        heapq.heappush(self._deadlines, (deadline, next(self._seq), client))

    def _expire(self, now: float) -> None:
        self._flush_refusals()
        if not self._accepting and now >= self._resume_at:
            self._accepting = True
            self._selector.register(self._sock, READ, self._sock)
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, _seq, client = heapq.heappop(self._deadlines)
            if client.deadline != deadline or client not in self._clients:
                continue  # superseded
            if client.phase == "read" and client.reader.started:
                method, target = client.reader.method_and_target
                self._deny_malformed(client, method, target, "request not complete in time",
                                     status=408)
            elif client.phase in ("read", "write"):
                self._close(client)
        for stream in [s for s in self._relays if s.finished(now)]:
            self._end_relay(stream)

    # -- reading and answering -------------------------------------------------------------

    def _read(self, client: _Client, now: float) -> None:
        try:
            data = client.sock.recv(RECV)
        except BlockingIOError:
            return
        except OSError:
            self._close(client)
            return
        if not data:
            if client.reader.head_done:
                method, target = client.reader.method_and_target
                self._deny_malformed(client, method, target,
                                     "connection closed inside the request body")
            else:
                self._close(client)
            return
        if not client.reader.started and client.deadline - now > self._options.head_timeout:
            self._arm(client, now + self._options.head_timeout)  # was idle: the head starts
        client.reader.feed(data)
        self._advance(client, now)

    def _advance(self, client: _Client, now: float) -> None:
        reader = client.reader
        had_head = reader.head_done
        try:
            request = reader.poll()
        except MalformedError as exc:
            method, target = reader.method_and_target
            self._deny_malformed(client, method, target, str(exc))
            return
        if reader.reply_now:
            self._send_now(client, reader.reply_now)
            reader.reply_now = b""
        if request is None:
            if reader.head_done and not had_head:
                self._arm(client, now + self._options.body_timeout)
            return
        client.phase = "busy"
        client.deadline = 0.0
        self._selector.unregister(client.sock)
        self._workers.submit(self._work, client, request)

    def _send_now(self, client: _Client, data: bytes) -> bytes:
        """Send what the socket takes without blocking; return the rest."""
        try:
            sent = client.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            return b""
        return data[sent:]

    def _work(self, client: _Client, request: Request) -> None:
        """In a worker: decide, render and send the answer; the loop does the rest."""
        try:
            outcome = decide(self.keeper, method=request.method, raw_target=request.target,
                             headers=request.headers, body=request.body, peer=client.peer,
                             log=self._log.record)
            self._answer(client, request, outcome)
        except Exception as exc:  # a bug: record it, answer if possible, drop the connection
            self._log.record(peer=client.peer, method=request.method, path=request.target,
                             decision="error", status=500, policy=self.keeper.state.header,
                             reason=f"internal error: {type(exc).__name__}: {exc}")
            rest = self._send_now(client, raw_response(
                500, json_message("sidecar gate: internal error")))
            self._complete(client, rest, lambda: self._close(client))

    def _answer(self, client: _Client, request: Request, outcome: Answer | Switch) -> None:
        if isinstance(outcome, Switch):
            upstream = outcome.upstream.conn
            data = render_upgrade(request.conn, outcome.headers)
            rest = self._send_now(client, data)
            early = upgrade_leftover(request.conn)
            self._complete(client, b"", lambda: self._start_relay(
                client, upstream.sock, to_upstream=early, to_client=rest + bytes(upstream.buf)))
            return
        data = render(request.conn, outcome.status, outcome.body, headers=outcome.headers,
                      head_only=request.method == "HEAD", length=outcome.length,
                      close=outcome.close)
        leftover = None if outcome.close else request.leftover()
        rest = self._send_now(client, data)
        if leftover is None:
            self._complete(client, rest, lambda: self._close(client))
        else:
            self._complete(client, rest, lambda: self._next_request(client, leftover))

    def _complete(self, client: _Client, rest: bytes, then: Callable[[], None]) -> None:
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
                self._arm(client, now + self._options.write_timeout)
            else:
                then()

    def _write(self, client: _Client, now: float) -> None:
        try:
            sent = client.sock.send(client.out)
        except BlockingIOError:
            return
        except OSError:
            self._close(client)
            return
        del client.out[:sent]
        if client.out:
            return
        self._selector.unregister(client.sock)
        then, client.then = client.then, None
        if then is not None:
            then()

    def _next_request(self, client: _Client, leftover: bytes) -> None:
        now = time.monotonic()
        client.reader = RequestReader(leftover)
        client.phase = "read"
        self._selector.register(client.sock, READ, client)
        self._arm(client, now + (self._options.head_timeout if leftover
                                 else self._options.idle_timeout))
        if leftover:
            self._advance(client, now)  # a request sent before its predecessor was answered

    def _deny_malformed(self, client: _Client, method: str, target: str, reason: str, *,
                        status: int = 400) -> None:
        self._log.record(peer=client.peer, method=method, path=target, decision="deny",
                         reason=reason, status=status, policy=self.keeper.state.header)
        message = json_message(f"sidecar gate: malformed request: {reason}")
        data = render(client.reader.conn, status, message, close=True)
        if client.phase == "read":
            self._selector.unregister(client.sock)
        client.phase = "busy"
        self._complete(client, self._send_now(client, data), lambda: self._close(client))

    def _close(self, client: _Client) -> None:
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

    def _start_relay(self, client: _Client, upstream: _socket.socket, *, to_upstream: bytes,
                     to_client: bytes) -> None:
        self._clients.discard(client)  # the slot passes to the stream
        stream = Relay(client.sock, upstream, to_upstream=to_upstream, to_client=to_client)
        self._relays[stream] = {}
        now = time.monotonic()
        stream.pump(now)
        self._sync_relay(stream, now)

    def _sync_relay(self, stream: Relay, now: float) -> None:
        if stream.finished(now):
            self._end_relay(stream)
            return
        sync_interest(self._selector, self._relays[stream], stream.interest(), stream)

    def _end_relay(self, stream: Relay) -> None:
        registered = self._relays.pop(stream, {})
        for sock in registered:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
        stream.close()


def run_gate(options: GateOptions, *, ready: Callable[[str], None] | None = None) -> int:
    """Run the gate until SIGTERM or SIGINT; SIGHUP reloads the policy. Returns the exit code.

    A missing or invalid policy does not stop the gate: it refuses every request and says
    once how to fix it (so a restart loop never hides the reason).
    """
    gate = Gate(options)
    if ready is not None:
        ready(gate.address)
    if threading.current_thread() is threading.main_thread():
        # As a container's PID 1 the default actions of SIGTERM and SIGHUP are ignored.
        signal.signal(signal.SIGTERM, lambda _s, _f: gate.shutdown())
        signal.signal(signal.SIGINT, lambda _s, _f: gate.shutdown())
        signal.signal(signal.SIGHUP, lambda _s, _f: gate.ask_reload())
    gate.serve_forever()
    return 0
