"""Formatters for validation findings: text, json, github, sarif. Each returns a string.

A finding quotes bridge.yaml (keys, values, names), which the agent can write: the text formats
escape every non-printable character (`runtime.escape`), the JSON ones are pure ASCII.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Protocol

from sidecar_gen import __version__, resources
from sidecar_gen.runtime.escape import escape, escape_lines
from sidecar_gen.validate.findings import Finding, Severity
from sidecar_gen.validate.rules import RULE_BY_ID

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
JSON_FORMAT_VERSION = 1


_COLORS = {Severity.ERROR: "31", Severity.WARNING: "33", Severity.NOTE: "36"}
_GITHUB = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTE: "notice"}


def _counts(findings: Sequence[Finding]) -> tuple[int, int, int]:
    """(errors, warnings, notes)."""
    def count(severity: Severity) -> int:
        return sum(1 for f in findings if f.severity is severity)

    return count(Severity.ERROR), count(Severity.WARNING), count(Severity.NOTE)


def format_text(findings: Sequence[Finding], files: Sequence[str], *, color: bool = False) -> str:
    """`PATH:LINE:COL: error|warning: MESSAGE [rule-id]`, one per line, then a summary line."""
    lines = []
    for f in findings:
        severity = str(f.severity)
        if color:
            code = _COLORS[f.severity]
            severity = f"\x1b[{code}m{severity}\x1b[0m"
        lines.append(f"{escape(f.path)}:{f.line}:{f.column}: {severity}: {escape(f.message)} "
                     f"[{f.rule}]")
    errors, warnings, _notes = _counts(findings)
    if errors or warnings:
        lines.append(f"{errors} error(s), {warnings} warning(s) in {len(files)} file(s)")
    elif files:
        lines.append(f"{len(files)} file(s) valid")
    else:
        return ""  # nothing was read: the errors saying why are all there is to say
    return "\n".join(lines) + "\n"


def format_json(findings: Sequence[Finding], files: Sequence[str], *,
                color: bool = False) -> str:
    """A stable document: {"version": 1, "files": [...], "findings": [...], "summary": {...}}."""
    errors, warnings, notes = _counts(findings)
    doc = {
        "version": JSON_FORMAT_VERSION,
        "files": list(files),
        "findings": [f.to_dict() for f in findings],
        "summary": {"errors": errors, "warnings": warnings, "notes": notes,
                    "valid": errors == 0},
    }
    return json.dumps(doc, indent=2) + "\n"


def _github_escape(value: str, *, prop: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def format_github(findings: Sequence[Finding], files: Sequence[str], *,
                  color: bool = False) -> str:
    """GitHub Actions workflow commands: `::error file=P,line=L,col=C,title=RULE::MESSAGE`."""
    out = []
    for f in findings:
        kind = _GITHUB[f.severity]
        props = (f"file={_github_escape(escape(f.path), prop=True)},line={f.line},"
                 f"col={f.column},title={_github_escape(f.rule, prop=True)}")
        out.append(f"::{kind} {props}::{_github_escape(escape_lines(f.message))}")
    return "\n".join(out) + ("\n" if out else "")


def _sarif_uri(path: str) -> str:
    # Code scanning resolves relative URIs against the repository root.
    return path[2:] if path.startswith("./") else path


def _sarif_rule(rule_id: str) -> dict[str, object]:
    entry = RULE_BY_ID.get(rule_id)
    if entry is None:  # a rule missing from the catalog is a bug; still report the finding
        return {"id": rule_id, "shortDescription": {"text": rule_id.replace("-", " ")}}
    return {"id": rule_id, "shortDescription": {"text": entry.summary},
            "defaultConfiguration": {"level": str(entry.severity)}}


def format_sarif(findings: Sequence[Finding], files: Sequence[str], *,
                 color: bool = False) -> str:
    """SARIF 2.1.0, one run, rules listed in the driver, as code scanning accepts it."""
    rule_ids = sorted({f.rule for f in findings})
    index = {rule: i for i, rule in enumerate(rule_ids)}
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "sidecar validate",
                "version": __version__,
                "informationUri": resources.schema_id(),
                "rules": [_sarif_rule(r) for r in rule_ids],
            }},
            "results": [{
                "ruleId": f.rule,
                "ruleIndex": index[f.rule],
                "level": str(f.severity),
                "message": {"text": f.message},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": _sarif_uri(f.path)},
                    "region": {"startLine": f.line, "startColumn": f.column},
                }}],
            } for f in findings],
        }],
    }
    return json.dumps(doc, indent=2) + "\n"


class Reporter(Protocol):
    """A formatter: findings and the files checked in, text out."""

    def __call__(self, findings: Sequence[Finding], files: Sequence[str], *,
                 color: bool = False) -> str: ...


# The CLI's `--format` choices are this registry's keys.
REPORTER_BY_NAME: dict[str, Reporter] = {
    "text": format_text,
    "json": format_json,
    "github": format_github,
    "sarif": format_sarif,
}
