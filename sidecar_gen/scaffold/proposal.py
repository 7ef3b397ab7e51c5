"""`sidecar init`: propose bridge.yaml and allowed-domains.txt from the real compose project.

Every command is routed by compose service (`container: php`), never by a container name: the
names compose gives containers depend on the checkout's folder, the service does not, and the
gate scopes a service to its own compose project at run time.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sidecar_gen import __version__, resources, templating
from sidecar_gen.compose.project import Bind, ComposeProject, Service, load_project
from sidecar_gen.fileplan import Change, apply, plan_user_file
from sidecar_gen.model import DEFAULT_WORKSPACE
from sidecar_gen.render import domains_text
from sidecar_gen.runtime.contract import Route
from sidecar_gen.runtime.names import CONFIG_DIR, CONFIG_NAME, DOMAINS_NAME
from sidecar_gen.runtime.pathmap import is_within
from sidecar_gen.scaffold.evidence import Evidence, from_probe, knowledge
from sidecar_gen.scaffold.programs import CATALOGUE, DB_CLIENTS, NO_STDIN

RUN_AS_USER = "${PUID}:${PGID}"
# Why init sets an option, after its line in bridge.yaml (`ProposedCommand.notes`).
NO_STDIN_NOTE = "it never reads input: a `while read` loop keeps its own"


@dataclass(frozen=True)
class ProposedCommand:
    """One command init proposes: the route it writes into bridge.yaml (`Route.to_spec`)."""

    name: str
    route: Route
    source: str  # where init found the program (a comment in bridge.yaml)
    notes: tuple[tuple[str, str], ...] = ()  # (option, why init set it)


@dataclass(frozen=True)
class UnknownService:
    """A service init found no program in: it gets a commented example."""

    name: str
    looked_at: str


@dataclass
class Proposal:
    """Everything init derived from the project, before rendering."""

    project: ComposeProject | None
    workspace: str
    commands: list[ProposedCommand] = field(default_factory=list)
    unknown: list[UnknownService] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    probed: tuple[str, ...] = ()  # services whose running container was asked

    @property
    def default_hint(self) -> str | None:
        """The service to suggest as default_container: the one holding the whole project (a
        program found nowhere else most likely belongs there); None when none does."""
        for command in self.commands:
            if any(claude == self.workspace for claude, _ in command.route.paths):
                return command.route.container
        return None

    @property
    def files(self) -> str:
        """The compose files read, relative to the project folder, for the header."""
        if self.project is None:
            return ""
        names = [os.path.relpath(f, self.project.directory) for f in self.project.files]
        return ", ".join(names)


@dataclass
class InitResult:
    """What `run_init` did."""

    proposal: Proposal
    files: list[Change]


def _mappings(service: Service, project_dir: Path, workspace: str,
              binds: tuple[Bind, ...] | None = None) -> tuple[tuple[str, str], ...]:
    """Claude path -> container path for each directory of the project bind-mounted or synced
    by `docker compose watch` (a folder mounted twice maps to one of its targets: the one
    holding working_dir, else the shortest). `binds`: only these."""
    root = os.path.realpath(project_dir)
    found: dict[str, list[str]] = {}
    for bind in (*service.binds, *service.synced) if binds is None else binds:
        if bind.is_file or not bind.target.startswith("/"):
            continue  # a single file is no place to work in, nor a folder to map
        rel = os.path.relpath(os.path.realpath(bind.source), root)
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            continue  # outside the project (or its parent: that would freeze its folder name)
        claude = workspace if rel == os.curdir else posixpath.join(workspace, rel)
        found.setdefault(posixpath.normpath(claude), []).append(bind.target)
    own = posixpath.normpath(service.working_dir) if service.working_dir else None
    out = {claude: min(targets, key=lambda t: (not (own and is_within(own, t)), len(t), t))
           for claude, targets in found.items()}
    return tuple(sorted(out.items(), key=lambda kv: (-len(kv[0]), kv[0])))


def _workdir(service: Service, paths: tuple[tuple[str, str], ...],
             image_workdir: str | None) -> str:
    """A directory that exists in the container: where `docker compose exec` runs (compose's
    working_dir, else the image's WORKDIR) when that is mapped or nothing is; else the mapped
    directory closest to the project root (a workdir outside every mapping could never be the
    translation of Claude's own directory)."""
    own = next((posixpath.normpath(w) for w in (service.working_dir, image_workdir)
                if w and w.startswith("/")), None)
    if not paths:
        return own or "/"
    if own and any(is_within(own, target) for _, target in paths):
        return own
    return min(paths, key=lambda kv: (len(kv[0]), kv[0]))[1]


def _volume_notes(service: Service, paths: tuple[tuple[str, str], ...]) -> list[str]:
    notes = []
    for target in service.volumes:
        if any(is_within(target, t) for _, t in paths):
            notes.append(f"{service.name} keeps {target} in a volume: with user "
                         f'"{RUN_AS_USER}" your uid must be able to write there')
    return notes


def _evidence(project: ComposeProject, probed: Mapping[str, frozenset[str]]
              ) -> dict[str, Evidence]:
    out = {}
    for name, service in project.services.items():
        known = knowledge(service, project.directory)
        out[name] = from_probe(probed[name], known) if name in probed else known
    return out


def propose(project: ComposeProject | None, workspace: str = DEFAULT_WORKSPACE,
            probed: Mapping[str, frozenset[str]] | None = None) -> Proposal:
    """Derive commands and path mappings from a compose project (and what its running
    containers said they have: `probed`)."""
    proposal = Proposal(project=project, workspace=workspace, probed=tuple(sorted(probed or {})))
    if project is None:
        return proposal
    evidence = _evidence(project, probed or {})
    paths = {n: _mappings(s, project.directory, workspace) for n, s in project.services.items()}
    # Who gets a program several services have: the image whose own toolchain it is, then a
    # service with the project mounted, then the one most others wait for (the app its
    # workers start after), then one that publishes ports (the app, not its workers), then
    # the first by name.
    waited = {n: sum(n in s.depends_on for s in project.services.values())
              for n in project.services}
    owner: dict[str, str] = {}
    also: dict[tuple[str, str], list[str]] = {}  # (other service, owner) -> programs
    for program in CATALOGUE:
        having = [n for n in sorted(project.services) if program in evidence[n].programs]
        if having:
            owner[program] = min(having, key=lambda n: (program not in evidence[n].primary,
                                                        not paths[n], -waited[n],
                                                        not project.services[n].publishes, n))
            for other in having:
                if other != owner[program]:
                    also.setdefault((other, owner[program]), []).append(program)
    for (other, chosen), programs in also.items():
        names = ", ".join(f"'{p}'" for p in programs)
        verb = "is" if len(programs) == 1 else "are"
        proposal.notes.append(f"{names} {verb} also in service '{other}'; routed to '{chosen}'")
    for name in sorted(project.services):
        service, found = project.services[name], evidence[name]
        if not found.programs:
            proposal.unknown.append(UnknownService(name, found.unknown))
            continue
        # A database's client works on the database, not on project files: no mapping, and no
        # user (client tools refuse a uid without a passwd entry).
        mapped = () if set(found.programs) <= DB_CLIENTS else paths[name]
        workdir = _workdir(service, mapped, found.workdir)
        # Synced folders are copies: what a command writes there never reaches the host.
        bound = bool(mapped) and bool(_mappings(service, project.directory, workspace,
                                                service.binds))
        user = RUN_AS_USER if bound else None
        mine = [p for p in found.programs if owner.get(p) == name]
        for program in mine:
            quiet = program in NO_STDIN
            route = Route(name, (program,), workdir=workdir, paths=mapped, user=user,
                          stdin="never" if quiet else "auto")
            proposal.commands.append(ProposedCommand(
                name=program, route=route, source=found.sources[program],
                notes=(("stdin", NO_STDIN_NOTE),) if quiet else ()))
        if mine and user:
            proposal.notes.extend(_volume_notes(service, mapped))
        if mine and mapped and not bound:
            proposal.notes.append(f"{name} gets the project by `docker compose watch` (copies): "
                                  "what commands write there stays in the container")
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


def run_init(directory: Path, compose_files: tuple[Path, ...] = (), *, force: bool = False,
             prefer_cli: bool = True, probe: bool = True,
             environ: Mapping[str, str] | None = None) -> InitResult:
    """Scaffold `.sidecar/` in `directory` from its compose project.

    `compose_files` are like `docker compose -f`; without them, the files compose itself loads
    in that folder. With `probe`, the project's running containers are asked which programs
    they have.
    """
    project = load_project(directory, compose_files, prefer_cli=prefer_cli, environ=environ)
    probed: dict[str, frozenset[str]] = {}
    if probe and project is not None and project.services:
        from sidecar_gen.scaffold.probe import probe_services

        probed = probe_services(project, CATALOGUE)
    proposal = propose(project, probed=probed)
    target = directory / CONFIG_DIR
    # Both files are the user's once they exist: init never overwrites without --force.
    changes = [
        plan_user_file(target / CONFIG_NAME, render_bridge(proposal), force=force),
        plan_user_file(target / DOMAINS_NAME,
                       domains_text(c.name for c in proposal.commands), force=force),
    ]
    apply(changes)
    return InitResult(proposal=proposal, files=changes)
