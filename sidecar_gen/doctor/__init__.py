"""`sidecar doctor`: is the set-up working? One line per check, each with how to fix it.

`run_doctor(target)` takes a `ComposeTarget` (folder, optional project name, environment), so
the same checks run for the main stack and for a session (its worktree, `-p <project>-NAME`, and
the policy stored when it was made in place of the project's approval).
Host-side checks live in `host`, checks of the running stack (through the Engine API, execs
included) in `stack`. Checks that need what an earlier one could not get are skipped, saying
which one to fix first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
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


def run_doctor(target: ComposeTarget, session: str | None = None) -> DoctorReport:
    """Run every check against the project `target` names, or against its session `session`
    (also when `target` is inside a session's worktree and `session` is None)."""
    from sidecar_gen.doctor import host, stack
    from sidecar_gen.sessionstore import Store, record_for_path

    record = record_for_path(target.directory, target.environ())
    if session is not None:
        source = Path(record.source) if record else target.directory
        record = Store(source, target.environ()).load(session)
    if record is None:
        report = DoctorReport(target)
        context = host.run_host_checks(report)
    else:
        folder = Store(Path(record.source), target.environ()).folder(record.name)
        report = DoctorReport(ComposeTarget(record.project_dir, record.compose_project,
                                            target.env))
        context = host.run_session_checks(report, record, folder)
    stack.run_stack_checks(report, context)
    return report
