"""The dispatcher's one failure type: a clear line and an exit code (stdlib-only, no enum)."""

from __future__ import annotations

# Exit codes of the dispatcher (the README documents them; they match sidecar_gen.errors).
ENGINE = 125
NOT_EXECUTABLE = 126
NOT_FOUND = 127
TIMEOUT = 124


class DispatchError(Exception):
    """An expected failure: `message` is one line, `exit_code` what the dispatcher returns."""

    def __init__(self, message: str, exit_code: int = ENGINE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message
