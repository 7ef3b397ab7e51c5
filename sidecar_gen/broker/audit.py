"""The broker's audit record: one JSON line per request, forwarded or refused.

Written by the broker, outside the claude container, so the agent cannot edit it. It holds
what was asked and what it cost (method, path, model, status, duration, token counts), never
prompt content and never a secret: no header value, no body. The format is
`schemas/broker-request.schema.json` (documented in the README); every field the agent wrote
(the path, the model name) is JSON-escaped with ASCII only, so no byte of it reaches a terminal
raw.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import IO, Any

from sidecar_gen.gate.audit import timestamp

MAX_PATH = 2048


@dataclass
class Entry:
    """One request's record, filled in as the request goes."""

    peer: str
    method: str = "-"
    path: str = "-"
    service: str | None = None
    repository: str | None = None
    decision: str = "deny"
    reason: str = ""
    status: int = 0
    model: str | None = None
    tokens: dict[str, int] = field(default_factory=dict)
    request_bytes: int = 0
    response_bytes: int = 0
    redacted: int = 0

    def to_json(self, duration_ms: float) -> dict[str, Any]:
        """The line's fields (schema order)."""
        path = self.path if len(self.path) <= MAX_PATH else self.path[:MAX_PATH] + "..."
        doc: dict[str, Any] = {
            "time": timestamp(),
            "peer": self.peer,
            "service": self.service,
            "method": self.method,
            "path": path,
            "decision": self.decision,
            "reason": self.reason,
            "status": self.status,
            "duration_ms": round(duration_ms, 1),
            "model": self.model,
            "input_tokens": self.tokens.get("input_tokens"),
            "output_tokens": self.tokens.get("output_tokens"),
            "cache_creation_input_tokens": self.tokens.get("cache_creation_input_tokens"),
            "cache_read_input_tokens": self.tokens.get("cache_read_input_tokens"),
            "request_bytes": self.request_bytes,
            "response_bytes": self.response_bytes,
        }
        if self.repository is not None:
            doc["repository"] = self.repository
        if self.redacted:
            doc["redacted"] = self.redacted
        return doc


class AuditLog:
    """Append JSON lines to a text stream; thread-safe, one flush per line."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, entry: Entry, duration_ms: float) -> None:
        """Write one request's line."""
        self.write_doc(entry.to_json(duration_ms))

    def write_doc(self, doc: dict[str, Any]) -> None:
        """Write one line as given (a notice: the connection cap, the start)."""
        line = json.dumps(doc, ensure_ascii=True, separators=(",", ":")) + "\n"
        with self._lock:
            try:
                self._stream.write(line)
                self._stream.flush()
            except (OSError, ValueError):
                pass  # a full disk must not stop the broker; only the record is lost
