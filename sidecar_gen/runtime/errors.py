"""The documented exit codes, and the dispatcher's one failure type (stdlib-only, no enum).

These numbers are the one source: `sidecar_gen.errors.ExitCode` is built from them, the README
lists them, and the tests assert them.
"""

from __future__ import annotations

OK = 0
FINDINGS = 1  # validate: findings; render --check: would change; a check failed
USAGE = 2  # bad flags; a missing, unreadable or non-UTF-8 file; a refused overwrite
INTERNAL = 3  # a bug: the message says how to get the traceback
TIMEOUT = 124  # dispatcher: the command's timeout expired
ENGINE = 125  # dispatcher: Docker engine, gate or configuration error
NOT_EXECUTABLE = 126
NOT_FOUND = 127
SIGNAL_BASE = 128  # 128+N: terminated by (or because we received) signal N
INTERRUPTED = SIGNAL_BASE + 2  # SIGINT
BROKEN_PIPE = SIGNAL_BASE + 13  # SIGPIPE: the reader of our output went away


class DispatchError(Exception):
    """An expected failure: `message` is one line, `exit_code` what the dispatcher returns."""

    def __init__(self, message: str, exit_code: int = ENGINE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message
