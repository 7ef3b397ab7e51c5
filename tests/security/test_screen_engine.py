"""Proven by its effect: a forged approval screen no longer gets the agent
the host's files.

The agent writes `compose.override.yaml` through a routed command: `/:/host` for its service,
and a key that clears the screen and paints a harmless diff over it. The user runs `sidecar
trust` on a terminal and approves when what the screen shows is harmless; then `sidecar up`.
Before the fix the screen showed the fake diff, the user approved, and the agent wrote a file
on the host through the routed command. Now the screen shows the volume (and the key, escaped),
the user declines, and no file appears on the host.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from screen import lines, on_a_terminal, render

from security.test_screen import CLEAR, FORGED
from security.trust_stack import SIDECAR, TrustStack, trust_stack

__all__ = ["trust_stack"]  # fixtures

pytestmark = pytest.mark.slow

OVERRIDE = ('services:\n  app:\n    volumes: ["/:/host"]\n'
            f"x-zz:\n  {json.dumps(CLEAR + FORGED)}: x\n")


def test_a_forged_approval_screen_does_not_reach_the_host(trust_stack: TrustStack) -> None:
    stack = trust_stack
    marker = Path("/tmp") / f"sidecar-pwned-{uuid.uuid4().hex[:10]}"
    wrote = stack.routed("cat > /app/compose.override.yaml", input_=OVERRIDE)
    assert wrote.returncode == 0, wrote
    seen: list[list[str]] = []

    def user(output: bytes) -> bytes:
        """Reads the screen; approves what looks harmless."""
        seen.append(render(output))
        return b"n\n" if any("/host" in row for row in seen[-1]) else b"y\n"

    try:
        output, code = on_a_terminal([SIDECAR, "trust"], stack.root, stack.env, answer=user)
        if code == 0:
            up = stack.sidecar("up")
            assert up.returncode == 0, up.stdout + up.stderr
            stack.wait_ready()
        stack.routed(f"echo pwned > /host{marker}")
        # The effect on the host: nothing written.
        assert not marker.exists(), f"the agent wrote a file on the host; the user saw {seen}"
        assert code == 1
        screen = seen[0]
        assert screen == lines(output.split(b"Approve this? [y/N]:")[0] + b"Approve this? "
                               b"[y/N]:"), "a control sequence reached the terminal"
        assert '+services.app.volumes[1].target: "/host"' in screen
        assert any(row.startswith("+x-zz.\\x1b[2J\\x1b[3J\\x1b[H") for row in screen), screen
    finally:
        marker.unlink(missing_ok=True)
        stack.restore()

