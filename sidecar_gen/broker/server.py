"""The listener and the connections: a thread per client connection, at most a set number.

A connection carries requests one after the other (keep-alive, pipelining): each is decided on
its own, and a refused one closes the connection, so nothing sent behind it is read. Each
connection keeps at most one upstream connection alive for its next request. Beyond the cap a
new connection gets a 503 at once (one log line per second says how many), so a flood costs no
thread.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

import h11

from sidecar_gen.broker.audit import AuditLog, Entry
from sidecar_gen.broker.decide import BrokerPolicy, DeniedError, decide
from sidecar_gen.broker.endpoints import GIT_PREFIX, LOCAL
from sidecar_gen.broker.exchange import Exchange, Timeouts, elapsed_ms
from sidecar_gen.broker.http import (
    BadHeadError,
    ClientGoneError,
    ClientSocket,
    parse_head,
    render_refusal,
)
from sidecar_gen.broker.origin import Origin
from sidecar_gen.broker.upstream import UpstreamConnection, UpstreamIOError
from sidecar_gen.gate.audit import timestamp

THREAD_STACK = 512 * 1024


@dataclass(frozen=True)
class BrokerLimits:
    """Connection limits and timeouts (seconds; every one an idle limit but `head`)."""

    max_connections: int = 64
    head: float = 30.0  # a request head must be complete this long after its first byte
    keepalive: float = 300.0  # a kept-alive connection may wait this long for its next request
    connect: float = 30.0  # to reach the upstream and finish TLS
    timeouts: Timeouts = field(default_factory=Timeouts)


class BrokerServer:
    """Accepts connections and serves each in a thread of its own."""

    def __init__(self, listener: socket.socket, policy: BrokerPolicy, context: ssl.SSLContext,
                 log: AuditLog, limits: BrokerLimits) -> None:
        self.listener = listener
        self.policy = policy
        self.context = context
        self.log = log
        self.limits = limits
        self._active = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._turned_away = 0
        self._last_notice = 0.0

    @property
    def active(self) -> int:
        """ClientSocket connections being served now."""
        with self._lock:
            return self._active

    def serve_forever(self) -> None:
        """Accept until `shutdown`."""
        threading.stack_size(THREAD_STACK)
        while not self._stopping.is_set():
            try:
                sock, address = self.listener.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                time.sleep(0.05)  # EMFILE and the like: do not spin
                continue
            peer = _peer(address)
            with self._lock:
                full = self._active >= self.limits.max_connections
                if not full:
                    self._active += 1
            if full:
                self._turn_away(sock)
                continue
            threading.Thread(target=self._serve, args=(sock, peer), daemon=True,
                             name=f"broker {peer}").start()

    def shutdown(self) -> None:
        """Stop accepting (connections being served finish or die with the process)."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()

    def _turn_away(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.send(render_refusal(503, "too many connections at once", plain=False))
        sock.close()
        self._turned_away += 1
        now = time.monotonic()
        if now - self._last_notice >= 1.0:
            self._last_notice = now
            self.log.write_doc({"time": timestamp(), "notice": "connection cap",
                                "count": self._turned_away,
                                "max_connections": self.limits.max_connections})
            self._turned_away = 0

    def _serve(self, sock: socket.socket, peer: str) -> None:
        client = ClientSocket(sock, peer)
        pooled: list[UpstreamConnection] = []
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while self._one_request(client, pooled):
                pass
        except Exception:
            self.log.write_doc({"time": timestamp(), "notice": "internal error",
                                "peer": peer})
        finally:
            for upstream in pooled:
                upstream.close()
            with contextlib.suppress(OSError):
                sock.close()
            with self._lock:
                self._active -= 1

    def _one_request(self, client: ClientSocket, pooled: list[UpstreamConnection]) -> bool:
        """Serve one request; True when the connection may carry the next one."""
        try:
            head = client.read_head(wait=self.limits.keepalive, complete=self.limits.head)
        except BadHeadError as exc:
            entry = Entry(client.peer, reason=exc.reason, status=exc.status)
            self._refuse(client, entry, exc.status, exc.reason, time.monotonic())
            return False
        if head is None:
            return False
        start = time.monotonic()
        entry = Entry(client.peer)
        try:
            conn, request = parse_head(head)
        except BadHeadError as exc:
            self._refuse(client, entry, exc.status, exc.reason, start)
            return False
        entry.method = request.method.decode("ascii", "replace")
        entry.path = request.target.decode("ascii", "replace")
        head_only = entry.method == "HEAD"
        try:
            plan = decide(request, self.policy)
        except DeniedError as exc:
            self._refuse(client, entry, exc.status, exc.reason, start, head_only=head_only)
            return False
        entry.service = plan.endpoint.service
        entry.repository = plan.repository
        if plan.endpoint.service == LOCAL:
            return self._health(client, conn, entry, start)
        upstream = self._upstream(plan.origin, pooled)
        exchange = Exchange(client=client, conn=conn, request=request, plan=plan,
                            upstream=upstream, credentials=self.policy.credentials,
                            entry=entry, timeouts=self.limits.timeouts)
        keep = False
        try:
            if not upstream.is_open:
                upstream.open()
            exchange.forward_request()
            exchange.relay_response(exchange.read_response())
            entry.decision, entry.reason = "allow", "forwarded"
            keep = exchange.client_can_continue()
        except DeniedError as exc:
            upstream.close()
            if exchange.sent_head:
                entry.decision, entry.reason = "error", exc.reason
            else:
                self._refuse(client, entry, exc.status, exc.reason, start, head_only=head_only)
                return False
        except UpstreamIOError as exc:
            upstream.close()
            if exchange.sent_head:
                entry.decision, entry.reason = "error", f"cut: {exc.message}"
            else:
                status = 504 if exc.timeout else 502
                self._refuse(client, entry, status, f"upstream: {exc.message}", start,
                             head_only=head_only, decision="error")
                return False
        except ClientGoneError as exc:
            upstream.close()
            entry.decision, entry.reason = "error", f"the client went away ({exc})"
            if not entry.status:
                entry.status = 499
        except h11.ProtocolError as exc:  # a state h11 refuses: end this connection cleanly
            upstream.close()
            entry.decision, entry.reason = "error", f"HTTP state error: {exc}"
            if not entry.status:
                entry.status = 400
            self.log.write(entry, elapsed_ms(start))
            return False
        self.log.write(entry, elapsed_ms(start))
        # The client's connection and the upstream's are kept apart: either may end alone.
        if keep and upstream.recycle():
            pooled[:] = [upstream]
        else:
            upstream.close()
            pooled.clear()
        if keep:
            client.buffer = exchange.leftover()
        return keep

    def _health(self, client: ClientSocket, conn: h11.Connection, entry: Entry,
                start: float) -> bool:
        """The broker's own answer: it serves, and which kinds of credential it holds."""
        body = json.dumps({"status": "ok", "credentials": self.policy.credentials.kinds(),
                           "upstream": str(self.policy.anthropic),
                           "active": self.active}).encode()
        entry.decision, entry.reason, entry.status = "allow", "health", 200
        try:
            data = conn.send(h11.Response(status_code=200, headers=[
                (b"Content-Type", b"application/json"),
                (b"Content-Length", b"%d" % len(body))])) or b""
            data += (conn.send(h11.Data(data=body)) or b"") + \
                (conn.send(h11.EndOfMessage()) or b"")
            conn.next_event()  # the (empty) request body's end
            client.send(data, self.limits.timeouts.client)
        except (ClientGoneError, h11.ProtocolError):
            return False
        self.log.write(entry, elapsed_ms(start))
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            client.buffer = bytes(conn.trailing_data[0]) + client.buffer
            return True
        return False

    def _upstream(self, origin: Origin, pooled: list[UpstreamConnection]) -> UpstreamConnection:
        for upstream in pooled:
            if upstream.origin == origin and upstream.fresh():
                return upstream
            upstream.close()
        pooled.clear()
        return UpstreamConnection(origin, self.context, connect_timeout=self.limits.connect,
                          idle=self.limits.timeouts.upstream)

    def _refuse(self, client: ClientSocket, entry: Entry, status: int, reason: str, start: float,
                *, head_only: bool = False, decision: str = "deny") -> None:
        plain = entry.path.startswith(GIT_PREFIX + "/")
        entry.status, entry.reason = status, reason
        entry.decision = decision
        with contextlib.suppress(ClientGoneError):
            client.send(render_refusal(status, reason, plain=plain, head_only=head_only),
                        self.limits.timeouts.client)
        self.log.write(entry, elapsed_ms(start))


def _peer(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return "unix"
