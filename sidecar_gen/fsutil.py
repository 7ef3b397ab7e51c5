"""Files the user owns: atomic writes and strict UTF-8 reads."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sidecar_gen.errors import InputError
from sidecar_gen.runtime import atomic


def write_atomic(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write `text` (UTF-8, line ends as given) to `path` atomically, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_atomic(str(path), text.encode("utf-8"), mode)


_SPECIAL = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def open_regular(path: Path) -> int:
    """A read-only descriptor of the regular file at `path` (links followed); InputError
    (exit 2) when it is missing, a directory, unreadable, or a FIFO, a device or a socket.

    Opened non-blocking and checked on the descriptor, never by name first (a name can be
    swapped in between): the agent writes the project folder, and a FIFO planted as a file we
    read (`docker-compose.override.yml`, `.env`), or a link to `/dev/zero`, would otherwise
    hang the host command for good or fill its memory.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError(str(path), "no such file") from None
    except OSError as exc:
        raise InputError(str(path), f"cannot read: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise InputError(str(path), "is a directory, not a file")
        what = next((what for test, what in _SPECIAL if test(mode)), "not a regular file")
        raise InputError(str(path), f"is {what}, not a regular file (remove it)")
    return fd


def read_text_file(path: Path) -> str:
    """Read a UTF-8 text file; raise InputError (exit 2) when it is missing, not a regular
    file (`open_regular`) or not text."""
    with os.fdopen(open_regular(path), "rb") as handle:
        try:
            raw = handle.read()
        except OSError as exc:
            raise InputError(str(path), f"cannot read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(str(path), f"not UTF-8 text (byte {exc.start})") from None
