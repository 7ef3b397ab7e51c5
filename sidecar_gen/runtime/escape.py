"""Text from files and containers made safe to print: every non-printable character visible.

The agent writes the project's files (compose keys and values, `.env`, file names) and controls
what runs in the target containers, and all of that reaches the user's terminal through
sidecar's output. A terminal obeys what it is sent: a clear-screen, a cursor move or an erased
line can hide the one line of a diff that matters, a right-to-left override can show
`/:/host` as something else, a zero-width character can make two names look equal. So every
character that is not printable is shown as an escape instead (`\\x1b`, `\\u202e`,
`\\U000e0001`; `\\t`, `\\n`, `\\r` by name): the controls (C0, DEL, C1), format characters
(bidi controls, zero-width joiners, soft hyphens), line and paragraph separators, every space
but the ASCII one, private-use and unassigned code points and lone surrogates (Python's
`str.isprintable`). A line longer than `MAX_LINE` characters is cut, saying how much was left
out: a 100 KB line would otherwise push the rest of the screen away.

Backslashes are not doubled: paths and line continuations stay readable, and the escape is for
display only (every comparison is made on the raw text).

Standard library only, and nothing imported: the dispatcher uses it on its error path.
"""

from __future__ import annotations

MAX_LINE = 1000
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _code(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    point = ord(char)
    if point < 0x100:
        return f"\\x{point:02x}"
    if point < 0x10000:
        return f"\\u{point:04x}"
    return f"\\U{point:08x}"


def escape(text: str, limit: int | None = MAX_LINE) -> str:
    """`text` as one line that a terminal shows as it is: every non-printable character (line
    breaks included) as an escape, cut after `limit` characters (None: never) with a count of
    the characters left out."""
    if text.isprintable() and (limit is None or len(text) <= limit):
        return text
    out: list[str] = []
    width = 0
    for index, char in enumerate(text):
        piece = char if char.isprintable() else _code(char)
        if limit is not None and width + len(piece) > limit:
            return "".join(out) + f"…(+{len(text) - index} characters)"
        out.append(piece)
        width += len(piece)
    return "".join(out)


def escape_lines(text: str, limit: int | None = MAX_LINE) -> str:
    """`text` with its line breaks (`\\n`) kept and each line escaped and cut as `escape` does
    (a `\\r`, a vertical tab or a line separator is shown, not obeyed)."""
    return "\n".join(escape(line, limit) for line in text.split("\n"))


def quote(text: str, limit: int | None = MAX_LINE) -> str:
    """`text` in double quotes, escaped, its own quotes and backslashes escaped too: what a
    container or a file said, shown so that it cannot end the quote or pass for our words."""
    inner = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escape(inner, limit)}"'
