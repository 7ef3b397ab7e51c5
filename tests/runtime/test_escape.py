"""The one escaping module: what a terminal would obey is shown instead, long lines are cut."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar_gen.runtime.escape import MAX_LINE, escape, escape_lines, quote

REPO_ROOT = __file__.rsplit("/tests/", 1)[0]


@pytest.mark.parametrize(("raw", "shown"), [
    ("plain text: /a/b, é, 日本, emoji 🐳", "plain text: /a/b, é, 日本, emoji 🐳"),
    ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),            # clear screen, cursor home
    ("a\x1b[1A\x1b[2Kb", "a\\x1b[1A\\x1b[2Kb"),       # cursor up, erase line
    ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),         # OSC window title
    ("\x9b2J", "\\x9b2J"),                               # C1 CSI
    ("del\x7f", "del\\x7f"),
    ("tab\tcr\rlf\n", "tab\\tcr\\rlf\\n"),
    ("/:/\u202ehost", "/:/\\u202ehost"),                 # right-to-left override
    ("\u2066iso\u2069", "\\u2066iso\\u2069"),            # bidi isolates
    ("a\u200db\u200bc\ufeff", "a\\u200db\\u200bc\\ufeff"),  # zero-width joiner, space, BOM
    ("soft\xadhyphen", "soft\\xadhyphen"),
    ("nbsp\xa0here", "nbsp\\xa0here"),
    ("line\u2028para\u2029", "line\\u2028para\\u2029"),
    ("private\ue000", "private\\ue000"),
    ("unassigned\U000e0001tag", "unassigned\\U000e0001tag"),
    ("surrogate\udcff", "surrogate\\udcff"),
    ("nul\x00", "nul\\x00"),
])
def test_every_non_printable_character_is_shown(raw: str, shown: str) -> None:
    assert escape(raw) == shown


def test_a_long_line_is_cut_with_a_count() -> None:
    line = "x" * 100_000
    cut = escape(line)
    assert cut == "x" * MAX_LINE + "…(+99000 characters)"
    assert escape("\x1b" * 1000, limit=10) == "\\x1b\\x1b…(+998 characters)"
    assert escape(line, None) == line
    assert escape("x" * MAX_LINE) == "x" * MAX_LINE


def test_lines_keep_their_breaks_and_are_cut_one_by_one() -> None:
    text = "a\x1b[2J\n" + "y" * 2000 + "\nb\r\u2028c"
    assert escape_lines(text).split("\n") == [
        "a\\x1b[2J", "y" * MAX_LINE + "…(+1000 characters)", "b\\r\\u2028c"]


def test_quote_cannot_be_closed_from_inside() -> None:
    assert quote('ok" \nfail  firewall: \\') == '"ok\\" \\nfail  firewall: \\\\"'
    assert quote("2.1.332 (Claude Code)") == '"2.1.332 (Claude Code)"'


@given(st.text())
def test_escaped_text_is_printable_and_escaping_is_idempotent(text: str) -> None:
    shown = escape(text, None)
    assert shown.isprintable()
    assert escape(shown, None) == shown
    lines = escape_lines(text, None)
    assert lines.replace("\n", "").isprintable()
    assert lines.count("\n") == text.count("\n")


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=50))
def test_printable_text_is_left_alone(text: str) -> None:
    if text.isprintable():
        assert escape(text) == text


def test_it_imports_nothing() -> None:
    """The dispatcher imports it on its error path: it must cost nothing more."""
    script = ("import sys\n"
              f"sys.path.insert(0, {REPO_ROOT!r})\n"
              "before = set(sys.modules)\n"
              "import sidecar_gen.runtime.escape\n"
              "print(' '.join(sorted(set(sys.modules) - before)))\n")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True,
                         text=True, check=True).stdout.split()
    ours = {"__future__", "sidecar_gen", "sidecar_gen.runtime", "sidecar_gen.runtime.escape"}
    assert set(out) <= ours, out
