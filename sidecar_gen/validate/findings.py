"""Findings: what validation reports, as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    """How bad a finding is. Warnings fail validation only with --strict; a note never does
    (it says what a valid file means)."""

    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True, order=True)
class Finding:
    """One problem in one file, at a 1-based line and column."""

    path: str
    line: int
    column: int
    rule: str
    message: str
    severity: Severity = Severity.ERROR
    json_path: str = field(default="$", compare=False)

    def to_dict(self) -> dict[str, object]:
        """Return the stable JSON form documented in the README."""
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "severity": str(self.severity),
            "rule": self.rule,
            "message": self.message,
            "json_path": self.json_path,
        }


def json_path_of(parts: tuple[str | int, ...] | list[str | int]) -> str:
    """Render a path of keys and indexes as a JSONPath-like string: `$.commands.php.exec[0]`."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.replace("_", "").replace("-", "").isalnum():
            out += f".{part}"
        else:
            escaped = part.replace("\\", "\\\\").replace("'", "\\'")
            out += f"['{escaped}']"
    return out
