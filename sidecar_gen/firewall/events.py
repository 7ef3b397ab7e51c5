"""The egress record's events: one JSON line each, in the audit envelope (version 1).

The recorder (`firewall.recorder`, root, in the claude container) writes them to
`RECORD_FILE`; the host reads them back (`sidecar net log`, `sidecar audit`) and adds the
session. Every field the agent controls (a queried name, a query type) is checked here: a name
that is not a plain DNS name is kept escaped and cut, so no byte of it can forge a line or steer
a terminal, and it is never offered to `sidecar net allow`.
"""

from __future__ import annotations

import re
import time
from typing import Any

from sidecar_gen.runtime.escape import escape
from sidecar_gen.runtime.names import RUN_DIR

SCHEMA_VERSION = 1
EGRESS_DIR = f"{RUN_DIR}/egress"  # root's, 0755: readable, never writable, by the agent
RECORD_FILE = f"{EGRESS_DIR}/record.jsonl"
RECORD_OLD = f"{EGRESS_DIR}/record.jsonl.1"  # the one rotated file kept
BLOCKED_FILE = f"{EGRESS_DIR}/blocked"  # the agent's short reasons
MAX_NAME = 253
_NAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?$")
_QTYPE = re.compile(r"^[A-Za-z0-9=]{1,16}$")

# Why something was refused (the reason words the agent and the user read).
NOT_ALLOWED = "not in the allowlist"
SPECIAL = "a special-purpose address"
HOST_PORT = "a port of the Docker host that is not opened"
OTHER_RESOLVER = "DNS to another resolver"
NO_NAME = "an address no allowed name resolved to"
ALLOWED = "in the allowlist"
SERVICE = "a compose service (single-label name)"


def timestamp(now: float | None = None) -> str:
    """UTC time with milliseconds, e.g. 2026-12-07T16:10:00.120Z (the gate's format)."""
    now = time.time() if now is None else now
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def plain_name(name: str) -> bool:
    """True when `name` is a plain DNS name (letters, digits, '-', '_', dots): safe to print
    as it is and to offer to `sidecar net allow`."""
    return bool(_NAME.match(name)) and ".." not in name


def clean_name(name: str) -> str:
    """A queried name as it may be recorded: lowercased when plain, else escaped and cut."""
    if plain_name(name):
        return name.lower()
    return escape(name, MAX_NAME)


def clean_qtype(qtype: str) -> str:
    """A query type as it may be recorded (`A`, `AAAA`, `type=65`)."""
    return qtype if _QTYPE.match(qtype) else escape(qtype, 16)


def event(action: str, decision: str, reason: str, details: dict[str, Any],
          now: float | None = None) -> dict[str, Any]:
    """One egress event in the audit envelope (the host fills in `session`)."""
    return {"v": SCHEMA_VERSION, "time": timestamp(now), "session": None, "source": "egress",
            "action": action, "decision": decision, "reason": reason, "details": details}


def blocked_line(doc: dict[str, Any]) -> str | None:
    """The agent's one-line reason for a refused event, or None for an allowed one."""
    if doc.get("decision") != "deny":
        return None
    details = doc.get("details") or {}
    if doc.get("action") == "dns":
        name = str(details.get("name", ""))
        line = f"blocked {escape(name, MAX_NAME)}: {doc.get('reason')}"
        if plain_name(name) and doc.get("reason") == NOT_ALLOWED:
            line += f" (ask the user: sidecar net allow {name})"
        return line
    target = f"{details.get('address')}:{details.get('port')}/{details.get('proto')}"
    line = f"blocked {escape(target, 80)}: {doc.get('reason')}"
    if doc.get("reason") == NO_NAME:
        line += " (connect by an allowed name; ask the user to allow the name)"
    return line
