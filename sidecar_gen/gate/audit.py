"""The decision log: one JSON line per request the gate decided on.

It is written by the gate, outside the Claude container, so the agent cannot edit it: it is the
audit trail of everything the agent asked the Docker engine to do. The line format is
`schemas/gate-decision.schema.json` (documented in the README).
"""

from __future__ import annotations

import json
import threading
import time
from typing import IO, Any


def timestamp() -> str:
    """UTC time with milliseconds, e.g. 2026-11-27T05:31:43.120Z."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


class DecisionLog:
    """Append JSON lines to a text stream; thread-safe, one flush per line."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def record(self, *, peer: str, method: str, path: str, decision: str, reason: str,
               status: int, policy: str, target: str | None = None, **extra: Any) -> None:
        """Write one decision (`allow`, `deny` or `error`) with its reason.

        `path` is the request target exactly as received (query string included), `status`
        the HTTP status the client got, `policy` the `X-Sidecar-Policy` value of the policy
        in force, `target` the full id of the container decided on; `extra` holds the
        request's details (`exec`, `size`, `exec_id`, `count`).
        """
        entry: dict[str, Any] = {
            "time": timestamp(),
            "peer": peer,
            "method": method,
            "path": path,
            "target": target,
            "decision": decision,
            "reason": reason,
            "status": status,
            "policy": policy,
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
