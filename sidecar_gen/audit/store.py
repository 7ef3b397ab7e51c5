"""The host-side audit log of the user's `sidecar net` decisions, in the user's state folder
(the project's approval folder, 0700): never in the project, so the agent cannot write it.

Rotated by size: past `MAX_BYTES` the file becomes `audit.jsonl.1` (and so on, `KEEP` files),
so the log holds at least the last `MAX_BYTES` and at most `MAX_BYTES * (KEEP + 1)`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sidecar_gen.audit.envelope import envelope, to_json
from sidecar_gen.firewall.events import timestamp

LOG_NAME = "audit.jsonl"
MAX_BYTES = 1024 * 1024
KEEP = 3


def _rotate(path: Path) -> None:
    try:
        if path.stat().st_size < MAX_BYTES:
            return
    except OSError:
        return
    for index in range(KEEP - 1, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{index + 1}"))
    os.replace(path, path.with_name(f"{path.name}.1"))


def append(directory: Path, event: dict[str, Any]) -> None:
    """Append one event to the project's log (rotating it first when full)."""
    path = directory / LOG_NAME
    _rotate(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (to_json(event) + "\n").encode("ascii"))
    finally:
        os.close(fd)


def log_approval(directory: Path, decision: str, names: Sequence[str], changed: Sequence[str],
                 reloaded: Sequence[str]) -> None:
    """Record a `sidecar net allow`/`deny` (the user's decision, made on the host)."""
    event = envelope({"time": timestamp(), "action": f"net {decision}", "decision": decision,
                      "reason": "the user, on the host",
                      "details": {"names": list(names), "changed": list(changed),
                                  "reloaded": list(reloaded)}}, None, "approval")
    if event is not None:
        append(directory, event)


def read_log(directory: Path) -> list[dict[str, Any]]:
    """Every event in the project's log, oldest file first."""
    out: list[dict[str, Any]] = []
    paths = [directory / f"{LOG_NAME}.{i}" for i in range(KEEP, 0, -1)] + [directory / LOG_NAME]
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                event = envelope(doc, doc.get("session"), "approval")
                if event is not None:
                    out.append(event)
    return out
