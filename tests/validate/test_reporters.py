"""Reporters: exact output for each format."""

from __future__ import annotations

import json

from sidecar_gen.validate.findings import Finding, Severity
from sidecar_gen.validate.reporters import format_github, format_json, format_sarif, format_text

FINDINGS = [
    Finding("a/bridge.yaml", 3, 5, "unknown-key", "unknown key 'x', did you mean 'y'?",
            json_path="$.commands.x"),
    Finding("a/bridge.yaml", 7, 1, "unused-container", "container 'db' is not used",
            Severity.WARNING, json_path="$.containers.db"),
]


def test_text() -> None:
    assert format_text(FINDINGS, ["a/bridge.yaml"]) == (
        "a/bridge.yaml:3:5: error: unknown key 'x', did you mean 'y'? [unknown-key]\n"
        "a/bridge.yaml:7:1: warning: container 'db' is not used [unused-container]\n"
        "1 error(s), 1 warning(s) in 1 file(s)\n"
    )
    assert format_text([], ["a", "b"]) == "2 file(s) valid\n"


def test_text_color_only_marks_severity() -> None:
    out = format_text(FINDINGS[:1], ["a"], color=True)
    assert "\x1b[31merror\x1b[0m" in out


def test_github_escapes_properties_and_message() -> None:
    findings = [Finding("x,y:z.yaml", 2, 4, "r", "line1\nline2 100%")]
    assert format_github(findings, []) == (
        "::error file=x%2Cy%3Az.yaml,line=2,col=4,title=r::line1%0Aline2 100%25\n")
    assert format_github(FINDINGS, [])[-1] == "\n"
    assert "::warning file=a/bridge.yaml,line=7,col=1" in format_github(FINDINGS, [])


def test_json_is_stable() -> None:
    doc = json.loads(format_json(FINDINGS, ["a/bridge.yaml"]))
    assert doc == {
        "version": 1,
        "files": ["a/bridge.yaml"],
        "findings": [
            {"path": "a/bridge.yaml", "line": 3, "column": 5, "severity": "error",
             "rule": "unknown-key", "message": "unknown key 'x', did you mean 'y'?",
             "json_path": "$.commands.x"},
            {"path": "a/bridge.yaml", "line": 7, "column": 1, "severity": "warning",
             "rule": "unused-container", "message": "container 'db' is not used",
             "json_path": "$.containers.db"},
        ],
        "summary": {"errors": 1, "warnings": 1, "notes": 0, "valid": False},
    }


NOTE = Finding("a/bridge.yaml", 5, 11, "no-commands", "no command is routed", Severity.NOTE,
               json_path="$.commands")


def test_a_note_is_reported_in_every_format_and_fails_nothing() -> None:
    assert format_text([NOTE], ["a/bridge.yaml"]) == (
        "a/bridge.yaml:5:11: note: no command is routed [no-commands]\n1 file(s) valid\n")
    assert "\x1b[36mnote\x1b[0m" in format_text([NOTE], ["a/bridge.yaml"], color=True)
    assert json.loads(format_json([NOTE], ["a/bridge.yaml"]))["summary"] == {
        "errors": 0, "warnings": 0, "notes": 1, "valid": True}
    assert format_github([NOTE], ["x"]).startswith("::notice file=a/bridge.yaml,line=5,col=11,")
    [result] = json.loads(format_sarif([NOTE], ["x"]))["runs"][0]["results"]
    assert result["level"] == "note"


def test_sarif_has_the_required_structure() -> None:
    doc = json.loads(format_sarif(FINDINGS, ["a/bridge.yaml"]))
    assert doc["version"] == "2.1.0"
    [run] = doc["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] and driver["version"]
    rule_ids = [r["id"] for r in driver["rules"]]
    assert rule_ids == ["unknown-key", "unused-container"]
    for result in run["results"]:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning")
        assert result["message"]["text"]
        region = result["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
    assert [r["level"] for r in run["results"]] == ["error", "warning"]
    relative = json.loads(format_sarif([Finding("./b.yaml", 1, 1, "r", "m")], []))
    location = relative["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "b.yaml"
