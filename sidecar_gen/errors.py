"""One error hierarchy and the documented exit codes.

Expected failures raise a `SidecarError` subclass; the CLI prints its one-line message and exits
with its code. Messages are built from fields so callers never format them by hand.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of every `sidecar` command (documented in the README)."""

    OK = 0
    FINDINGS = 1  # validate: findings; render --check: something would change
    USAGE = 2  # bad flags, missing/unreadable/non-UTF-8 file, refused overwrite
    INTERNAL = 3  # a bug: the message says how to get the traceback
    ENGINE = 125  # Docker engine or gate error (dispatcher)
    NOT_EXECUTABLE = 126
    NOT_FOUND = 127
    INTERRUPTED = 130


class SidecarError(Exception):
    """Base of all expected failures: one clear line, one exit code."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, *, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class InputError(SidecarError):
    """A file the user named is missing, unreadable or not text."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}", exit_code=ExitCode.USAGE)
        self.path = path
        self.reason = reason


class ConfigError(SidecarError):
    """bridge.yaml (or a compose file) is invalid; `findings` holds the details."""

    def __init__(self, path: str, summary: str, findings: list[object] | None = None) -> None:
        super().__init__(f"{path}: {summary}", exit_code=ExitCode.FINDINGS)
        self.path = path
        self.findings = findings or []


class EngineError(SidecarError):
    """The Docker engine could not be reached or refused a request."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=ExitCode.ENGINE)
