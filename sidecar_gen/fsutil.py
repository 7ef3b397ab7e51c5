"""Files the user owns: atomic writes and strict UTF-8 reads."""

from __future__ import annotations

from pathlib import Path

from sidecar_gen.errors import InputError
from sidecar_gen.runtime import atomic


def write_atomic(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write `text` (UTF-8, line ends as given) to `path` atomically, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_atomic(str(path), text.encode("utf-8"), mode)


def read_text_file(path: Path) -> str:
    """Read a UTF-8 text file; raise InputError (exit 2) when it is missing or not text."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(str(path), "no such file") from None
    except IsADirectoryError:
        raise InputError(str(path), "is a directory, not a file") from None
    except OSError as exc:
        raise InputError(str(path), f"cannot read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(str(path), f"not UTF-8 text (byte {exc.start})") from None
