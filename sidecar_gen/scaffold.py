"""`sidecar init`: propose bridge.yaml and allowed-domains.txt from the real compose project."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from sidecar_gen import __version__, resources, templating
from sidecar_gen.compose import ComposeProject, Service, find_compose_file, load_project
from sidecar_gen.config import CONFIG_DIR, CONFIG_NAME
from sidecar_gen.fsutil import write_atomic
from sidecar_gen.model import DEFAULT_WORKSPACE
from sidecar_gen.toolchains import allowed_domains, commands_for

DOMAINS_NAME = "allowed-domains.txt"


class FileStatus(StrEnum):
    """What happened to one generated file."""

    CREATED = "created"
    CHANGED = "changed"
    OK = "ok"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class ProposedCommand:
    """One command init proposes."""

    name: str
    service: str
    exec: str
    workdir: str | None
    paths: tuple[tuple[str, str], ...]


@dataclass
class Proposal:
    """Everything init derived from the project, before rendering."""

    project: ComposeProject | None
    workspace: str
    containers: dict[str, str] = field(default_factory=dict)
    commands: list[ProposedCommand] = field(default_factory=list)
    unrouted: list[Service] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def default_hint(self) -> str:
        """The container to suggest as default_container: the one holding the whole project."""
        for command in self.commands:
            if any(claude == self.workspace for claude, _ in command.paths):
                return command.service
        return next(iter(self.containers), "app")


@dataclass(frozen=True)
class FileResult:
    """The outcome for one file."""

    path: Path
    status: FileStatus
    reason: str = ""


@dataclass
class InitResult:
    """What `run_init` did."""

    proposal: Proposal
    files: list[FileResult]


def _mappings(service: Service, project_dir: Path, workspace: str) -> list[tuple[str, str]]:
    """Claude path -> container path for each bind mount of the project or a folder in it."""
    out = []
    root = project_dir.resolve()
    for bind in service.binds:
        source = Path(bind.source)
        try:
            rel = source.relative_to(root)
        except ValueError:
            continue
        claude = posixpath.join(workspace, rel.as_posix()) if rel.parts else workspace
        out.append((posixpath.normpath(claude), bind.target))
    return sorted(set(out), key=lambda kv: (-len(kv[0]), kv[0]))


def propose(project: ComposeProject | None, workspace: str = DEFAULT_WORKSPACE) -> Proposal:
    """Derive containers, commands and path mappings from a compose project."""
    proposal = Proposal(project=project, workspace=workspace)
    if project is None:
        return proposal
    taken: dict[str, str] = {}
    # Sorted, so the YAML reader and `docker compose config` (which sorts) propose the same file.
    for service in sorted(project.services.values(), key=lambda s: s.name):
        names = commands_for(service.image, service.name)
        if not names:
            proposal.unrouted.append(service)
            continue
        paths = tuple(_mappings(service, project.directory, workspace))
        root_target = next((target for claude, target in paths if claude == workspace), None)
        # Without a working_dir or a mount of the whole project, a single mount is the obvious
        # place to run in (a cwd outside every mapping would not exist in the container).
        only_target = paths[0][1] if len(paths) == 1 else None
        workdir = service.working_dir or root_target or only_target
        added = False
        for name in names:
            if name in taken:
                proposal.notes.append(
                    f"'{name}' is also in service '{service.name}'; routed to '{taken[name]}'")
                continue
            taken[name] = service.name
            proposal.commands.append(ProposedCommand(
                name=name, service=service.name, exec=name, workdir=workdir, paths=paths))
            added = True
        if added:
            proposal.containers[service.name] = service.container_name
    return proposal


def render_bridge(proposal: Proposal) -> str:
    """bridge.yaml text for a proposal."""
    return templating.render(
        "bridge.yaml.j2",
        proposal=proposal,
        project=proposal.project,
        schema_url=resources.schema_id(),
        version=__version__,
    )


def render_domains(proposal: Proposal, extra: tuple[str, ...] = ()) -> str:
    """allowed-domains.txt text for a proposal."""
    return templating.render(
        "allowed-domains.txt.j2",
        domains=allowed_domains((c.name for c in proposal.commands), extra),
        version=__version__,
    )


def place(path: Path, text: str, *, force: bool) -> FileResult:
    """Write `text` unless an existing different file would be overwritten without `force`."""
    try:
        current: str | None = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = None
    except (OSError, UnicodeDecodeError):
        current = ""  # unreadable or not text: treat as different
    if current == text:
        return FileResult(path, FileStatus.OK)
    if current is not None and not force:
        return FileResult(path, FileStatus.SKIPPED, "exists, use --force")
    write_atomic(path, text)
    return FileResult(path, FileStatus.CREATED if current is None else FileStatus.CHANGED)


def locate_compose(directory: Path, explicit: Path | None) -> Path | None:
    """The compose file to read: `--compose`, else the one compose would pick."""
    if explicit is not None:
        return explicit
    return find_compose_file(directory)


def run_init(directory: Path, compose_file: Path | None = None, *, force: bool = False,
             prefer_cli: bool = True) -> InitResult:
    """Scaffold `.sidecar/` in `directory` from its compose project."""
    file = locate_compose(directory, compose_file)
    project = load_project(file, prefer_cli=prefer_cli) if file else None
    proposal = propose(project)
    target = directory / CONFIG_DIR
    results = [
        place(target / CONFIG_NAME, render_bridge(proposal), force=force),
        place(target / DOMAINS_NAME, render_domains(proposal), force=force),
    ]
    return InitResult(proposal=proposal, files=results)
