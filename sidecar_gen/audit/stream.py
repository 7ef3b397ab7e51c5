"""Merging the sources in time order, filtering (since, session), following, and the pending
names (refused, not decided yet)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sidecar_gen.audit import sources, store
from sidecar_gen.audit.envelope import to_json
from sidecar_gen.errors import ExitCode, SidecarError
from sidecar_gen.firewall.events import NOT_ALLOWED, plain_name
from sidecar_gen.runtime import contract

if TYPE_CHECKING:
    from docker import DockerClient

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
FOLLOW_SECONDS = 1.0
SEEN_KEEP = 100_000


def parse_since(text: str | None, now: float | None = None) -> str | None:
    """`--since` (30s, 10m, 2h, 7d, or an ISO time) as the event time to start at."""
    if not text:
        return None
    now = time.time() if now is None else now
    match = _DURATION.match(text.strip())
    if match:
        moment = datetime.fromtimestamp(now, UTC) - timedelta(
            seconds=int(match.group(1)) * _UNITS[match.group(2)])
    else:
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise SidecarError(f"--since {text!r}: give a duration (30s, 10m, 2h, 7d) or an "
                               "ISO time", exit_code=ExitCode.USAGE) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{moment.microsecond // 1000:03d}Z"


@dataclass
class Query:
    """What to read: the project, which sources, from when, which session."""

    project: str
    state_dir: Path | None = None  # the project's approval folder (the approvals' log)
    since: str | None = None
    session: str | None = None
    sources: tuple[str, ...] = ("gate", "egress", "approval", "broker")
    broker_log: Path | None = None
    seen: set[str] = field(default_factory=set)


def collect(client: DockerClient, query: Query) -> list[dict[str, Any]]:
    """Every event of the query's sources, in time order."""
    events: list[dict[str, Any]] = []
    if "egress" in query.sources:
        for container in sources.containers(client, query.project, contract.ROLE_CLAUDE):
            events += sources.egress_events(container)
    if "gate" in query.sources:
        for container in sources.containers(client, query.project, contract.ROLE_GATE):
            events += sources.gate_events(container)
    if "approval" in query.sources and query.state_dir is not None:
        events += store.read_log(query.state_dir)
    if "broker" in query.sources and query.broker_log is not None:
        events += sources.broker_events(query.broker_log)
    kept = [e for e in events if (query.since is None or e["time"] >= query.since)
            and (query.session is None or e["session"] == query.session
                 or e["source"] == "approval")]
    kept.sort(key=lambda e: e["time"])  # stable: a source's own order is kept within a time
    return kept


def follow(client_of: Callable[[], DockerClient], query: Query,
           sleep: Callable[[float], None] = time.sleep) -> Iterator[dict[str, Any]]:
    """Yield events as they come, forever: each new one once. The containers are looked up
    again every poll, so a restarted or recreated stack is followed on."""
    while True:
        try:
            events = collect(client_of(), query)
        except SidecarError:
            raise
        except Exception:  # the engine away for a moment (a restart): try again
            events = []
        for event in events:
            key = to_json(event)
            if key in query.seen:
                continue
            if len(query.seen) > SEEN_KEEP:
                query.seen.clear()
            query.seen.add(key)
            yield event
        sleep(FOLLOW_SECONDS)


@dataclass(frozen=True)
class Pending:
    """A refused name nobody decided on yet."""

    name: str
    count: int
    first: str
    last: str
    sessions: tuple[str, ...]


def pending(events: list[dict[str, Any]]) -> list[Pending]:
    """Names refused as not allowed, newest last, without those the user decided on since."""
    decided: dict[str, str] = {}
    for event in events:
        if event["source"] == "approval":
            for name in event["details"].get("names") or []:
                decided[str(name)] = event["time"]
    tallies: dict[str, dict[str, Any]] = {}
    for event in events:
        details = event["details"]
        if (event["source"] != "egress" or event["action"] != "dns"
                or event["decision"] != "deny" or event["reason"] != NOT_ALLOWED):
            continue
        name = str(details.get("name", ""))
        if not plain_name(name) or decided.get(name, "") >= event["time"]:
            continue
        tally = tallies.setdefault(name, {"counts": {}, "first": event["time"],
                                          "last": event["time"], "sessions": set()})
        # Each line carries the running count of its (name, type): keep the largest of each.
        key = (event["session"], details.get("qtype"))
        count = details.get("count") if isinstance(details.get("count"), int) else 1
        tally["counts"][key] = max(tally["counts"].get(key, 0), count)
        tally["last"] = max(tally["last"], event["time"])
        tally["sessions"].add(event["session"] or "-")
    out = [Pending(name, sum(t["counts"].values()), t["first"], t["last"],
                   tuple(sorted(t["sessions"]))) for name, t in tallies.items()]
    return sorted(out, key=lambda p: p.last)
