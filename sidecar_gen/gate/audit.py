"""The decision log: one JSON line per request the gate decided on, bounded per client.

It is written by the gate, outside the Claude container, so the agent cannot edit it: it is the
audit trail of everything the agent asked the Docker engine to do. The line format is
`schemas/gate-decision.schema.json` (documented in the README).

What one client (a peer address) can make the gate write is bounded, or a flood of refused
requests with 15 KiB paths would write hundreds of MiB a minute and rotate the trail away:

- **actions are always written, one line each**: an allowed POST (exec create, start,
  resize) and the line that ends an exec stream are never counted instead; they are written
  whole while the client's action budget (`ACTION_PER_SECOND`, `ACTION_BURST` bytes) lasts,
  and cut as below beyond it (each one is a real exec in the engine, which sets their pace);
- every other line (refusals, errors, allowed reads) has its strings cut to `STRING_BYTES`
  (list items to `ITEM_BYTES`, lists to `LIST_ITEMS`), the bytes left out counted in `cut`,
  and is written while the client's budget (`BUDGET_PER_SECOND`, `BUDGET_BURST` bytes) lasts;
- beyond the budget, lines are counted instead: one line per client, decision, status and
  reason every `SUMMARY_SECONDS` with `count` and `since` (the first one counted), so the
  counts add up to the requests made. At most `MAX_REASONS` reasons per client are kept apart.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import IO, Any

STRING_BYTES = 1024  # a string field of a budgeted line keeps this many bytes
ITEM_BYTES = 256  # ... an item of a list (argv, environment names) this many
LIST_ITEMS = 16  # ... and a list this many items
BUDGET_PER_SECOND = 2048  # bytes of budgeted lines one client may have written per second
BUDGET_BURST = 64 * 1024  # ... and at once
ACTION_PER_SECOND = 16 * 1024  # bytes of whole action lines one client may have per second
ACTION_BURST = 1024 * 1024  # ... and at once (beyond: written cut, never left out)
SUMMARY_SECONDS = 10.0  # counted lines are written as one line per reason this often
MAX_REASONS = 16  # reasons counted apart per client; the rest as OTHER_REASON
MAX_CLIENTS = 1024  # clients with a budget of their own; beyond, they share SHARED_CLIENT's
OTHER_REASON = "other reasons (too many kinds to count apart)"
SHARED_CLIENT = "-"
REASON_KEY_BYTES = 256  # reasons are counted apart by this many leading bytes


def timestamp(now: float | None = None) -> str:
    """UTC time with milliseconds, e.g. 2026-11-27T05:31:43.120Z."""
    now = time.time() if now is None else now
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def client_of(peer: str) -> str:
    """The client a peer belongs to: its address without the port (`IP:port`, `unix`, `-`)."""
    host, sep, port = peer.rpartition(":")
    return host if sep and port.isdigit() else peer


def is_action(entry: dict[str, Any]) -> bool:
    """Whether a line records something done in the engine (always written, never counted
    instead): an allowed POST (the gate allows POST only for exec create, start and resize) or
    the end of an exec stream."""
    return entry["decision"] == "allow" and (entry["method"] == "POST" or "stream" in entry)


def _size(value: Any) -> int:
    """Bytes of a value: a string's UTF-8, anything else's JSON."""
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    return len(json.dumps(value))


def _cut_text(value: str, limit: int) -> tuple[str, int]:
    data = value.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return value, 0
    kept = data[:limit].decode("utf-8", "ignore")  # never half a character
    return kept, len(data) - _size(kept)


def _cut_value(value: Any, limit: int) -> tuple[Any, int]:
    """`value` with its strings and lists cut; and the bytes left out."""
    if isinstance(value, str):
        return _cut_text(value, limit)
    if isinstance(value, list):
        out, dropped = [], 0
        for index, item in enumerate(value):
            if index >= LIST_ITEMS:
                dropped += _size(item)
                continue
            kept, n = _cut_value(item, ITEM_BYTES)
            out.append(kept)
            dropped += n
        return out, dropped
    if isinstance(value, dict):
        cut_dict: dict[str, Any] = {}
        dropped = 0
        for key, item in value.items():
            cut_dict[key], n = _cut_value(item, limit)
            dropped += n
        return cut_dict, dropped
    return value, 0


def cut_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry with long fields cut, and `cut` saying how many bytes each field lost."""
    cut: dict[str, int] = {}
    out: dict[str, Any] = {}
    for key, value in entry.items():
        out[key], dropped = _cut_value(value, STRING_BYTES)
        if dropped:
            cut[key] = dropped
    if cut:
        out["cut"] = cut
    return out


@dataclass
class _Budget:
    tokens: float
    at: float


