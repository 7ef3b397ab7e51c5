"""`sidecar init`: propose bridge.yaml and allowed-domains.txt from the real compose project.

Every command is routed by compose service (`container: php`), never by a container name: the
names compose gives containers depend on the checkout's folder, the service does not, and the
gate scopes a service to its own compose project at run time.
"""

from __future__ import annotations

import os
import posixpath
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from sidecar_gen import __version__, resources, templating
from sidecar_gen.compose.project import Bind, ComposeProject, Service, load_project
from sidecar_gen.fileplan import Change, apply, plan_user_file
from sidecar_gen.model import DEFAULT_WORKSPACE
from sidecar_gen.render import domains_text
from sidecar_gen.runtime.contract import Route
from sidecar_gen.runtime.names import CONFIG_DIR, CONFIG_NAME, DOMAINS_NAME
from sidecar_gen.runtime.pathmap import is_within
from sidecar_gen.scaffold.evidence import Evidence, ProjectKnowledge, from_found, from_probe
from sidecar_gen.scaffold.owners import Standing, choose, standings
from sidecar_gen.scaffold.programs import CATALOGUE, DB_CLIENTS, NO_STDIN, TOOLCHAIN_OF
from sidecar_gen.scaffold.roles import (
    is_output_folder,
    one_shot,
    started_toolchains,
    started_with,
    writes_as_root,
)

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
    # Options init leaves out on purpose, written commented out: (option, value, why).
    commented: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class UnknownService:
    """Services init found no program in, alike in what it looked at: one commented example."""

    names: tuple[str, ...]
    looked_at: str

    @property
    def name(self) -> str:
        """The service the example names."""
        return self.names[0]

    @property
    def heading(self) -> list[str]:
        """The comment's first lines: the services and what init looked at, wrapped."""
        lines = _wrapped(f"{', '.join(self.names)} ({self.looked_at}): no program init knows.")
        if len(lines[-1]) + len(" To route one:") <= _WIDTH:
            return [*lines[:-1], lines[-1] + " To route one:"]
        return [*lines, "  To route one:"]


_WIDTH = 118  # of a comment's text in bridge.yaml (the comment filter cuts at 120)


def _wrapped(text: str) -> list[str]:
    """`text` as lines of a comment: wrapped between words, continuation lines indented."""
    return textwrap.wrap(text, width=_WIDTH, subsequent_indent="  ", break_long_words=False,
                         break_on_hyphens=False) or [""]


