"""`sidecar doctor`: is the set-up working? One line per check, each with how to fix it.

`run_doctor(target)` takes a `ComposeTarget` (folder, optional project name, environment), so
the same checks run for the main stack and for a session (its worktree, `-p <project>-NAME`, and
the policy stored when it was made in place of the project's approval).
Host-side checks live in `host`, checks of the running stack (through the Engine API, execs
included) in `stack`, of the credential broker and the secret's absence in `brokercheck` (with
`secretprobe`, the program it runs as user claude), the ways of asking a container without
trusting it in `peek`. Checks that need what an earlier one could not get are skipped, saying
which one to fix first.

Its report cannot be forged: every field is escaped (`runtime.escape`) when it is added, so
nothing from a file or a container can start a line of its own, and what a container said is
shown quoted after our words. Doctor as a whole has a time limit (`DOCTOR_TIMEOUT`): a check
that would wait past it is skipped, saying so.

Owns: the checks and their report. May import: `compose`, `host`, `session.store`, `trust`
(the approval it compares with), `render` (what render would change), `config`, `model`,
`fileplan`, `fsutil`, `runtime`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from sidecar_gen.compose.cli import ComposeTarget
from sidecar_gen.doctor.peek import Deadline
from sidecar_gen.errors import ExitCode
from sidecar_gen.runtime.escape import escape

DOCTOR_TIMEOUT = 120.0  # seconds for the whole run (each exec in claude: stack.EXEC_TIMEOUT)
ENGINE_TIMEOUT = 30  # seconds for one Engine API answer


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
    deadline: Deadline = field(default_factory=lambda: Deadline(DOCTOR_TIMEOUT))

    def add(self, name: str, status: Status, message: str, fix: str = "") -> CheckResult:
        """Append one result (every field escaped, one line each) and return it."""
        result = CheckResult(escape(name), status, escape(message), escape(fix))
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
    from sidecar_gen.doctor import brokercheck, host, stack
    from sidecar_gen.session.store import SessionStore, record_for_path

    deadline = Deadline(DOCTOR_TIMEOUT)
    record = record_for_path(target.directory, target.environ())
    if session is not None:
        source = Path(record.source) if record else target.directory
        record = SessionStore(source, target.environ()).load(session)
    if record is None:
        report = DoctorReport(target, deadline=deadline)
        context = host.run_host_checks(report)
    else:
        folder = SessionStore(Path(record.source), target.environ()).folder(record.name)
        report = DoctorReport(ComposeTarget(record.project_dir, record.compose_project,
                                            target.env), deadline=deadline)
        context = host.run_session_checks(report, record, folder)
    stack.run_stack_checks(report, context)
    brokercheck.run_broker_checks(report, context)
    return report
