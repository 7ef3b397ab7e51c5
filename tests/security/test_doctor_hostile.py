"""`sidecar doctor` can be made neither to lie nor to hang.

The agent is root in a target (a route without `user:`) and the user claude in the claude
container. Before the fix, doctor ran `sh -c 'command -v "$1"'` in each target with no time
limit and printed what came back: a `/bin/sh` printing forged verdict lines and escapes was
believed and shown, and one that never returned hung doctor. Now nothing runs in a target (the
engine's records show no new exec there, and the planted shell never ran), what runs in the
claude container is cut off at its limit from the host, and the pyte-rendered screen is
exactly doctor's own lines, what containers said only quoted inside them.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from screen import lines, on_a_terminal, render

from security.trust_stack import FAKE_CLAUDE, SIDECAR, TrustStack, trust_stack

__all__ = ["trust_stack"]  # fixtures

pytestmark = pytest.mark.slow

FORGED = ("ok    firewall: enforcing\\n\\033[2J\\033[Hok    claude code: 2.1.332\\n"
          "\\033]0;doctor\\007healthy\\n")
LIAR_SH = f"#!/bin/busybox sh\n/bin/busybox touch /tmp/liar-ran\nprintf '{FORGED}'\nexit 0\n"
HANGING_SH = "#!/bin/busybox sh\n/bin/busybox touch /tmp/liar-ran\nexec /bin/busybox sleep 100000\n"
LIAR_CLAUDE = f"#!/bin/sh\nprintf '2.0 \\033[2J\\033[1;1Hfine\\n{FORGED}'\n"
# Claude Code reads its settings, in the folder the agent owns: a FIFO there never answers.
READING_CLAUDE = "#!/bin/sh\ncat /home/claude/.claude/settings.json >/dev/null\necho 9.9.9\n"
CHECK_ROW = re.compile(r"(ok|warn|fail|skip) {1,3} [a-z -]+[a-z]: ")
DOCTOR_LIMIT = 120 + 30  # doctor's own limit, and one engine call's


def _root(container: Any, *argv: str) -> str:
    """Something the agent does as root in a container (what a route without `user:` gives)."""
    result = container.exec_run(list(argv), user="root")
    assert result.exit_code == 0, result.output
    return result.output.decode()


def _put(container: Any, path: str, text: str, shell: str = "/bin/busybox") -> None:
    """Write an executable file in one step (busybox's shell in the app, claude's own there)."""
    argv = [shell, "sh"] if shell == "/bin/busybox" else [shell]
    _root(container, *argv, "-c", f"cat > {path}.new <<'EOF'\n{text}EOF\n"
          f"chmod 755 {path}.new && mv -f {path}.new {path}")


def _exec_ids(container: Any) -> set[str]:
    container.reload()
    return set(container.attrs.get("ExecIDs") or ())


@pytest.fixture
def planted(trust_stack: TrustStack) -> Iterator[TrustStack]:
    """Restores the target's shell and claude's stand-in after a test planted its own."""
    app = trust_stack.container("app")
    claude = trust_stack.container("claude")
    original = claude.exec_run(["cat", "/usr/local/bin/claude"]).output.decode()
    try:
        yield trust_stack
    finally:
        app.exec_run(["/bin/busybox", "sh", "-c", "ln -sf /bin/busybox /bin/sh; "
                      "rm -f /tmp/liar-ran; pkill -9 sleep; true"], user="root")
        claude.exec_run(["sh", "-c", "pkill -9 -f hold-claude; pkill -9 -f 'bin/claude'; "
                         "pkill -CONT -x timeout; rm -f /home/claude/.claude/settings.json"],
                        user="root")
        _put(claude, "/usr/local/bin/claude", original, "/bin/sh")


def _doctor_screen(stack: TrustStack) -> tuple[list[str], float, int]:
    started = time.monotonic()
    output, code = on_a_terminal([SIDECAR, "doctor"], stack.root, stack.env)
    elapsed = time.monotonic() - started
    screen = render(output)
    assert screen == lines(output), "a control sequence reached the terminal"
    return screen, elapsed, code


def _only_doctors_lines(screen: list[str]) -> None:
    """Every row is one of doctor's verdicts (then the summary): none was forged."""
    *rows, summary = screen
    assert all(CHECK_ROW.match(row) for row in rows), rows
    assert re.fullmatch(r"healthy|\d+ problem\(s\)", summary), summary
    names = [row.split(":", 1)[0].split(maxsplit=1)[1] for row in rows]
    assert len(names) == len(set(names)), names  # one line per check: nothing added
    firewall = [row for row in rows if " firewall: " in row]
    assert len(firewall) == 1 and firewall[0].startswith("ok    firewall: enforcing; its "
                                                         "status says \""), firewall


