"""The rule catalog: the README's table, SARIF's rule metadata and every emitted rule agree."""

from __future__ import annotations

import json
from pathlib import Path

from sidecar_gen.validate.bridge import validate_file
from sidecar_gen.validate.check import CheckOptions, run_check
from sidecar_gen.validate.reporters import format_sarif
from sidecar_gen.validate.rules import RULE_BY_ID, RULES, markdown_table

REPO = Path(__file__).resolve().parents[2]
INVALID = sorted((REPO / "tests" / "fixtures" / "invalid").glob("*.yaml"))


def test_readme_rule_table_is_the_catalog() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme, "regenerate the README table: " + markdown_table()


def test_rule_ids_are_unique_and_named_plainly() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    assert all(r.id.replace("-", "").isalpha() and r.id.islower() for r in RULES)


def test_every_emitted_finding_is_in_the_catalog_with_its_severity() -> None:
    seen = set()
    for path in INVALID:
        for finding in validate_file(path):
            assert finding.rule in RULE_BY_ID, finding
            assert finding.severity is RULE_BY_ID[finding.rule].severity, finding
            seen.add(finding.rule)
    # The fixtures exercise a good part of the catalog (so this test can fail).
    assert len(seen) >= 15, sorted(seen)


def test_sarif_rules_carry_the_catalog_text() -> None:
    # Read with the compose project next to the fixture, as `sidecar validate` reads it.
    path = REPO / "tests" / "fixtures" / "invalid" / "duplicates.yaml"
    findings = run_check(CheckOptions(files=[path])).report.findings
    doc = json.loads(format_sarif(findings, ["x"]))
    rules = doc["runs"][0]["tool"]["driver"]["rules"]
    assert {r["id"] for r in rules} == {"duplicate-key", "key-not-string"}
    for entry in rules:
        assert entry["shortDescription"]["text"] == RULE_BY_ID[entry["id"]].summary
        assert entry["defaultConfiguration"]["level"] == "error"