class _Budgets:
    """One token bucket of bytes per client: `burst` at once, refilled at `rate` a second."""

    def __init__(self, burst: int, rate: int) -> None:
        self.burst, self.rate = burst, rate
        self.by_client: dict[str, _Budget] = {}

    def spend(self, client: str, size: int, now: float) -> bool:
        """Take `size` bytes from the client's bucket if it holds them."""
        budget = self.by_client.setdefault(client, _Budget(self.burst, now))
        budget.tokens = min(self.burst, budget.tokens + (now - budget.at) * self.rate)
        budget.at = now
        if budget.tokens < size:
            return False
        budget.tokens -= size
        return True


@dataclass
class _Count:
    count: int
    since: float  # wall clock of the first request counted
    due: float  # monotonic time the line is written


class DecisionLog:
    """Append JSON lines to a text stream; thread-safe, one flush per line, bounded per client
    (module docstring). `close()` writes the counts still pending."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._budgets = _Budgets(BUDGET_BURST, BUDGET_PER_SECOND)
        self._actions = _Budgets(ACTION_BURST, ACTION_PER_SECOND)
        self._known: set[str] = set()  # clients with budgets of their own
        self._counts: dict[tuple[str, str, int, str, str], _Count] = {}
        self._reasons: dict[str, int] = {}  # client -> reasons counted apart
        self._wake = threading.Event()
        self._closed = False
        self._flusher: threading.Thread | None = None

    def record(self, *, peer: str, method: str, path: str, decision: str, reason: str,
               status: int, policy: str, target: str | None = None, **extra: Any) -> None:
        """Write one decision (`allow`, `deny` or `error`) with its reason, or count it.

        `path` is the request target exactly as received (query string included), `status`
        the HTTP status the client got, `policy` the `X-Sidecar-Policy` value of the policy
        in force, `target` the full id of the container decided on; `extra` holds the
        request's details (`exec`, `size`, `exec_id`, `count`, `stream`).
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
        now = time.monotonic()
        if is_action(entry):
            line = _dumps(entry)
            with self._lock:
                client = self._client(peer)
                if not self._actions.spend(client, len(line), now):
                    line = _dumps(cut_entry(entry))
                self._write_locked(line)
            return
        entry = cut_entry(entry)
        line = _dumps(entry)
        with self._lock:
            client = self._client(peer)
            if self._budgets.spend(client, len(line), now):
                self._write_locked(line)
                return
            self._count(client, entry, now)

    def _client(self, peer: str) -> str:
        """Whose budgets a peer's lines draw on: its client's, or beyond MAX_CLIENTS a shared
        one."""
        client = client_of(peer)
        if client not in self._known:
            if len(self._known) >= MAX_CLIENTS:
                return SHARED_CLIENT
            self._known.add(client)
        return client

    def _count(self, client: str, entry: dict[str, Any], now: float) -> None:
        reason = _cut_text(str(entry["reason"]), REASON_KEY_BYTES)[0]
        key = (client, entry["decision"], entry["status"], reason, entry["policy"])
        if key not in self._counts:
            if self._reasons.get(client, 0) >= MAX_REASONS:
                key = (client, entry["decision"], entry["status"], OTHER_REASON, entry["policy"])
            else:
                self._reasons[client] = self._reasons.get(client, 0) + 1
        found = self._counts.get(key)
        n = entry.get("count", 1)
        if found is None:
            self._counts[key] = _Count(n, time.time(), now + SUMMARY_SECONDS)
            self._start_flusher()
        else:
            found.count += n

    def _start_flusher(self) -> None:
        if self._flusher is None and not self._closed:
            self._flusher = threading.Thread(target=self._flush_loop, daemon=True,
                                             name="sidecar-gate-log")
            self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._wake.wait(1.0):
            self.flush()

    def flush(self, *, everything: bool = False) -> None:
        """Write the count lines that are due (`everything`: all of them, now)."""
        now = time.monotonic()
        with self._lock:
            due = [key for key, found in self._counts.items()
                   if everything or found.due <= now]
            for key in due:
                found = self._counts.pop(key)
                client, decision, status, reason, policy = key
                if reason != OTHER_REASON:
                    self._reasons[client] -= 1
                    if not self._reasons[client]:
                        del self._reasons[client]
                self._write_locked(_dumps({
                    "time": timestamp(), "peer": client, "method": "-", "path": "-",
                    "target": None, "decision": decision, "reason": reason, "status": status,
                    "policy": policy, "count": found.count, "since": timestamp(found.since)}))

    def close(self) -> None:
        """Stop the periodic writer and write every count still pending."""
        self._closed = True
        self._wake.set()
        if self._flusher is not None:
            self._flusher.join(timeout=5)
        self.flush(everything=True)

    def _write_locked(self, line: str) -> None:
        try:
            self._stream.write(line)
            self._stream.flush()
        except (OSError, ValueError):
            # A full disk or a closed stream must not take the gate down; decisions are
            # still enforced, only their record is lost.
            pass


def _dumps(entry: dict[str, Any]) -> str:
    return json.dumps(entry, ensure_ascii=True, separators=(",", ":")) + "\n"
