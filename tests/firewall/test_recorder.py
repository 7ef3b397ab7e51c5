"""The egress recorder without a container: the forwarder's log in, the record and the agent's
reasons out; forged names, floods and the bounds (the container tests prove the rest)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sidecar_gen.firewall import recorder as rec
from sidecar_gen.firewall.events import (
    HOST_PORT,
    NO_NAME,
    NOT_ALLOWED,
    OTHER_RESOLVER,
    SPECIAL,
    blocked_line,
)


def _recorder(tmp_path: Path) -> rec.Recorder:
    (tmp_path / "state").mkdir()
    return rec.Recorder(tmp_path / "state", tmp_path / "egress" / "record.jsonl",
                        tmp_path / "egress" / "blocked", tmp_path / "egress" / "record.jsonl.1")


def _log(r: rec.Recorder, *lines: str) -> None:
    with r.log.open("a", encoding="utf-8") as stream:
        for line in lines:
            stream.write(f"Dec  7 16:09:23 dnsmasq[58]: {line}\n")


def _records(r: rec.Recorder) -> list[dict[str, object]]:
    return [json.loads(line) for line in r.record.read_text().splitlines()]


def test_refused_and_allowed_names_are_recorded(tmp_path: Path) -> None:
    r = _recorder(tmp_path)
    _log(r, "1 127.0.0.1/33735 query[AAAA] Example.org from 127.0.0.1",
         "1 127.0.0.1/33735 config Example.org is NXDOMAIN",
         "2 127.0.0.1/1 query[A] allowed.test from 127.0.0.1",
         "2 127.0.0.1/1 forwarded allowed.test to 127.0.0.11",
         "2 127.0.0.1/1 reply allowed.test is 172.20.0.5")
    r.step(now=0)
    docs = _records(r)
    assert [(d["action"], d["decision"], d["reason"]) for d in docs] == [
        ("dns", "deny", NOT_ALLOWED), ("dns", "allow", "in the allowlist")]
    assert docs[0]["details"] == {"name": "example.org", "qtype": "AAAA", "count": 1,
                                  "first": docs[0]["time"]}
    assert r.blocked.read_text() == ("blocked example.org: not in the allowlist (ask the user: "
                                     "sidecar net allow example.org)\n")
    assert all(d["v"] == 1 and d["source"] == "egress" for d in docs)


def test_a_forged_name_cannot_forge_a_line_or_reach_a_terminal(tmp_path: Path) -> None:
    r = _recorder(tmp_path)
    forged = 'x.org\\","decision":"allow\x1b[2J\u202e'
    _log(r, f"3 127.0.0.1/2 query[A] {forged} from 127.0.0.1",
         f"3 127.0.0.1/2 config {forged} is NXDOMAIN")
    r.step(now=0)
    raw = r.record.read_text()
    assert raw.count("\n") == 1 and raw.isascii() and "\x1b" not in raw
    doc = json.loads(raw)
    assert doc["decision"] == "deny"
    name = doc["details"]["name"]
    assert "\x1b" not in name and "\u202e" not in name
    blocked = r.blocked.read_text()
    assert "sidecar net allow" not in blocked  # never offered for a name that is not plain
    assert "\x1b" not in blocked and blocked.count("\n") == 1


def test_a_flood_is_bounded_and_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rec, "MAX_KEYS", 500)
    r = _recorder(tmp_path)
    for start in range(0, 10_000, 1000):
        lines = []
        for n in range(start, start + 1000):
            lines += [f"{n} 127.0.0.1/9 query[TXT] n{n}.flood.example from 127.0.0.1",
                      f"{n} 127.0.0.1/9 config n{n}.flood.example is NXDOMAIN"]
        _log(r, *lines)
        r.step(now=0)
    # Ten thousand names: the burst of lines, no more; the rest counted, the log emptied.
    docs = _records(r)
    assert len(docs) <= rec.LINES_BURST + 5
    assert len(r.tallies) <= 501
    assert sum(t.count for t in r.tallies.values()) == 10_000
    assert r.log.stat().st_size < rec.LOG_TRUNCATE
    assert len(r.blocked.read_text().splitlines()) <= rec.BLOCKED_LINES


def test_counts_are_flushed_later_not_lost(tmp_path: Path) -> None:
    r = _recorder(tmp_path)
    for n in range(3):
        _log(r, f"{n} 127.0.0.1/9 query[A] same.example from 127.0.0.1",
             f"{n} 127.0.0.1/9 config same.example is NXDOMAIN")
        r.step(now=0)
    r.step(now=rec.FLUSH_SECONDS + 1)
    counts = [d["details"]["count"] for d in _records(r)]  # type: ignore[index]
    assert counts == [1, 3]


def test_drop_reasons() -> None:
    assert rec.drop_reason("8.8.8.8", "udp", 53, [], []) == OTHER_RESOLVER
    assert rec.drop_reason("172.18.0.1", "tcp", 22, ["172.18.0.1"], []) == HOST_PORT
    assert rec.drop_reason("169.254.169.254", "tcp", 80, [], []) == SPECIAL
    assert rec.drop_reason("10.1.2.3", "tcp", 80, [], []) == SPECIAL
    assert rec.drop_reason("10.1.2.3", "tcp", 80, [], ["10.0.0.0/8"]) == NO_NAME
    assert rec.drop_reason("1.2.3.4", "tcp", 443, [], []) == NO_NAME


def test_blocked_line_of_a_connection() -> None:
    doc = {"action": "connect", "decision": "deny", "reason": NO_NAME,
           "details": {"address": "1.2.3.4", "port": 443, "proto": "tcp"}}
    line = blocked_line(doc)
    assert line is not None and line.startswith("blocked 1.2.3.4:443/tcp: " + NO_NAME)
    assert blocked_line({**doc, "decision": "allow"}) is None
