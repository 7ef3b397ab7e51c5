"""Model and token counts for the audit record, read off the traffic as it passes (pure).

Only the fields the record needs are ever parsed: the model named first in a request body,
and the `usage` of the response (the SSE events `message_start` and `message_delta`, or a
small JSON answer). Prompt content is never kept: other events are skipped line by line,
without buffering, and a JSON answer is parsed only when small.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_LINE = 64 * 1024
MAX_JSON = 256 * 1024
_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
           "cache_read_input_tokens")
# Claude Code writes `model` as the body's first key; anchored there, it is never prompt text.
_EVENT_END = re.compile(rb"\r?\n\r?\n")
_WANTED = (b"event: message_start", b"event: message_delta", b"event:message_start",
           b"event:message_delta")
_FIRST_MODEL = re.compile(rb'\A\s*\{\s*"model"\s*:\s*("(?:[^"\\\r\n]|\\.){1,256}")')


def request_model(head: bytes) -> str | None:
    """The model of a Messages request when its body (`head`: its first bytes) names it first."""
    found = _FIRST_MODEL.match(head)
    if not found:
        return None
    try:
        value = json.loads(found.group(1))
    except ValueError:
        return None
    return value if isinstance(value, str) else None


class UsageReader:
    """Collects model and usage from a response body fed in chunks."""

    def __init__(self, content_type: bytes | None) -> None:
        kind = (content_type or b"").split(b";")[0].strip().lower()
        self._sse = kind == b"text/event-stream"
        self._json = kind == b"application/json"
        self._line = bytearray()  # the start of an event not complete yet
        self._skip_line = False
        self._body = bytearray()
        self.model: str | None = None
        self.tokens: dict[str, int] = {}

    def feed(self, chunk: bytes) -> None:
        """Read what the record needs from the next piece of the body."""
        if self._sse:
            self._feed_sse(chunk)
        elif self._json and len(self._body) <= MAX_JSON:
            self._body += chunk[:MAX_JSON + 1 - len(self._body)]

    def finish(self) -> None:
        """The body ended: parse a small JSON answer."""
        if not self._json or not self._body or len(self._body) > MAX_JSON:
            return
        try:
            doc = json.loads(bytes(self._body))
        except ValueError:
            return
        if isinstance(doc, dict):
            self._take_model(doc.get("model"))
            self._take_usage(doc.get("usage"))
            self._take_usage(doc)  # count_tokens: {"input_tokens": N}
        self._body = bytearray()

    def _feed_sse(self, chunk: bytes) -> None:
        # Event by event (they end with a blank line): only the two events that carry usage
        # are read; the others (the text itself) are skipped whole, never parsed or kept.
        data = bytes(self._line) + chunk if self._line else chunk
        start = 0
        for end in _EVENT_END.finditer(data):
            if not self._skip_line:
                self._sse_event(data[start:end.start()])
            self._skip_line = False
            start = end.end()
        rest = data[start:]
        if self._skip_line or len(rest) > MAX_LINE:
            # A huge event (a long delta): not ours to read. Its last bytes stay, so that a
            # blank line split across chunks still ends it.
            self._skip_line = True
            self._line = bytearray(rest[-3:])
        else:
            self._line = bytearray(rest)

    def _sse_event(self, event: bytes) -> None:
        if not event.startswith(_WANTED):
            return
        for line in event.splitlines():
            if line.startswith(b"data:"):
                try:
                    doc = json.loads(line[5:])
                except ValueError:
                    return
                if not isinstance(doc, dict):
                    return
                message = doc.get("message")
                if isinstance(message, dict):
                    self._take_model(message.get("model"))
                    self._take_usage(message.get("usage"))
                self._take_usage(doc.get("usage"))
                return

    def _take_model(self, value: Any) -> None:
        if isinstance(value, str) and value and self.model is None:
            self.model = value[:256]

    def _take_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        for name in _FIELDS:
            value = usage.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                self.tokens[name] = value
