"""No core dump, no debugger: the process that holds the secrets cannot be read from outside.

Run before the secrets are read. RLIMIT_CORE 0 means a crash writes no core file;
PR_SET_DUMPABLE 0 means no core either, and that processes of the same user cannot ptrace the
broker or read its /proc/PID/mem, environ or fds (those files become root's).
"""

from __future__ import annotations

import ctypes
import resource

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3


def forbid_core_dumps() -> list[str]:
    """Apply both; return what could not be applied (empty when all holds)."""
    problems: list[str] = []
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (OSError, ValueError) as exc:
        problems.append(f"RLIMIT_CORE: {exc}")
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            problems.append(f"PR_SET_DUMPABLE: errno {ctypes.get_errno()}")
    except (OSError, AttributeError) as exc:
        problems.append(f"PR_SET_DUMPABLE: {exc}")
    return problems


def dumpable() -> int:
    """The process's dumpable flag (0 once `forbid_core_dumps` ran), -1 when unknown."""
    try:
        return int(ctypes.CDLL(None).prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))
    except (OSError, AttributeError):
        return -1
