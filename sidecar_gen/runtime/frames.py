"""Stream framing: the 8-byte headers of Docker's multiplexed exec stream (pure, no I/O).

Without a TTY the daemon sends frames `[stream, 0, 0, 0, size (big-endian uint32)] + payload`;
stream 1 is stdout, 2 stderr, 3 a daemon error text. The parser is incremental: a frame's payload
is handed on in the pieces it arrives in, so memory stays flat whatever the frame size.
"""

from __future__ import annotations

STDOUT = 1
STDERR = 2
SYSTEM_ERROR = 3
HEADER_SIZE = 8


def encode_header(stream: int, size: int) -> bytes:
    """Build one frame header (used by tests and by anything that writes frames)."""
    return bytes((stream, 0, 0, 0)) + size.to_bytes(4, "big")


class Demuxer:
    """Incremental frame parser: `feed(data)` returns `(stream, piece)` pairs in order."""

    __slots__ = ("_header", "_remaining", "_stream")

    def __init__(self) -> None:
        self._header = bytearray()
        self._remaining = 0
        self._stream = 0

    @property
    def in_frame(self) -> bool:
        """True when the data so far ends inside a frame (a truncated stream)."""
        return bool(self._header) or self._remaining > 0

    def feed(self, data: memoryview | bytes) -> list[tuple[int, memoryview]]:
        """Parse `data`; the pieces are views into `data`, valid until it is reused."""
        view = data if isinstance(data, memoryview) else memoryview(data)
        out: list[tuple[int, memoryview]] = []
        pos = 0
        end = len(view)
        while pos < end:
            if self._remaining:
                take = min(self._remaining, end - pos)
                out.append((self._stream, view[pos : pos + take]))
                self._remaining -= take
                pos += take
                continue
            need = HEADER_SIZE - len(self._header)
            if not self._header and end - pos >= HEADER_SIZE:
                header = view[pos : pos + HEADER_SIZE]
                pos += HEADER_SIZE
            else:
                self._header += view[pos : pos + need]
                pos += min(need, end - pos)
                if len(self._header) < HEADER_SIZE:
                    break
                header = memoryview(bytes(self._header))
                self._header.clear()
            self._stream = header[0]
            self._remaining = int.from_bytes(header[4:8], "big")
        return out
