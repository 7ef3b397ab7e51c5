"""Fixtures of the hostile-agent suite, shared with the suites they extend.

The claude-container attacks (test_container_*.py) run in the firewall suite's offline
internet (`internet`, `start_claude`: tests/firewall/conftest.py).
"""

from __future__ import annotations

from firewall.conftest import internet, start_claude

__all__ = ["internet", "start_claude"]
