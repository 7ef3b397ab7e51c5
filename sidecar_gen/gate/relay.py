"""Raw byte relay for an upgraded exec stream: both directions, half-closes propagated.

On Linux one thread moves both directions with splice(2) through two pipes, driven by poll(2):
the bytes never enter Python and no thread is started per exec. Elsewhere, one copying thread
per direction.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import socket
import threading
import time

RELAY_BUFFER = 1024 * 1024
# After the engine ended the stream (the process exited), stdin still arriving from the client
# has nowhere to go; wait this long for the client's own EOF, then close.
DRAIN_SECONDS = 2.0
_NONBLOCK = getattr(os, "SPLICE_F_NONBLOCK", 2) | getattr(os, "SPLICE_F_MOVE", 1)


def relay(client: socket.socket, upstream: socket.socket, *, to_upstream: bytes = b"",
          to_client: bytes = b"") -> None:
    """Copy client <-> upstream until both directions ended; half-close each side on EOF.

    `to_upstream` / `to_client` are bytes already read past the HTTP exchange. Both sockets
    are left open; the caller closes them.
    """
    try:
        if to_client:
            client.sendall(to_client)
        if to_upstream:
            upstream.sendall(to_upstream)
    except OSError:
        return
    if hasattr(os, "splice"):
        _splice_relay(client, upstream)
    else:
        _thread_relay(client, upstream)


class _Direction:
    def __init__(self, src: socket.socket, dst: socket.socket) -> None:
        self.src, self.dst = src, dst
        self.read_end, self.write_end = os.pipe()
        for end in (self.read_end, self.write_end):
            os.set_blocking(end, False)
        self.capacity = 65536
        with contextlib.suppress(OSError):
            self.capacity = fcntl.fcntl(self.write_end, fcntl.F_SETPIPE_SZ, RELAY_BUFFER)
        self.pending = 0  # bytes sitting in the pipe
        self.eof = False
        self.done = False

    def pump(self) -> None:
        if not self.eof and self.pending < self.capacity:
            try:
                n = os.splice(self.src.fileno(), self.write_end, self.capacity - self.pending,
                              flags=_NONBLOCK)
            except BlockingIOError:
                n = -1
            except OSError:
                n = 0  # reset by the peer: treat as the end of this direction
            if n == 0:
                self.eof = True
            elif n > 0:
                self.pending += n
        while self.pending:
            try:
                m = os.splice(self.read_end, self.dst.fileno(), self.pending, flags=_NONBLOCK)
            except BlockingIOError:
                break
            except OSError:
                self.pending, self.eof = 0, True  # the receiver is gone: drop what is left
                break
            self.pending -= m
        if self.eof and not self.pending and not self.done:
            self.done = True
            with contextlib.suppress(OSError):
                self.dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        os.close(self.read_end)
        os.close(self.write_end)


def _splice_relay(client: socket.socket, upstream: socket.socket) -> None:
    client.setblocking(False)
    upstream.setblocking(False)
    inbound, outbound = _Direction(client, upstream), _Direction(upstream, client)
    poller = select.poll()
    registered: dict[int, int] = {}
    drain_until: float | None = None
    try:
        while not (inbound.done and outbound.done):
            masks: dict[int, int] = {client.fileno(): 0, upstream.fileno(): 0}
            for d in (inbound, outbound):
                if not d.eof and d.pending < d.capacity:
                    masks[d.src.fileno()] |= select.POLLIN
                if d.pending:
                    masks[d.dst.fileno()] |= select.POLLOUT
            for fd, mask in masks.items():
                if registered.get(fd, 0) == mask:
                    continue
                # An fd left registered with no events would still report POLLHUP and spin.
                if mask:
                    poller.register(fd, mask)  # re-registering modifies
                else:
                    poller.unregister(fd)
                registered[fd] = mask
            if outbound.done and drain_until is None:
                drain_until = time.monotonic() + DRAIN_SECONDS
            timeout = None
            if drain_until is not None:
                timeout = max(0, int((drain_until - time.monotonic()) * 1000))
                if timeout == 0:
                    return
            if not poller.poll(timeout):
                continue
            inbound.pump()
            outbound.pump()
    finally:
        inbound.close()
        outbound.close()
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.setblocking(True)


def _copy(src: socket.socket, dst: socket.socket) -> None:
    buf = bytearray(RELAY_BUFFER)
    view = memoryview(buf)
    try:
        while n := src.recv_into(buf):
            dst.sendall(view[:n])
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _thread_relay(client: socket.socket, upstream: socket.socket) -> None:
    inbound = threading.Thread(target=_copy, args=(client, upstream), daemon=True)
    inbound.start()
    _copy(upstream, client)
    inbound.join(timeout=DRAIN_SECONDS)
    if inbound.is_alive():
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)  # wakes the blocked recv
        inbound.join()
