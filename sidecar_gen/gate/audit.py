"""The decision log: one JSON line per request the gate decided on.

It is written by the gate, outside the Claude container, so the agent cannot edit it: it is the
audit trail of everything the agent asked the Docker engine to do.
"""

from __future__ import annotations

import json
import threading
import time
from typing import IO, Any


class DecisionLog:
    """Append JSON lines to a text stream; thread-safe, one flush per line."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def record(self, *, peer: str, method: str, path: str, decision: str, reason: str,
               target: str | None = None, **extra: Any) -> None:
        """Write one decision (`allow` or `deny`) with its reason."""
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            + f".{int(time.time() * 1000) % 1000:03d}Z",
            "peer": peer,
            "method": method,
            "path": path,
            "target": target,
            "decision": decision,
            "reason": reason,
        }
        entry.update(extra)
        line = json.dumps(entry, ensure_ascii=True, separators=(",", ":")) + "\n"
        with self._lock:
            try:
                self._stream.write(line)
                self._stream.flush()
            except (OSError, ValueError):
                # A full disk or a closed stream must not take the gate down; decisions are
                # still enforced, only their record is lost.
                pass
