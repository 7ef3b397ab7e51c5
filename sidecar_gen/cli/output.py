"""The guard on the CLI's output: no raw control character reaches the terminal.

Every field that came from a file or a container is escaped where it becomes text
(`runtime.escape`); this is the second line, for a field that was missed. `install()` wraps
`sys.stdout` and `sys.stderr` so that whatever a command writes through them is escaped as a
whole (line breaks kept): a terminal escape in a forgotten message is shown, not obeyed. Only
sidecar's own colours pass, and only on a stream that gets colours at all (a terminal, without
NO_COLOR): the exact sequences of `PALETTE`, which colour text but cannot move the cursor,
erase, hide or retitle anything.

What bypasses it: output written to the file descriptors directly, which is the routed
command's own output in `sidecar exec` (its bytes, exactly, by design) and the output of the
programs sidecar starts (compose's progress in `sidecar up`).
"""

from __future__ import annotations

import io
import os
import re
import sys
from typing import Any, TextIO

import typer

from sidecar_gen.runtime.escape import escape, escape_lines

RESET, DIM, RED, GREEN, YELLOW = "\x1b[0m", "\x1b[2m", "\x1b[31m", "\x1b[32m", "\x1b[33m"
PALETTE = (RESET, DIM, RED, GREEN, YELLOW)
_OURS = re.compile("(" + "|".join(re.escape(code) for code in PALETTE) + ")")


def use_color(stream: Any = None) -> bool:
    """Color only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def paint(text: str, code: str, stream: Any = None) -> str:
    """`text` in one of our colours (`PALETTE`) when `stream` gets colours, else as it is."""
    return f"{code}{text}{RESET}" if use_color(stream) else text


def guarded(text: str, colors: bool) -> str:
    """`text` as the guard writes it: escaped (line breaks kept), our colours kept when
    `colors`. Lines are not cut here: the fields are, where they become text."""
    if text.replace("\n", "").isprintable():
        return text
    if not colors:
        return escape_lines(text, None)
    return "".join(part if part in PALETTE else escape_lines(part, None)
                   for part in _OURS.split(text))


class GuardedStream(io.TextIOBase):
    """A text stream that escapes what is written to it, then writes it to `inner`.

    It has no `buffer`: nobody can reach the bytes underneath through it (click looks for one).
    """

    def __init__(self, inner: TextIO, *, colors: bool) -> None:
        super().__init__()
        self.inner = inner
        self.colors = colors

    def write(self, text: str) -> int:
        """Escape and write; the count is of the characters given (what callers expect)."""
        if not isinstance(text, str):  # click probes for a binary stream with b""
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.inner.write(guarded(text, self.colors))
        return len(text)

    def flush(self) -> None:
        """Flush the stream underneath."""
        self.inner.flush()

    def isatty(self) -> bool:
        """Whether the stream underneath is a terminal."""
        return self.inner.isatty()

    def fileno(self) -> int:
        """The descriptor underneath (for `dup2` when the reader went away)."""
        return self.inner.fileno()

    def writable(self) -> bool:
        """Always: it is an output stream."""
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """The encoding of the stream underneath."""
        return str(getattr(self.inner, "encoding", None) or "utf-8")

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        """The error handler of the stream underneath."""
        return getattr(self.inner, "errors", None)


def install() -> None:
    """Guard `sys.stdout` and `sys.stderr` (once; each keeps colours only if it gets them)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None or isinstance(stream, GuardedStream):
            continue
        setattr(sys, name, GuardedStream(stream, colors=use_color(stream)))


def say(line: str, *, err: bool = False) -> None:
    """Print one line that quotes data (a name, a path, a value): escaped and cut as one line
    (`runtime.escape`), so what a file or a container said can neither steer the terminal nor
    start a line of its own."""
    typer.echo(escape(line), err=err)
