"""The audit envelope, the host-side approvals log, `--since`, pending names and the checks of
`sidecar net allow` that need no engine (the docker test, tests/test_e2e_egress.py, does the
rest)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from sidecar_gen.audit import envelope as env
from sidecar_gen.audit import sources, store, stream
from sidecar_gen.errors import SidecarError
from sidecar_gen.trust import netpolicy

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO / "schemas" / "audit-event.schema.json").read_text())
T = "2026-12-07T16:10:00.120Z"


def test_gate_lines_become_events_that_match_the_schema() -> None:
    line = {"time": T, "peer": "172.19.0.3:40112", "method": "POST", "path": "/v1.41/x/exec",
            "target": "3f1c", "decision": "allow", "reason": "exec into a target",
            "status": 201, "policy": "sha256:9b", "exec": {"cmd": ["php", "artisan", "test"],
                                                          "user": "1000:1000", "env": ["A"],
                                                          "workdir": "/var/www", "tty": False}}
    event = sources.gate_event(line, "s1")
    assert event is not None
    jsonschema.validate(event, SCHEMA)
    assert (event["action"], event["session"], event["details"]["exec"]["cmd"]) == (
        "exec", "s1", ["php", "artisan", "test"])
    assert "exec php artisan test" in env.to_text(event)


def test_agent_values_cannot_forge_or_steer() -> None:
    forged = 'ok\n{"v":1,"decision":"allow"}\x1b[2J\x1b]0;t\x07' + "x" * 5000
    event = env.envelope({"time": T, "action": "exec", "decision": "deny", "reason": forged,
                          "details": {"exec": {"cmd": [forged] * 100}}}, None, "gate")
    assert event is not None
    jsonschema.validate(event, SCHEMA)
    line = env.to_json(event)
    assert "\n" not in line and line.isascii() and len(line) < 64 * 1024
    assert len(event["details"]["exec"]["cmd"]) == env.MAX_ITEMS
    text = env.to_text(event, color=True)
    assert "\n" not in text and "\x07" not in text and "\x1b]" not in text
    assert "\x1b[2J" not in text
    assert env.envelope({"time": "not a time", "decision": "allow"}, None, "gate") is None


def test_colour_only_when_asked() -> None:
    event = env.envelope({"time": T, "action": "dns", "decision": "deny", "reason": "r",
                          "details": {"name": "a.org", "count": 3}}, None, "egress")
    assert event is not None
    assert "\x1b[31m" in env.to_text(event, color=True)
    assert "\x1b" not in env.to_text(event, color=False)
    assert "a.org x3" in env.to_text(event)


def test_approvals_log_rotates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "MAX_BYTES", 300)
    for n in range(20):
        store.log_approval(tmp_path, "allow", [f"n{n}.example"], [f"n{n}.example"], ["c"])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2", "audit.jsonl.3"]
    events = store.read_log(tmp_path)
    assert events[-1]["details"]["names"] == ["n19.example"]
    for event in events:
        jsonschema.validate(event, SCHEMA)
    assert (tmp_path / "audit.jsonl").stat().st_mode & 0o777 == 0o600


def test_since() -> None:
    assert stream.parse_since("10m", now=1_765_124_400.0) == "2025-12-07T16:10:00.000Z"
    assert stream.parse_since("2026-12-07T16:00:00Z") == "2026-12-07T16:00:00.000Z"
    with pytest.raises(SidecarError, match="--since"):
        stream.parse_since("yesterday")


def _deny(name: str, time: str, count: int, qtype: str = "A") -> dict[str, object]:
    event = env.envelope({"time": time, "action": "dns", "decision": "deny",
                          "reason": "not in the allowlist",
                          "details": {"name": name, "qtype": qtype, "count": count}},
                         None, "egress")
    assert event is not None
    return event


def test_pending_counts_and_forgets_decided_names() -> None:
    events = [_deny("a.org", "2026-12-07T16:00:00.000Z", 1),
              _deny("a.org", "2026-12-07T16:00:10.000Z", 5),
              _deny("a.org", "2026-12-07T16:00:10.000Z", 2, "AAAA"),
              _deny("b.org", "2026-12-07T16:00:00.000Z", 1),
              _deny("bad\\027.org", "2026-12-07T16:00:00.000Z", 1)]
    approval = env.envelope({"time": "2026-12-07T16:00:05.000Z", "action": "net allow",
                             "decision": "allow", "reason": "user",
                             "details": {"names": ["b.org"]}}, None, "approval")
    assert approval is not None
    found = stream.pending([*events, approval])
    assert [(p.name, p.count) for p in found] == [("a.org", 7)]


@pytest.mark.parametrize(("name", "why"), [
    ("1.2.3.4", "IP"), ("http://x.org/", "URL"), ("co.uk", "public suffix"),
    ("github.io", "shared platform"), ("", "empty"), ("a b.org", "spaces"),
    ("*.x.org", "without"), ("x.org:443", "no ports"), ("org", "single label")])
def test_bad_names_are_refused_with_exit_2(name: str, why: str) -> None:
    with pytest.raises(SidecarError, match=why) as info:
        netpolicy.check_names([name])
    assert info.value.exit_code == 2


def test_names_are_normalised() -> None:
    assert netpolicy.check_names(["Example.ORG.", "example.org", "api.x.dev"]) == [
        "example.org", "api.x.dev"]


def test_bridge_edit_keeps_comments() -> None:
    text = ("# my project\nversion: \"1\"\ncommands: {}\nsidecar:\n  firewall:\n"
            "    # mirrors we trust\n    domains:\n      - pypi.org  # python\n")
    added = netpolicy._edit_bridge(text, ["example.org"], allow=True)
    assert "# my project" in added and "# mirrors we trust" in added and "# python" in added
    assert "- example.org" in added
    removed = netpolicy._edit_bridge(added, ["example.org"], allow=False)
    assert "example.org" not in removed and "# python" in removed
    fresh = netpolicy._edit_bridge('version: "1"\ncommands: {}\n', ["a.org"], allow=True)
    assert "sidecar:\n  firewall:\n    domains:\n      - a.org\n" in fresh


def test_domains_edit() -> None:
    text, changed = netpolicy._edit_domains("# header\npypi.org\n", ["a.org", "pypi.org"], True)
    assert text == "# header\npypi.org\na.org\n" and changed == ["a.org"]
    text, changed = netpolicy._edit_domains(text, ["pypi.org"], False)
    assert text == "# header\na.org\n" and changed == ["pypi.org"]


def test_follow_prints_each_event_once_and_outlives_the_engine_going_away(
        monkeypatch: pytest.MonkeyPatch) -> None:
    first = _deny("a.org", "2026-12-07T16:00:00.000Z", 1)
    second = _deny("b.org", "2026-12-07T16:00:01.000Z", 1)
    polls = iter([[first], RuntimeError("engine restarting"), [first, second], [first, second]])

    def collect(client: object, query: stream.Query) -> list[dict[str, object]]:
        result = next(polls)
        if isinstance(result, Exception):
            raise result
        return result

    monkeypatch.setattr(stream, "collect", collect)
    events = stream.follow(object, stream.Query("p"), sleep=lambda _: None)  # type: ignore[arg-type]
    assert [next(events), next(events)] == [first, second]
