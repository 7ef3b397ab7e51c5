"""The upstream side: an HTTPS origin, its TLS settings, and one client connection to it.

TLS always, with certificate and host name verification, against the system's CAs plus an
optional extra CA file (a corporate proxy's, or a test CA). HTTP/1.1 through h11 as a client:
the request the broker rebuilt goes out, events come back as they arrive; every read waits at
most `idle` seconds for the next bytes (an idle limit, never a total one, so a long stream is
never cut while it moves).
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import time
from pathlib import Path
from typing import Any, cast

import h11

from sidecar_gen.broker.origin import Origin
from sidecar_gen.errors import InputError

MAX_RESPONSE_HEAD = 64 * 1024
READ_SIZE = 64 * 1024
BATCH = 262144
KEEP_IDLE = 30.0  # an idle kept-alive connection older than this is not reused


class UpstreamIOError(Exception):
    """The upstream could not be reached or broke the exchange; `message` is one line."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.timeout = timeout


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verification against the system CAs, plus `ca_file` (PEM) when given."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except FileNotFoundError:
            raise InputError(str(ca_file), "no such file") from None
        except ssl.SSLError as exc:
            raise InputError(str(ca_file), f"not a PEM certificate file: {exc}") from None
        except OSError as exc:
            raise InputError(str(ca_file), f"cannot read: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise InputError(str(ca_file), f"not a PEM certificate file: {exc}") from None
    return context


class UpstreamConnection:
    """One HTTP/1.1 client connection over TLS to an origin (used by one thread at a time)."""

    def __init__(self, origin: Origin, context: ssl.SSLContext, *, connect_timeout: float,
                 idle: float) -> None:
        self.origin = origin
        self._context = context
        self._connect_timeout = connect_timeout
        self._idle = idle
        self._sock: ssl.SSLSocket | None = None
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD)
        self._buffer: bytearray | None = None  # reads land here (h11 copies them out)
        self.last_used = time.monotonic()

    @property
    def is_open(self) -> bool:
        """True once connected (and until closed)."""
        return self._sock is not None

    def open(self) -> None:
        """Connect and finish the TLS handshake (verified)."""
        try:
            raw = socket.create_connection((self.origin.host, self.origin.port),
                                           timeout=self._connect_timeout)
        except TimeoutError:
            raise UpstreamIOError(f"connecting to {self.origin} timed out", timeout=True) from None
        except OSError as exc:
            raise UpstreamIOError(f"cannot connect to {self.origin}: "
                                f"{exc.strerror or exc}") from None
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self._sock = self._context.wrap_socket(raw, server_hostname=self.origin.host)
        except ssl.SSLCertVerificationError as exc:
            raw.close()
            raise UpstreamIOError(f"TLS to {self.origin}: the certificate is not trusted "
                                f"({exc.verify_message})") from None
        except (ssl.SSLError, OSError) as exc:
            raw.close()
            raise UpstreamIOError(f"TLS to {self.origin} failed: {exc}") from None
        # Non-blocking from now on: reads take whatever has arrived, waits are select()s.
        self._sock.setblocking(False)

    def send(self, event: Any) -> None:
        """Send one h11 event (request head, body data, end of message); each write may wait
        `idle` seconds for room."""
        assert self._sock is not None
        data = self._h11.send(event)
        if not data:
            return
        view = memoryview(data)
        try:
            while view:
                try:
                    view = view[self._sock.send(view):]
                except (ssl.SSLWantWriteError, BlockingIOError):
                    if not select.select([], [self._sock], [], self._idle)[1]:
                        raise TimeoutError from None
                except ssl.SSLWantReadError:  # a renegotiation: rare, wait for the peer
                    if not select.select([self._sock], [], [], self._idle)[0]:
                        raise TimeoutError from None
        except TimeoutError:
            raise UpstreamIOError(f"{self.origin} took no data for {self._idle:g} s",
                                  timeout=True) from None
        except OSError as exc:
            raise UpstreamIOError(f"sending to {self.origin} failed: "
                                  f"{exc.strerror or exc}") from None

    def poll(self) -> Any:
        """The next response event from what was read so far: h11.NEED_DATA when `fill` must
        read more first."""
        try:
            return self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            raise UpstreamIOError(f"{self.origin} answered malformed HTTP: {exc}") from None

    def next_event(self) -> Any:
        """The next response event, reading as needed (each read waits at most `idle`)."""
        while True:
            event = self.poll()
            if event is not h11.NEED_DATA:
                return event
            self.fill()

    def fill(self) -> None:
        """Read what has arrived (waiting up to `idle` for the first byte) and hand it to h11:
        everything already there, up to BATCH bytes, so that events that arrived together
        are relayed together and a bulk body is not taken one TLS record (16 KiB) at a time."""
        assert self._sock is not None
        if self._buffer is None:
            self._buffer = bytearray(BATCH + READ_SIZE)
        view = memoryview(self._buffer)
        size, eof = 0, False
        try:
            while size < BATCH:
                try:
                    got = self._sock.recv_into(view[size:], READ_SIZE)
                except (ssl.SSLWantReadError, BlockingIOError):
                    if size:
                        break
                    if not select.select([self._sock], [], [], self._idle)[0]:
                        raise TimeoutError from None
                    continue
                if got == 0:
                    eof = True
                    break
                size += got
        except TimeoutError:
            raise UpstreamIOError(f"{self.origin} sent nothing for {self._idle:g} s",
                                  timeout=True) from None
        except OSError as exc:
            raise UpstreamIOError(f"reading from {self.origin} failed: "
                                  f"{exc.strerror or exc}") from None
        if size:
            # h11 copies it into its own buffer at once (typed bytes, takes any buffer).
            self._h11.receive_data(cast(bytes, view[:size]))
        if eof:
            self._h11.receive_data(b"")

    def reusable(self) -> bool:
        """True when both sides finished the exchange and may keep the connection."""
        return (self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE)

    def recycle(self) -> bool:
        """Ready the connection for the next request; False when it cannot be reused."""
        if not self.reusable():
            return False
        self._h11.start_next_cycle()
        self.last_used = time.monotonic()
        return True

    def fresh(self) -> bool:
        """True when a kept-alive connection looks usable: recently used, and nothing (not
        even the end of the stream) waiting to be read on it."""
        if self._sock is None or time.monotonic() - self.last_used > KEEP_IDLE:
            return False
        if self._sock.pending():
            return False
        readable, _, _ = select.select([self._sock], [], [], 0)
        return not readable

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
