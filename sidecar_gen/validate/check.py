"""`sidecar validate` as a core action: options in, findings and an exit code out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sidecar_gen.compose.project import ProjectNames, load_project
from sidecar_gen.config import find_config
from sidecar_gen.errors import ExitCode, InputError
from sidecar_gen.runtime.names import CONFIG_DIR
from sidecar_gen.validate.bridge import Report, validate_file
from sidecar_gen.validate.findings import Finding, Severity


@dataclass
class CheckOptions:
    """What the CLI passes to `run_check`."""

    files: list[Path] = field(default_factory=list)
    # Compose files, like `docker compose -f` (and `sidecar init --compose`); empty: the files
    # compose itself loads in each bridge.yaml's project folder.
    compose: tuple[Path, ...] = ()
    strict: bool = False


@dataclass
class ValidationResult:
    """Findings for every readable file, the unreadable ones, and the exit code."""

    report: Report
    unreadable: list[str]
    exit_code: int


def project_dir_of(config: Path) -> Path:
    """The project a bridge.yaml belongs to: the parent of its `.sidecar/` folder."""
    parent = config.resolve().parent
    return parent.parent if parent.name == CONFIG_DIR else parent


def _names_for(config: Path, compose: tuple[Path, ...]) -> tuple[ProjectNames | None,
                                                                  Finding | None]:
    try:
        # What docker compose reads in the project folder (override files, COMPOSE_FILE,
        # .env), or the files given, read as `sidecar init` reads them.
        project = load_project(project_dir_of(config), compose, prefer_cli=False)
        return (project.names() if project else None), None
    except InputError as exc:
        if compose:
            raise  # the files named on the command line: a usage error, as init says
        return None, Finding(str(config), 1, 1, "compose-unreadable",
                             f"container names not checked: {exc.message}", Severity.WARNING)


def run_check(options: CheckOptions) -> ValidationResult:
    """Validate every file; an unreadable file does not stop the others."""
    files = options.files or [find_config()]
    report = Report()
    unreadable: list[str] = []
    for path in files:
        try:
            names, note = _names_for(path, options.compose)
            findings = validate_file(path, names)
        except InputError as exc:
            unreadable.append(exc.message)
            continue
        report.files.append(str(path))
        report.findings.extend(findings)
        if note:
            report.findings.append(note)
    if unreadable:
        code = ExitCode.USAGE
    elif report.failed(strict=options.strict):
        code = ExitCode.FINDINGS
    else:
        code = ExitCode.OK
    return ValidationResult(report=report, unreadable=unreadable, exit_code=int(code))
