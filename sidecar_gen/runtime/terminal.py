"""The local side of one routed command: signals, the terminal, and the stdin/output pumps.

- `Signals` turns SIGINT, SIGTERM, SIGHUP, SIGQUIT and the command's timeout into a `Stop`
  exception in the main thread, so the dispatcher can stop the remote command before it exits.
- `Terminal` puts the local terminal in raw mode (the remote pty does the line discipline) and
  restores it on every way out.
- `StdinPump` copies stdin into the exec in a thread; `pump_output` copies the exec's output to
  stdout/stderr in the main thread, and holds back a piece that starts like one of the daemon's
  own messages until the engine says whether the program wrote it (see `pump_output`).
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # builtin; `signal` imports enum
import _socket
import _thread
import os

from sidecar_gen.runtime.errors import DispatchError
from sidecar_gen.runtime.frames import STDERR, STDOUT, SYSTEM_ERROR, Demuxer

# typing and collections.abc cost milliseconds to import on every command: types are for mypy
# only (mypy treats any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

RECV_SIZE = 256 * 1024
STDIN_CHUNK = 64 * 1024
STOP_SIGNALS = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT)
# What Podman (4.3) writes instead of the process's output when it could not start it: the OCI
# runtime's error, on stderr (one stream with a TTY), then a second line about the broken
# attachment; or, for an unknown user or group, its JSON error body instead of frames; or, after
# the detach keys, that it detached.
PODMAN_PREFIXES = (b"Error: runc: ", b"Error: crun: ", b"Error: OCI runtime",
                   b"Error: read unixpacket", b'{"cause":', b"Error: detached from container")
# What the daemon writes into the output stream when it could not start the process
# (dockerd 20.10: the first stdout frame; later: stream 3) or when the attachment broke (then
# the process may still run: a detach, or a stdin copy error). Only a piece that starts with one
# of these is held back; whether it is the daemon's is decided from the engine's answer.
DAEMON_PREFIXES = (b"OCI runtime", b"exec failed", b"unable to find user",
                   b"unable to find group", b"exec attach failed", *PODMAN_PREFIXES)
TAIL_SIZE = 160
# Docker's default detach keys are Ctrl-P Ctrl-Q: Ctrl-P (previous line in every shell) is
# held back until the next key, and Ctrl-P Ctrl-Q ends the session with the command left
# running. An empty value means that default, so the exec gets a sequence nobody types or
# pastes. (Current daemons look for it anywhere in the bytes of a TTY's stdin; older ones only
# in keys read one at a time.) `StdinPump` notes when it was sent all the same.
DETACH_KEYS = "ctrl-@,ctrl-^,ctrl-_,ctrl-],ctrl-@,ctrl-_,ctrl-^,ctrl-]"
_CONTROL = {"ctrl-@": 0x00, "ctrl-^": 0x1E, "ctrl-_": 0x1F, "ctrl-]": 0x1D}
DETACH_BYTES = bytes(_CONTROL[key] for key in DETACH_KEYS.split(","))


class Stop(BaseException):
    """A stop signal or the timeout (BaseException, so no `except Exception` swallows it)."""

    def __init__(self, signum: int, timed_out: bool = False) -> None:
        super().__init__(signum)
        self.signum = signum
        self.timed_out = timed_out


class Signals:
    """The signal handlers of one run: `install`, then `quiet` while cleaning up, `restore`."""

    def __init__(self) -> None:
        self._saved: dict[int, Any] = {}

    def _set(self, signum: int, handler: Any) -> None:
        previous = _signal.signal(signum, handler)
        self._saved.setdefault(signum, previous)

    def install(self) -> None:
        """Raise `Stop` on a stop signal and on SIGALRM (the timeout)."""
        def stop(signum: int, _frame: Any) -> None:
            raise Stop(signum)

        def timeout(_signum: int, _frame: Any) -> None:
            raise Stop(_signal.SIGALRM, timed_out=True)

        for signum in STOP_SIGNALS:
            self._set(signum, stop)
        self._set(_signal.SIGALRM, timeout)

    def arm_timeout(self, seconds: float | None) -> None:
        """Raise `Stop(timed_out=True)` after `seconds` (None: never)."""
        if seconds:
            _signal.setitimer(_signal.ITIMER_REAL, float(seconds))

    def on_resize(self, callback: Callable[[], None]) -> None:
        """Call `callback` on every SIGWINCH."""
        self._set(_signal.SIGWINCH, lambda _signum, _frame: callback())

    def quiet(self) -> None:
        """Ignore stop signals and the timeout: nothing may interrupt the cleanup itself."""
        _signal.setitimer(_signal.ITIMER_REAL, 0)
        for signum in (*STOP_SIGNALS, _signal.SIGALRM):
            self._set(signum, _signal.SIG_IGN)

    def restore(self) -> None:
        """Put back every handler this object replaced."""
        _signal.setitimer(_signal.ITIMER_REAL, 0)
        for signum, handler in self._saved.items():
            _signal.signal(signum, handler)
        self._saved.clear()


class Terminal:
    """The local terminal on fd 0 in raw mode, restored by `restore` (idempotent)."""

    def __init__(self) -> None:
        self._saved: Any = None

    def enter_raw(self) -> None:
        """Raw mode when stdin is a terminal; otherwise nothing."""
        if not os.isatty(0):
            return
        import termios
        import tty

        try:
            saved = termios.tcgetattr(0)
            tty.setraw(0, termios.TCSANOW)
        except termios.error:
            return
        self._saved = saved

    def restore(self) -> None:
        """Restore the settings saved by `enter_raw`."""
        saved, self._saved = self._saved, None
        if saved is None:
            return
        import termios

        try:  # noqa: SIM105 - contextlib is not imported on the hot path
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        except termios.error:
            pass  # the terminal is gone: nothing left to restore


def terminal_size() -> tuple[int, int] | None:
    """(rows, columns) of the first of stdout, stdin, stderr that is a terminal."""
    for fd in (1, 0, 2):
        try:
            size = os.get_terminal_size(fd)
        except OSError:
            continue
        return size.lines, size.columns
    return None


class StdinPump:
    """Copies stdin into the exec in a thread (`start`).

    Without a TTY its end is passed on (half-close), so the program reads end-of-file. With
    one, the daemon would end the whole session when stdin closes (the output included, the
    process left running), so the connection stays open and the program simply gets no more
    input, as with `docker exec -t`. `sent_detach_keys` tells whether what it sent held the
    detach sequence: then an attachment the daemon ended was a detach.
    """

    def __init__(self, sock: _socket.socket, tty: bool) -> None:
        self._sock = sock
        self._tty = tty
        self.sent_detach_keys = False

    def start(self) -> None:
        """Start copying."""
        _thread.start_new_thread(self._copy, ())

    def _copy(self) -> None:
        keep = len(DETACH_BYTES) - 1
        last = b""
        try:
            while True:
                chunk = os.read(0, STDIN_CHUNK)
                if not chunk:
                    break
                if self._tty:
                    seen = last + chunk
                    self.sent_detach_keys = self.sent_detach_keys or DETACH_BYTES in seen
                    last = seen[-keep:]
                self._sock.sendall(chunk)
        except OSError:
            pass
        if not self._tty:
            try:  # noqa: SIM105
                self._sock.shutdown(_socket.SHUT_WR)
            except OSError:
                pass


class Output:
    """What `pump_output` saw: the held piece (None when all was written), the stream it came
    on and the last bytes of stdout."""

    __slots__ = ("held", "held_stream", "tail")

    def __init__(self, held: bytes | None, tail: bytes, held_stream: int = STDOUT) -> None:
        self.held = held
        self.tail = tail
        self.held_stream = held_stream

    def write_held(self) -> None:
        """Write the held piece where its stream goes (it turned out to be the program's)."""
        if self.held is not None:
            _write(_fd(self.held_stream), self.held)


def pump_output(sock: _socket.socket, pending: bytes, tty: bool,
                program_ran: Callable[[], bool]) -> Output:
    """Copy the exec's output to fds 1 and 2 until the stream ends.

    A piece that starts like a daemon message (`DAEMON_PREFIXES`) is held back: when it is the
    first output, `program_ran()` asks the engine at once (a process that never started has no
    pid) and a program's own line goes out without delay; otherwise it waits for the next piece
    (then it was the program's) or the end of the stream (then the caller decides, from the
    engine's answer, whose it was). Raises `Stop(SIGPIPE)` when our reader went away,
    DispatchError when our output cannot be written, OSError when the connection breaks.
    """
    sock.settimeout(None)
    demux = None if tty else Demuxer()
    raw_stream = STDOUT  # what an unframed stream is (Podman's JSON error instead of frames)
    held: bytes | None = None
    held_stream = STDOUT
    first = True
    tail = b""
    buffer = bytearray(RECV_SIZE)
    view = memoryview(buffer)
    while True:
        if pending:
            data: memoryview = memoryview(pending)
            pending = b""
        else:
            count = sock.recv_into(buffer)
            if not count:
                break
            data = view[:count]
        if first and demux is not None and data[0] > SYSTEM_ERROR:
            # Not a frame header: the engine answered the start with a body of its own.
            demux, raw_stream = None, SYSTEM_ERROR
        pieces = [(raw_stream, data)] if demux is None else demux.feed(data)
        for stream, piece in pieces:
            daemon_like = bytes(piece[:24]).startswith(DAEMON_PREFIXES)
            if held is not None:
                if daemon_like and stream == held_stream:
                    held += bytes(piece)  # Podman's second line: decided with the first
                    continue
                _write(_fd(held_stream), held)
                held = None
            if daemon_like and not (first and program_ran()):
                held, held_stream = bytes(piece), stream
                first = False
                continue
            first = False
            if stream == STDOUT:
                _write(1, piece)
                tail = (tail + bytes(piece[-TAIL_SIZE:]))[-TAIL_SIZE:]
            else:
                _write(_fd(stream), piece)
    return Output(held, tail, held_stream)


def _fd(stream: int) -> int:
    return 2 if stream in (STDERR, SYSTEM_ERROR) else 1


def _write(fd: int, data: memoryview | bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BrokenPipeError:
            # The reader went away: stop the remote command as if we got SIGPIPE.
            raise Stop(_signal.SIGPIPE) from None
        except OSError as exc:  # a full disk, a terminal gone: the command is stopped
            raise DispatchError(f"cannot write the command's output: {exc.strerror}") from None
        view = view[written:]