@dataclass
class Proposal:
    """Everything init derived from the project, before rendering."""

    project: ComposeProject | None
    workspace: str
    commands: list[ProposedCommand] = field(default_factory=list)
    unknown: list[UnknownService] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    probed: tuple[str, ...] = ()  # services whose running container was asked
    imaged: tuple[str, ...] = ()  # services whose image on this machine was read

    @property
    def default_hint(self) -> str | None:
        """The service to suggest as default_container: the one holding the whole project (a
        program found nowhere else most likely belongs there); None when none does."""
        for command in self.commands:
            if any(claude == self.workspace for claude, _ in command.route.paths):
                return command.route.container
        return None

    @property
    def note_lines(self) -> list[str]:
        """The notes as comment lines (`note: ...`, wrapped)."""
        return [line for note in self.notes for line in _wrapped(f"note: {note}")]

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
    holding working_dir, else the shortest). `binds`: only these. Output folders alone
    (`./dist:/app/dist`) are no project to work on: nothing is mapped then."""
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
    if all(is_output_folder(posixpath.relpath(claude, workspace)) for claude in found):
        return ()
    own = posixpath.normpath(service.working_dir) if service.working_dir else None
    out = {claude: min(targets, key=lambda t: (not (own and is_within(own, t)), len(t), t))
           for claude, targets in found.items()}
    return tuple(sorted(out.items(), key=lambda kv: (-len(kv[0]), kv[0])))


def _project_in_image(service: Service, project_dir: Path) -> str | None:
    """Where the project's root folder is in the container, by a subfolder mounted at the same
    relative place (`./public/system:/mastodon/public/system`: `/mastodon`)."""
    root = os.path.realpath(project_dir)
    for bind in sorted(service.binds, key=lambda b: len(b.target)):
        if bind.is_file:
            continue
        rel = os.path.relpath(os.path.realpath(bind.source), root)
        if rel in (os.curdir, os.pardir) or rel.startswith(os.pardir + os.sep):
            continue
        suffix = "/" + rel.replace(os.sep, "/")
        if bind.target.endswith(suffix) and len(bind.target) > len(suffix):
            return bind.target[:-len(suffix)]
    return None


def _workdir(service: Service, paths: tuple[tuple[str, str], ...],
             image_workdir: str | None, workspace: str, project_dir: Path | None) -> str:
    """A directory that exists in the container: where `docker compose exec` would run (compose's
    working_dir, else the image's WORKDIR) when that is mapped or nothing is; else the mapped
    directory closest to the project root that is no output folder (a workdir outside every
    mapping could never be the translation of Claude's own directory). With nothing mapped and
    nothing said, where a mounted output folder says the project is (`_project_in_image`)."""
    own = next((posixpath.normpath(w) for w in (service.working_dir, image_workdir)
                if w and w.startswith("/")), None)
    if not paths:
        if own or project_dir is None:
            return own or "/"
        # Nothing mounted says where the code is: a folder mounted at the same relative place,
        # else a volume that holds it (`codebase:/var/www/html`).
        volumes = sorted((v for v in service.volumes if not is_output_folder(v)), key=len)
        return _project_in_image(service, project_dir) or next(iter(volumes), "/")
    if own and any(is_within(own, target) for _, target in paths):
        return own
    return min(paths, key=lambda kv: (is_output_folder(posixpath.relpath(kv[0], workspace)),
                                      len(kv[0]), kv[0]))[1]


def _volume_notes(service: Service, paths: tuple[tuple[str, str], ...]) -> list[str]:
    notes = []
    for target in service.volumes:
        if any(is_within(target, t) for _, t in paths):
            notes.append(f"{service.name} keeps {target} in a volume: with user "
                         f'"{RUN_AS_USER}" your uid must be able to write there')
    return notes


def _evidence(project: ComposeProject, probed: Mapping[str, frozenset[str]],
              imaged: Mapping[str, tuple[str, frozenset[str]]]) -> dict[str, Evidence]:
    knowledge = ProjectKnowledge(project)
    out = {}
    for name, service in project.services.items():
        known = knowledge.of(service)
        if name in probed:
            out[name] = from_probe(probed[name], known)
        elif name in imaged:
            image, found = imaged[name]
            out[name] = from_found(found, known, f"the image {image.split('@', 1)[0]}")
        else:
            out[name] = known
    return out


def _on_host(folder: str, paths: tuple[tuple[str, str], ...], workspace: str) -> str:
    """A container folder as the project's own path (`./node_modules`)."""
    for claude, target in paths:
        if is_within(folder, target):
            inner = posixpath.join(claude, posixpath.relpath(folder, target))
            rel = posixpath.relpath(posixpath.normpath(inner), workspace)
            return "the project's root folder" if rel == "." else f"./{rel}"
    return folder


def _quoted(names: list[str] | tuple[str, ...]) -> str:
    return ", ".join(f"'{n}'" for n in names)


class _Planner:
    """The proposal's decisions over one project, service by service."""

    def __init__(self, project: ComposeProject, workspace: str,
                 evidence: dict[str, Evidence]) -> None:
        self.project, self.workspace, self.evidence = project, workspace, evidence
        services = project.services
        awaited = {d for s in services.values() for d in s.awaits}
        self.once = {n: why for n, s in services.items() if (why := one_shot(s, awaited))}
        self.paths = {n: _mappings(s, project.directory, workspace) for n, s in services.items()}
        self.programs = {n: self._programs(n) for n in services}
        self.root_notes: list[str] = []

    def _root(self, name: str) -> bool:
        return any(claude == self.workspace for claude, _ in self.paths[name])

    def _programs(self, name: str) -> tuple[str, ...]:
        found = self.evidence[name]
        if self._root(name):
            return found.programs
        # Another toolchain's programs installed into an image that does not hold the whole
        # project: build tools (node and cargo for a Python image's wheels), not the service's.
        return tuple(p for p in found.programs if p not in found.secondary)

    def standing(self, name: str, program: str) -> Standing:
        """What counts for `name` when `program` is shared."""
        service = self.project.services[name]
        runs = started_toolchains((started_with(service), *self.evidence[name].launch))
        return Standing(name, primary=program in self.evidence[name].primary,
                        mapped=bool(self.paths[name]), root=self._root(name),
                        started=TOOLCHAIN_OF.get(program, program) in runs,
                        publishes=service.publishes)

    def owners(self, proposal: Proposal) -> dict[str, str]:
        """program -> the service that gets it; the notes say who else has it and why."""
        owner: dict[str, str] = {}
        also: dict[tuple[str, tuple[str, ...], str], list[str]] = {}
        only_once: dict[str, list[str]] = {}
        depends = {n: s.depends_on for n, s in self.project.services.items()}
        for program in CATALOGUE:
            having = [n for n in sorted(self.project.services) if program in self.programs[n]]
            running = [n for n in having if n not in self.once]
            if not running:
                for name in having:
                    only_once.setdefault(name, []).append(program)
                continue
            chosen, why = choose(standings(running, partial(self.standing, program=program),
                                           depends))
            owner[program] = chosen
            others = tuple(n for n in running if n != chosen)
            if others:
                also.setdefault((chosen, others, why or ""), []).append(program)
        for (chosen, others, why), programs in also.items():
            verb = "is" if len(programs) == 1 else "are"
            where = "service" if len(others) == 1 else "services"
            proposal.notes.append(f"{_quoted(programs)} {verb} also in {where} "
                                  f"{_quoted(others)}; routed to '{chosen}': {why}")
        for name, why in sorted(self.once.items()):
            programs = only_once.get(name, [])
            what = f"; {_quoted(programs)} {'is' if len(programs) == 1 else 'are'} only there" \
                if programs else ""
            proposal.notes.append(f"'{name}' runs once and exits ({why}): no command goes "
                                  f"there{what}")
        return owner

    def commands(self, name: str, mine: list[str]) -> list[ProposedCommand]:
        """The commands `name` gets."""
        service, found = self.project.services[name], self.evidence[name]
        # A database's client works on the database, not on project files: no mapping, and no
        # user (client tools refuse a uid without a passwd entry).
        database = set(found.programs) <= DB_CLIENTS
        mapped = () if database else self.paths[name]
        workdir = _workdir(service, mapped, found.workdir, self.workspace,
                           None if database else self.project.directory)
        # Synced folders are copies: what a command writes there never reaches the host.
        bound = bool(mapped) and bool(_mappings(service, self.project.directory,
                                                self.workspace, service.binds))
        as_root = writes_as_root(service, found.user, workdir,
                                 [t for _, t in mapped]) if bound else None
        user = RUN_AS_USER if bound and not as_root else None
        commented = (("user", RUN_AS_USER, f"left out: {name} writes into the project as root "
                                           "(see the note below)"),) if as_root else ()
        if as_root and mine:
            command, folder = as_root
            shown = _on_host(folder, mapped, self.workspace)
            self.root_notes.append(
                f"{name} runs as root and writes into the project as it starts (`{command}`: "
                f"{shown}): its commands run as root too; chown {shown} to you, then uncomment "
                "their `user:` lines")
        notes: list[tuple[str, str]] = []
        if not mapped and not database:
            notes.append(("workdir", f"{name} mounts no project folder: commands work on the "
                                     "code inside its container, not on yours"))
        out = []
        for program in mine:
            quiet = program in NO_STDIN
            route = Route(name, (program,), workdir=workdir, paths=mapped, user=user,
                          stdin="never" if quiet else "auto")
            out.append(ProposedCommand(
                name=program, route=route, source=found.sources[program],
                notes=(*notes, *((("stdin", NO_STDIN_NOTE),) if quiet else ())),
                commented=commented))
        return out


def propose(project: ComposeProject | None, workspace: str = DEFAULT_WORKSPACE,
            probed: Mapping[str, frozenset[str]] | None = None,
            imaged: Mapping[str, tuple[str, frozenset[str]]] | None = None) -> Proposal:
    """Derive commands and path mappings from a compose project (and what its running
    containers said they have: `probed`; what the images on this machine hold: `imaged`)."""
    proposal = Proposal(project=project, workspace=workspace, probed=tuple(sorted(probed or {})),
                        imaged=tuple(sorted(imaged or {})))
    if project is None:
        return proposal
    evidence = _evidence(project, probed or {}, imaged or {})
    planner = _Planner(project, workspace, evidence)
    owner = planner.owners(proposal)
    unknown: dict[str, list[str]] = {}
    left_out: dict[tuple[str, ...], list[str]] = {}
    for name in sorted(project.services):
        service, found = project.services[name], evidence[name]
        if name in planner.once:
            continue
        if not planner.programs[name]:
            if not found.programs:
                unknown.setdefault(found.unknown, []).append(name)
            continue
        mine = [p for p in planner.programs[name] if owner.get(p) == name]
        commands = planner.commands(name, mine)
        proposal.commands.extend(commands)
        if commands and commands[0].route.user:
            proposal.notes.extend(_volume_notes(service, commands[0].route.paths))
        if commands and commands[0].route.paths and not commands[0].route.user \
                and not commands[0].commented:
            proposal.notes.append(f"{name} gets the project by `docker compose watch` (copies): "
                                  "what commands write there stays in the container")
        dropped = tuple(p for p in found.programs
                        if p not in planner.programs[name] and p not in owner)
        if dropped:
            left_out.setdefault(dropped, []).append(name)
    for dropped, names in left_out.items():
        proposal.notes.append(
            f"{_quoted(dropped)} {'is' if len(dropped) == 1 else 'are'} left out of "
            f"{_quoted(names)}: installed on an image of another toolchain, in a service that "
            "does not mount the project's root folder (build tools)")
    proposal.notes.extend(planner.root_notes)
    proposal.unknown = [UnknownService(tuple(names), looked_at)
                        for looked_at, names in sorted(unknown.items(), key=lambda kv: kv[1])]
    return proposal


def render_bridge(proposal: Proposal, image: str | None = None) -> str:
    """bridge.yaml text for a proposal; `image` is written as `sidecar.image` when given."""
    return templating.render(
        "bridge.yaml.j2",
        proposal=proposal,
        image=image,
        project=proposal.project,
        schema_url=resources.schema_id(),
        version=__version__,
    )


def run_init(directory: Path, compose_files: tuple[Path, ...] = (), *, force: bool = False,
             prefer_cli: bool = True, probe: bool = True,
             environ: Mapping[str, str] | None = None, image: str | None = None) -> InitResult:
    """Scaffold `.sidecar/` in `directory` from its compose project.

    `compose_files` are like `docker compose -f`; without them, the files compose itself loads
    in that folder. With `probe`, the project's running containers are asked which programs
    they have, and the images on this machine of the services no container runs. `image`
    is the Claude image to write as `sidecar.image` (None: the default, left out).
    """
    project = load_project(directory, compose_files, prefer_cli=prefer_cli, environ=environ)
    probed: dict[str, frozenset[str]] = {}
    imaged: dict[str, tuple[str, frozenset[str]]] = {}
    if probe and project is not None and project.services:
        from sidecar_gen.scaffold.imageprobe import probe_images
        from sidecar_gen.scaffold.probe import probe_services

        probed = probe_services(project, CATALOGUE)
        imaged = probe_images(project, [n for n in project.services if n not in probed],
                              CATALOGUE)
    proposal = propose(project, probed=probed, imaged=imaged)
    target = directory / CONFIG_DIR
    # Both files are the user's once they exist: init never overwrites without --force.
    changes = [
        plan_user_file(target / CONFIG_NAME, render_bridge(proposal, image), force=force),
        plan_user_file(target / DOMAINS_NAME,
                       domains_text(c.name for c in proposal.commands), force=force),
    ]
    apply(changes)
    return InitResult(proposal=proposal, files=changes)
