"""Raw byte relay for upgraded exec streams: both directions, half-closes propagated.

A `Relay` is one exec stream (client socket <-> engine socket) driven by readiness events: the
server's event loop drives all of them in its one thread, `relay()` drives one on its own. On
Linux the bytes move with splice(2) through a pipe per direction and never enter Python;
elsewhere through a bounded buffer. Each direction counts the bytes it took from its source
(splice returns the count: still nothing is copied), and the stream's `on_end` gets both
counts when it closes: the decision log's proof that input was given.
"""

from __future__ import annotations

import _socket
import contextlib
import fcntl
import os
import selectors
import time
from collections.abc import Callable
from typing import Protocol

RELAY_BUFFER = 1024 * 1024
# After the engine ended the stream (the process exited), stdin still arriving from the client
# has nowhere to go; wait this long for the client's own EOF, then close.
DRAIN_SECONDS = 2.0
_NONBLOCK = getattr(os, "SPLICE_F_NONBLOCK", 2) | getattr(os, "SPLICE_F_MOVE", 1)
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


class _Direction(Protocol):
    src: _socket.socket
    dst: _socket.socket
    done: bool
    moved: int

    def wants_read(self) -> bool: ...
    def wants_write(self) -> bool: ...
    def pump(self) -> None: ...
    def close(self) -> None: ...


class _Base:
    def __init__(self, src: _socket.socket, dst: _socket.socket, head: bytes) -> None:
        self.src, self.dst = src, dst
        self.head = bytearray(head)  # bytes read before the hand-over: they go first
        self.eof = False
        self.done = False
        self.moved = len(head)  # bytes taken from the source, early ones included

    def _flush_head(self) -> bool:
        """Send the early bytes; False while some are left (or the receiver is gone)."""
        while self.head:
            try:
                sent = self.dst.send(self.head)
            except BlockingIOError:
                return False
            except OSError:
                self.head.clear()
                self.eof = True
                return False
            del self.head[:sent]
        return True

    def _finish(self) -> None:
        if self.eof and not self.done and not self.head and not self.pending_bytes():
            self.done = True
            with contextlib.suppress(OSError):
                self.dst.shutdown(_socket.SHUT_WR)

    def pending_bytes(self) -> int:
        return 0


class _SpliceDirection(_Base):
    """src -> pipe -> dst with splice(2); the pipe is the buffer."""

    def __init__(self, src: _socket.socket, dst: _socket.socket, head: bytes) -> None:
        super().__init__(src, dst, head)
        self.read_end, self.write_end = os.pipe()
        for end in (self.read_end, self.write_end):
            os.set_blocking(end, False)
        self.capacity = 65536
        with contextlib.suppress(OSError):
            self.capacity = fcntl.fcntl(self.write_end, fcntl.F_SETPIPE_SZ, RELAY_BUFFER)
        self.pending = 0  # bytes sitting in the pipe

    def pending_bytes(self) -> int:
        return self.pending

    def wants_read(self) -> bool:
        return not self.eof and self.pending < self.capacity

    def wants_write(self) -> bool:
        return bool(self.head) or self.pending > 0

    def pump(self) -> None:
        if self.wants_read():
            try:
                n = os.splice(self.src.fileno(), self.write_end, self.capacity - self.pending,
                              flags=_NONBLOCK)
            except BlockingIOError:
                n = -1
            except OSError:
                n = 0  # reset by the peer: the end of this direction
            if n == 0:
                self.eof = True
            elif n > 0:
                self.pending += n
                self.moved += n
        if self._flush_head():
            while self.pending:
                try:
                    m = os.splice(self.read_end, self.dst.fileno(), self.pending,
                                  flags=_NONBLOCK)
                except BlockingIOError:
                    break
                except OSError:
                    self.pending, self.eof = 0, True  # the receiver is gone: drop the rest
                    break
                self.pending -= m
        self._finish()

    def close(self) -> None:
        os.close(self.read_end)
        os.close(self.write_end)


