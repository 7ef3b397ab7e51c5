"""Atomic file writes, the one implementation: a reader sees the old file or the new one.

Stdlib-only (the dispatcher writes its route cache with it): a temporary file created with
O_EXCL next to the target, written, optionally fsync'ed, given its mode, then renamed over it.
"""

from __future__ import annotations

import os


def write_atomic(path: str, data: bytes, mode: int | None = None, *, durable: bool = True) -> None:
    """Replace `path` with `data` atomically.

    `mode` defaults to the existing file's permissions, else 0o666 minus the umask. `durable`
    fsyncs the data before the rename (user files); caches skip it. Raises OSError.
    """
    directory = os.path.dirname(path) or "."
    if mode is None:
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
    name = f".{os.path.basename(path)}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    tmp = os.path.join(directory, name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:  # noqa: SIM105 - contextlib is not imported on the dispatcher's path
            os.unlink(tmp)
        except OSError:
            pass
        raise
