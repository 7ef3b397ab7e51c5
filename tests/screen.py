"""What a user sees: output rendered on a terminal emulator (pyte), as rows of text.

A terminal obeys control sequences (clear screen, cursor up, erase line, titles) and drops
format characters. Comparing the rendered rows with the text expected on screen proves that
nothing in the output steered the terminal: a single raw escape moves, hides or eats text.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
from collections.abc import Callable
from pathlib import Path

import pyte


def render(output: str | bytes, columns: int = 1200, rows: int | None = None) -> list[str]:
    """The screen after `output` (a pty's bytes, or text whose `\\n` a terminal would turn into
    a new line), each row without its trailing blanks, without the empty rows at the end.

    The screen is wide enough that no line of ours wraps (lines are cut at 1000 characters)
    and tall enough that nothing scrolls away, unless `rows` says otherwise."""
    if isinstance(output, bytes):
        output = output.decode("utf-8", "replace")
    text = output.replace("\r\n", "\n").replace("\n", "\r\n")
    screen = pyte.Screen(columns, rows or text.count("\n") + 2)
    pyte.Stream(screen).feed(text)
    shown = [line.rstrip() for line in screen.display]
    while shown and not shown[-1]:
        shown.pop()
    return shown


def lines(text: str | bytes) -> list[str]:
    """`text` as the rows `render` returns for it when nothing in it is a control."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    shown = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while shown and not shown[-1]:
        shown.pop()
    return shown


def on_a_terminal(argv: list[str], cwd: Path, env: dict[str, str],
                  answer: bytes | Callable[[bytes], bytes] | None = None) -> tuple[bytes, int]:
    """Run `argv` on a pty (NO_COLOR): its output and exit code. When it asks `[y/N]`, type
    `answer`, or what `answer(output so far)` says (a user who reads the screen)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, cwd=cwd, env={**env, "NO_COLOR": "1"}, stdin=slave,
                            stdout=slave, stderr=slave)
    os.close(slave)
    output = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        assert ready, output[-2000:]
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        output += data
        # The whole prompt: click writes "[y/N]:" and then, through input(), the space; typed
        # before that space arrives, the answer's echo would land ahead of it.
        if answer is not None and output.endswith(b"[y/N]: "):
            os.write(master, answer(output) if callable(answer) else answer)
            answer = None
    os.close(master)
    return output, proc.wait(timeout=60)
