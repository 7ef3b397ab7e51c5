"""`sidecar init`: propose bridge.yaml and allowed-domains.txt from the real compose project."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path

from sidecar_gen import __version__, resources, templating
from sidecar_gen.compose import ComposeProject, Service, find_compose_file, load_project
from sidecar_gen.config import CONFIG_DIR, CONFIG_NAME
from sidecar_gen.fileplan import Change, apply, plan_user_file
from sidecar_gen.model import DEFAULT_WORKSPACE
from sidecar_gen.render import DOMAINS_NAME, domains_text
from sidecar_gen.toolchains import commands_for


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


@dataclass
class InitResult:
    """What `run_init` did."""

    proposal: Proposal
    files: list[Change]


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
        # A service without the project mounted: run in its root, since Claude's cwd
        # (/workspace/...) would not exist there.
        workdir = service.working_dir or root_target or only_target or "/"
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
    # Both files are the user's once they exist: init never overwrites without --force.
    changes = [
        plan_user_file(target / CONFIG_NAME, render_bridge(proposal), force=force),
        plan_user_file(target / DOMAINS_NAME,
                       domains_text(c.name for c in proposal.commands), force=force),
    ]
    apply(changes)
    return InitResult(proposal=proposal, files=changes)