class _BufferDirection(_Base):
    """src -> bounded buffer -> dst with recv/send, where splice(2) does not exist."""

    def __init__(self, src: _socket.socket, dst: _socket.socket, head: bytes) -> None:
        super().__init__(src, dst, head)
        self.buffer = bytearray()

    def pending_bytes(self) -> int:
        return len(self.buffer)

    def wants_read(self) -> bool:
        return not self.eof and len(self.buffer) < RELAY_BUFFER

    def wants_write(self) -> bool:
        return bool(self.head) or bool(self.buffer)

    def pump(self) -> None:
        if self.wants_read():
            try:
                data = self.src.recv(RELAY_BUFFER - len(self.buffer))
            except BlockingIOError:
                data = None
            except OSError:
                data = b""
            if data == b"":
                self.eof = True
            elif data:
                self.buffer += data
                self.moved += len(data)
        if self._flush_head():
            while self.buffer:
                try:
                    sent = self.dst.send(self.buffer)
                except BlockingIOError:
                    break
                except OSError:
                    self.buffer.clear()
                    self.eof = True
                    break
                del self.buffer[:sent]
        self._finish()

    def close(self) -> None:
        self.buffer.clear()


StreamEnd = Callable[[int, int], None]  # (bytes from the client, bytes from the engine)


class Relay:
    """One exec stream. The driver registers `interest()` and calls `pump()` on any event of
    its sockets until `finished(now)`; then `close()` closes both sockets and tells `on_end`
    how many bytes each side sent."""

    def __init__(self, client: _socket.socket, upstream: _socket.socket, *,
                 to_upstream: bytes = b"", to_client: bytes = b"",
                 on_end: StreamEnd | None = None) -> None:
        self.client, self.upstream = client, upstream
        for sock in (client, upstream):
            sock.setblocking(False)
        kind = _SpliceDirection if hasattr(os, "splice") else _BufferDirection
        self.inbound: _Direction = kind(client, upstream, to_upstream)
        self.outbound: _Direction = kind(upstream, client, to_client)
        self.drain_until: float | None = None
        self.closed = False
        self.on_end = on_end

    def interest(self) -> dict[_socket.socket, int]:
        """The events each socket waits for now (0: none)."""
        masks = {self.client: 0, self.upstream: 0}
        for d in (self.inbound, self.outbound):
            if d.done:
                continue
            if d.wants_read():
                masks[d.src] |= READ
            if d.wants_write():
                masks[d.dst] |= WRITE
        return masks

    def pump(self, now: float | None = None) -> None:
        """Move whatever can move without blocking, in both directions."""
        for d in (self.inbound, self.outbound):
            if not d.done:
                d.pump()
        if self.outbound.done and self.drain_until is None:
            self.drain_until = (now if now is not None else time.monotonic()) + DRAIN_SECONDS

    def finished(self, now: float) -> bool:
        """Both directions ended, or the engine's side ended and the drain time is over."""
        if self.inbound.done and self.outbound.done:
            return True
        return self.drain_until is not None and now >= self.drain_until

    def close(self) -> None:
        """Release the pipes, close both sockets, then report the counts to `on_end`."""
        if self.closed:
            return
        self.closed = True
        for d in (self.inbound, self.outbound):
            d.close()
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.close()
        if self.on_end is not None:
            self.on_end(self.inbound.moved, self.outbound.moved)


def relay(client: _socket.socket, upstream: _socket.socket, *, to_upstream: bytes = b"",
          to_client: bytes = b"", on_end: StreamEnd | None = None) -> None:
    """Relay one stream until both directions ended, in the calling thread.

    `to_upstream` / `to_client` are bytes already read past the HTTP exchange. Both sockets
    are closed at the end, then `on_end` gets the counts.
    """
    stream = Relay(client, upstream, to_upstream=to_upstream, to_client=to_client,
                   on_end=on_end)
    selector = selectors.DefaultSelector()
    registered: dict[_socket.socket, int] = {}
    try:
        stream.pump()
        while not stream.finished(time.monotonic()):
            sync_interest(selector, registered, stream.interest(), stream)
            timeout = None
            if stream.drain_until is not None:
                timeout = max(0.0, stream.drain_until - time.monotonic())
            if selector.select(timeout):
                stream.pump()
    finally:
        selector.close()
        stream.close()


def sync_interest(selector: selectors.BaseSelector, registered: dict[_socket.socket, int],
                  masks: dict[_socket.socket, int], data: object) -> None:
    """Bring a selector's registrations in line with `masks` (unregistering a socket with no
    interest: left registered, a hung-up socket would report events forever)."""
    for sock, mask in masks.items():
        old = registered.get(sock, 0)
        if mask == old:
            continue
        if mask and old:
            selector.modify(sock, mask, data)
        elif mask:
            selector.register(sock, mask, data)
        else:
            selector.unregister(sock)
        if mask:
            registered[sock] = mask
        else:
            registered.pop(sock, None)
