"""The audit envelope (version 1): time, session, source, action, decision, reason, details.

Every line any source yields passes `envelope()`: the fields are checked for their type, every
string is cut (`MAX_STRING`, lists to `MAX_ITEMS`) and the JSON form is ASCII-only, so no value
the agent controls (an argv, a queried name) can add a line, hide one or steer a terminal; the
text form escapes every field again (`runtime.escape`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sidecar_gen.firewall.events import SCHEMA_VERSION
from sidecar_gen.runtime.escape import escape

SOURCES = ("gate", "egress", "broker", "approval")
MAX_STRING = 1024
MAX_ITEMS = 32
MAX_DEPTH = 4


def _clip(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_STRING else value[:MAX_STRING] + "..."
    if isinstance(value, bool) or value is None or isinstance(value, int | float):
        return value
    if depth >= MAX_DEPTH:
        return _clip(json.dumps(value, ensure_ascii=True)[:MAX_STRING])
    if isinstance(value, list):
        return [_clip(v, depth + 1) for v in value[:MAX_ITEMS]]
    if isinstance(value, dict):
        return {_clip(str(k)): _clip(v, depth + 1) for k, v in list(value.items())[:MAX_ITEMS]}
    return _clip(str(value))


def envelope(doc: Mapping[str, Any], session: Any, source: str) -> dict[str, Any] | None:
    """`doc`'s time, action, decision, reason and details as one checked event of `session`
    and `source`; None when its time is not a timestamp (a line that is not ours)."""
    time = doc.get("time")
    if not isinstance(time, str) or len(time) != 24 or not time.endswith("Z"):
        return None
    details = doc.get("details")
    return {"v": SCHEMA_VERSION, "time": time,
            "session": None if session is None else _clip(str(session)),
            "source": source if source in SOURCES else "unknown",
            "action": _clip(str(doc.get("action"))), "decision": _clip(str(doc.get("decision"))),
            "reason": _clip(str(doc.get("reason"))),
            "details": _clip(details) if isinstance(details, dict) else {}}


def to_json(event: dict[str, Any]) -> str:
    """The JSON line (ASCII only: every control character and non-ASCII letter escaped)."""
    return json.dumps(event, ensure_ascii=True, separators=(",", ":"))


# The CLI's palette only (cli.output lets no other sequence through).
_COLORS = {"allow": "32", "deny": "31", "error": "33"}


def _summary(event: dict[str, Any]) -> str:
    details = event["details"]
    if event["source"] == "gate" and isinstance(details.get("exec"), dict):
        cmd = details["exec"].get("cmd")
        argv = " ".join(map(str, cmd)) if isinstance(cmd, list) else str(cmd)
        return f"exec {argv}"
    if event["source"] == "egress":
        count = f" x{details['count']}" if isinstance(details.get("count"), int) else ""
        if "name" in details:
            qtype = f" {details['qtype']}" if details.get("qtype") else ""
            return f"{details['name']}{qtype}{count}"
        if "address" in details:
            return f"{details['address']}:{details.get('port')}/{details.get('proto')}{count}"
    if event["source"] == "approval":
        return " ".join(map(str, details.get("names") or []))
    if "path" in details:
        return f"{details.get('method', '')} {details['path']}"
    return ""


def to_text(event: dict[str, Any], color: bool = False) -> str:
    """One aligned line: time, session, source, action, decision, what, reason (escaped)."""
    decision = escape(str(event["decision"]), 8)
    shown = f"{decision:<7}"
    if color and event["decision"] in _COLORS:
        shown = f"\x1b[{_COLORS[event['decision']]}m{shown}\x1b[0m"
    session = escape(str(event["session"] or "-"), 16)
    what = escape(_summary(event), 160)
    reason = escape(str(event["reason"]), 160)
    return (f"{event['time']}  {session:<10} {escape(str(event['source']), 8):<8} "
            f"{escape(str(event['action']), 10):<8} {shown} {what}  ({reason})")
