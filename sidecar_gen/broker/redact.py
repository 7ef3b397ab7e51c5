"""Secrets taken out of a byte stream, wherever the chunks happen to split them (pure).

An upstream that echoes the credential (an error quoting the header it got, a debugging
endpoint) must not hand it to the agent. Each secret is replaced by as many `*` as it has
bytes, so a Content-Length stays true and the stream needs no re-framing. Only a tail that
could be the start of a secret is held back until the next chunk: a stream's events still
leave as soon as they arrive (an SSE event ends in a blank line, which starts no secret).
"""

from __future__ import annotations


class Redactor:
    """Feed chunks in order; what comes out is the stream with every secret masked."""

    def __init__(self, secrets: list[bytes]) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._held = b""
        self.count = 0  # secrets masked so far

    def feed(self, chunk: bytes) -> bytes:
        """Mask `chunk` (after what was held back); return what can be sent now."""
        if not self._secrets:
            return chunk
        # No copy unless a start of a secret was held back (the usual case: none).
        data = self._held + chunk if self._held else chunk
        for secret in self._secrets:
            if secret in data:
                self.count += data.count(secret)
                data = data.replace(secret, b"*" * len(secret))
        keep = self._partial_tail(data)
        self._held = data[len(data) - keep:] if keep else b""
        return data[:len(data) - keep] if keep else data

    def flush(self) -> bytes:
        """The end of the stream: what was held back (it was no secret, only a start of one)."""
        held, self._held = self._held, b""
        return held

    def _partial_tail(self, data: bytes) -> int:
        """Length of the longest end of `data` that a secret starts with (shorter than it)."""
        best = 0
        for secret in self._secrets:
            first = secret[:1]
            start = max(0, len(data) - len(secret) + 1)
            at = data.find(first, start)
            while at != -1:
                tail = len(data) - at
                if tail > best and secret.startswith(data[at:]):
                    best = tail
                    break
                at = data.find(first, at + 1)
        return best

    def mask(self, value: bytes) -> bytes:
        """A whole value (a header) with every secret masked."""
        for secret in self._secrets:
            if secret in value:
                self.count += value.count(secret)
                value = value.replace(secret, b"*" * len(secret))
        return value
