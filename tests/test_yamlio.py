"""Hostile input stays bounded and never raises: bombs, depth, size, junk, and a fuzzer."""

from __future__ import annotations

import re
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar_gen.config import bridge_from_text
from sidecar_gen.validate.bridge import validate_text
from sidecar_gen.validate.findings import Finding, Severity
from sidecar_gen.validate.rules import RULE_BY_ID
from sidecar_gen.yamlio import MAX_BYTES


def rules(text: str) -> set[str]:
    return {f.rule for f in validate_text(text, "b.yaml")}


def test_billion_laughs_is_refused_quickly() -> None:
    lines = ['version: "1"', "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    lines.append("commands: {php: {container: app, exec: *a9}}")
    start = time.monotonic()
    found = rules("\n".join(lines) + "\n")
    assert "yaml-too-large" in found
    assert time.monotonic() - start < 5  # bounded work, not a benchmark


def test_deep_nesting_is_refused() -> None:
    text = 'version: "1"\ncommands: ' + "[" * 5000 + "]" * 5000 + "\n"
    assert rules(text) & {"yaml-too-deep", "yaml-syntax"}


def test_deep_block_nesting_is_refused() -> None:
    text = 'version: "1"\ncommands:\n' + "".join("  " * i + f"k{i}:\n" for i in range(1, 200))
    assert "yaml-too-deep" in rules(text)


def test_huge_file_is_refused_without_parsing() -> None:
    text = "# " + "x" * MAX_BYTES + "\n"
    assert rules(text) == {"file-too-large"}


def test_non_mapping_documents() -> None:
    for text in ("42\n", "[1, 2]\n", '"just a string"\n', "null\n"):
        assert rules(text), text
    assert rules("") == {"empty-document"}


def test_binary_junk_is_a_finding() -> None:
    assert rules("\x00\x01\x02version: \x07\n") == {"yaml-syntax"}


def test_multiple_documents() -> None:
    assert rules('version: "1"\n---\nversion: "1"\n') == {"multiple-documents"}


def test_tags_and_anchors_do_not_escape(tmp_path: Path) -> None:
    # A python tag on a mapping is read as the plain mapping it tags: valid, nothing constructed.
    text = ('version: "1"\ncontainers: {app: x}\ncommands:\n'
            '  php: !!python/object:os.system {container: app, exec: php}\n')
    assert validate_text(text, "b.yaml") == []
    # One that would run a command if constructed: it stays data (a list, so a type error),
    # and the command never ran.
    canary = tmp_path / "pwned"
    text = ('version: "1"\ncommands:\n  php: !!python/object/apply:os.system '
            f'["touch {canary}"]\n')
    assert [(f.line, f.rule) for f in validate_text(text, "b.yaml")] == [(3, "schema-type")]
    assert not canary.exists()


def _holds(text: str, findings: list[Finding]) -> None:
    """What every answer to any text must satisfy: each finding names a catalogued rule and a
    position inside the text (a line that exists, a column on it or just past its end), with a
    one-line message; the same text gets the same answer; and no error means the file is one
    the commands can load."""
    lines = re.split(r"\r\n|\r|\n", text)
    for f in findings:
        assert f.rule in RULE_BY_ID, f
        assert f.message and "\n" not in f.message, f
        assert 1 <= f.line <= len(lines), f
        assert 1 <= f.column <= len(lines[f.line - 1]) + 1, f
    assert validate_text(text, "fuzz.yaml") == findings
    if not any(f.severity is Severity.ERROR for f in findings):
        bridge_from_text(text, "fuzz.yaml")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_fuzz_random_text_never_raises(text: str) -> None:
    _holds(text, validate_text(text, "fuzz.yaml"))


YAML_ATOMS = st.sampled_from([
    'version: "1"\n', "commands:\n", "  php:\n", "    container: app\n", "    exec: php\n",
    "    exec: [a, b]\n", "    paths:\n", "      /w: /x\n", "  &a x: *a\n", "- 1\n", "{", "}",
    "[", "]", ": ", "---\n", "!!binary |\n", "  \t\n", "? complex\n", "<<: *a\n", "'", '"',
    "sidecar: {viewer: {port: 1}}\n", "containers: {app: c}\n", "\u00e9\n", "#c\n",
])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(YAML_ATOMS, max_size=30))
def test_fuzz_yaml_like_text_never_raises(parts: list[str]) -> None:
    text = "".join(parts)
    _holds(text, validate_text(text, "fuzz.yaml"))
