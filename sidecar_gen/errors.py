"""One error hierarchy and the documented exit codes.

Expected failures raise a `SidecarError` subclass; the CLI prints its one-line message and exits
with its code. Messages are built from fields so callers never format them by hand.
"""

from __future__ import annotations

from enum import IntEnum

from sidecar_gen.runtime import errors as codes


class ExitCode(IntEnum):
    """Exit codes of every `sidecar` command (documented in the README; values in `codes`)."""

    OK = codes.OK
    FINDINGS = codes.FINDINGS
    USAGE = codes.USAGE
    INTERNAL = codes.INTERNAL
    INTERRUPTED = codes.INTERRUPTED
    BROKEN_PIPE = codes.BROKEN_PIPE


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


class Interrupted(BaseException):
    """sidecar received `signum` (SIGTERM, SIGINT, SIGHUP) while a host command ran; the
    command's process group was stopped. Not a SidecarError: nothing may swallow it on the
    way out. The CLI exits with 128+signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum
