"""The dispatcher's audit log: one JSON line per routed command (`SIDECAR_AUDIT_LOG`)."""

from __future__ import annotations

import os
import time

from sidecar_gen.runtime import jsonlite
from sidecar_gen.runtime.names import AUDIT_LOG_ENV

# typing and collections.abc cost milliseconds to import on every command: types are for mypy
# only (mypy treats any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from sidecar_gen.runtime.plan import ExecPlan


def timestamp(now: float | None = None) -> str:
    """UTC time with milliseconds, `2026-11-27T05:31:43.120Z` (the format of every log here)."""
    value = time.time() if now is None else now
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(value))
            + f".{int(value * 1000) % 1000:03d}Z")


def append(path: str, record: dict[str, Any]) -> str | None:
    """Append `record` as one JSON line; return an error text instead of raising."""
    line = (jsonlite.dumps(record) + "\n").encode("ascii")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)  # one write with O_APPEND: lines of concurrent commands never mix
        finally:
            os.close(fd)
    except OSError as exc:
        return f"cannot write the audit log {path}: {exc.strerror}"
    return None


def log_run(environ: Mapping[str, str], plan: ExecPlan, code: int | None, signum: int | None,
            duration: float) -> str | None:
    """Append the record of one routed command to `$SIDECAR_AUDIT_LOG`, when it is set.

    `signal` is the signal the dispatcher received (then `exit_code` is 128+N); a timeout is
    exit code 124 with no signal. Returns an error text when the log cannot be written.
    """
    path = environ.get(AUDIT_LOG_ENV)
    if not path:
        return None
    return append(path, {
        "time": timestamp(), "command": plan.name, "argv": list(plan.argv),
        "container": plan.container, "workdir": plan.workdir, "user": plan.user,
        "exit_code": code, "signal": signum, "duration_ms": int(duration * 1000),
    })