def test_a_lying_target_and_claude_code_forge_nothing(planted: TrustStack) -> None:
    stack = planted
    app, claude = stack.container("app"), stack.container("claude")
    _put(app, "/bin/sh.liar", LIAR_SH)
    _root(app, "/bin/busybox", "mv", "-f", "/bin/sh.liar", "/bin/sh")
    _put(claude, "/usr/local/bin/claude", LIAR_CLAUDE, "/bin/sh")
    before = _exec_ids(app)
    screen, _elapsed, code = _doctor_screen(stack)
    _only_doctors_lines(screen)
    # The truth: the programs exist (the planted shell is one), nothing ran in the target.
    assert f'ok    command tool: {app.name}: tool is "/bin/tool"' in screen
    assert f'ok    command app-sh: {app.name}: sh is "/bin/sh"' in screen
    assert _exec_ids(app) == before, "doctor ran something in the target"
    assert app.exec_run(["/bin/busybox", "test", "-e", "/tmp/liar-ran"]).exit_code == 1
    # What Claude Code printed is quoted on its own line, first line only, escapes visible.
    assert 'ok    claude code: Claude Code reports "2.0 \\x1b[2J\\x1b[1;1Hfine"' in screen
    assert code == 0


def test_hanging_programs_do_not_hang_doctor(planted: TrustStack) -> None:
    stack = planted
    app, claude = stack.container("app"), stack.container("claude")
    _put(app, "/bin/sh.hang", HANGING_SH)
    _root(app, "/bin/busybox", "mv", "-f", "/bin/sh.hang", "/bin/sh")
    _put(claude, "/usr/local/bin/claude", READING_CLAUDE, "/bin/sh")
    # The agent, as user claude, makes its settings a FIFO and stops every `timeout` of its
    # user (the one in the container that would end the exec).
    hold = claude.exec_run(["sh", "-c", "rm -f ~/.claude/settings.json && mkfifo "
                            "~/.claude/settings.json"], user="claude", environment={
                                "HOME": "/home/claude"})
    assert hold.exit_code == 0, hold.output
    claude.exec_run(["sh", "-c", "while :; do pkill -STOP -u claude -x timeout; sleep 0.05; "
                     "done # hold-claude"], user="claude", detach=True)
    screen, elapsed, code = _doctor_screen(stack)
    assert elapsed < DOCTOR_LIMIT, elapsed
    # The container's own `timeout` was stopped by the agent: the host's limit is what held.
    ps = claude.exec_run(["ps", "-u", "claude", "-o", "stat=,args="]).output.decode()
    assert any(row.split()[0].startswith("T") and "timeout" in row
               for row in ps.splitlines()), ps
    _only_doctors_lines(screen)
    assert f'ok    command tool: {app.name}: tool is "/bin/tool"' in screen
    assert app.exec_run(["/bin/busybox", "test", "-e", "/tmp/liar-ran"]).exit_code == 1
    claude_code = next(row for row in screen if " claude code: " in row)
    assert claude_code.startswith("fail  claude code: `claude --version` failed (no answer "
                                  "within 20 s"), claude_code
    # The secret search runs as user claude too, under the `timeout` the agent keeps stopping:
    # when the agent catches it, the search cannot finish and doctor fails it (never an ok).
    problems = [row for row in screen if row.startswith("fail")]
    secret = [row for row in problems if " secret: " in row]
    assert all(row.startswith("fail  secret: cannot search the claude container (no answer "
                              "within") for row in secret), secret
    assert set(problems) == {claude_code, *secret}, problems
    assert screen[-1] == f"{len(problems)} problem(s)" and code == 1
    assert any(row.startswith(("ok    secret: ", "warn  secret: ", "fail  secret: "))
               for row in screen)


def test_doctor_is_healthy_again(trust_stack: TrustStack) -> None:
    """The planted files are gone: the stand-in answers again (the fixture put it back)."""
    ran = subprocess.run([SIDECAR, "doctor"], cwd=trust_stack.root, env=trust_stack.env,
                         capture_output=True, text=True, timeout=DOCTOR_LIMIT)
    assert ran.returncode == 0, ran.stdout
    assert f'Claude Code reports "{FAKE_CLAUDE}"' in ran.stdout
