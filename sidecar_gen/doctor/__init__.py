"""`sidecar doctor`: is the set-up working? One line per check, each with how to fix it.

`run_doctor(target)` takes a `ComposeTarget` (folder, optional project name, environment), so
the same checks run for the main stack and for a session (another folder, `-p <project>-NAME`).
Host-side checks live in `host`, checks of the running stack (through the Engine API, execs
included) in `stack`. Checks that need what an earlier one could not get are skipped, saying
which one to fix first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sidecar_gen.composecli import ComposeTarget
from sidecar_gen.errors import ExitCode


class Status(StrEnum):
    """The outcome of one check."""

    OK = "ok"
    WARN = "warn"  # works, but worth knowing (e.g. the firewall is disabled by config)
    FAIL = "fail"
    SKIP = "skip"  # could not be checked because an earlier check failed


@dataclass(frozen=True)
class CheckResult:
    """One line of the report."""

    name: str
    status: Status
    message: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        """The JSON form."""
        return {"check": self.name, "status": str(self.status), "message": self.message,
                "fix": self.fix}


@dataclass
class DoctorReport:
    """Every check, in order."""

    target: ComposeTarget
    project: str = ""
    results: list[CheckResult] = field(default_factory=list)

    def add(self, name: str, status: Status, message: str, fix: str = "") -> CheckResult:
        """Append one result and return it."""
        result = CheckResult(name, status, message, fix)
        self.results.append(result)
        return result

    @property
    def healthy(self) -> bool:
        """True when no check failed."""
        return all(r.status is not Status.FAIL for r in self.results)

    @property
    def exit_code(self) -> int:
        """0 healthy, 1 problems."""
        return int(ExitCode.OK if self.healthy else ExitCode.FINDINGS)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`sidecar doctor --format json`)."""
        return {"version": 1, "directory": str(self.target.directory),
                "project": self.project, "healthy": self.healthy,
                "checks": [r.to_dict() for r in self.results]}


def run_doctor(target: ComposeTarget) -> DoctorReport:
    """Run every check against the project `target` names."""
    from sidecar_gen.doctor import host, stack

    report = DoctorReport(target)
    context = host.run_host_checks(report)
    stack.run_stack_checks(report, context)
    return report
