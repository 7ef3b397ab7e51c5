"""Which programs each compose service has, and how init knows: the service's running container
(asked by `probe`), else its image on this machine (`imageprobe`), else its Dockerfile
(`dockerfile`), else its image's name (`programs`).

A service without a build of its own whose `image:` is the tag another service builds runs
that build: it has what that Dockerfile makes. A Dockerfile `FROM` an image another service of
the project builds derives from that build (the chain is followed). A program installed on top
of an image of another toolchain (node and cargo in a Python image) is marked `secondary`: it
may be there only to build something (`proposal` decides).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from sidecar_gen.compose.env import read_bounded
from sidecar_gen.compose.project import ComposeProject, Service
from sidecar_gen.errors import InputError
from sidecar_gen.scaffold.dockerfile import installed_by, read_dockerfile
from sidecar_gen.scaffold.programs import (
    DB_CLIENTS,
    TOOLCHAIN_OF,
    image_programs,
    in_order,
    launched,
    runtime_only,
    shell_script,
)
from sidecar_gen.scaffold.roles import started_with

MAX_CHAIN = 8  # Dockerfiles FROM images the project builds, followed at most this deep


@dataclass(frozen=True)
class Evidence:
    """The programs one service has, each with where that knowledge comes from."""

    programs: tuple[str, ...] = ()  # catalogue order
    primary: frozenset[str] = frozenset()  # the image's own toolchain: wins a name clash
    sources: Mapping[str, str] = field(default_factory=dict)  # program -> where it was found
    unknown: str = ""  # when there are no programs: what init looked at
    workdir: str | None = None  # the image's working directory, when known (Dockerfile WORKDIR)
    launch: tuple[tuple[str, ...], ...] = ()  # the Dockerfile's ENTRYPOINT and CMD
    label: str = ""  # the Dockerfile, as comments name it
    user: str | None = None  # the image's user, when its Dockerfile sets one
    # Installed on top of an image of another toolchain: maybe only to build something.
    secondary: frozenset[str] = frozenset()
    runtime: str = ""  # why the image runs its toolchain's programs but has no SDK, if so


def _shown(argv: tuple[str, ...]) -> str:
    text = " ".join(argv)
    return text if len(text) <= 40 else text[:37] + "..."


def _rel(path: Path | str, root: Path) -> str:
    # Relative even outside the project (`../x/Dockerfile`): an absolute path would write this
    # machine's checkout into bridge.yaml.
    return os.path.relpath(path, root)


def from_image(image: str | None) -> Evidence:
    """What the image is known to have."""
    if not image:
        return Evidence(unknown="no image")
    programs = image_programs(image)
    shown = image.split("@", 1)[0]  # a digest says nothing to a reader
    if not programs:
        why = runtime_only(image)
        return Evidence(unknown=f"image {shown}" + (f": {why}" if why else ""),
                        runtime=why or "")
    return Evidence(programs=in_order(set(programs)), primary=frozenset(programs),
                    sources={p: f"image {shown}" for p in programs})


def _secondary(programs: frozenset[str] | set[str], primary: frozenset[str]) -> frozenset[str]:
    """Programs of another toolchain than `primary`'s (database clients are no toolchain)."""
    own = {TOOLCHAIN_OF[p] for p in primary if p in TOOLCHAIN_OF}
    if not own:
        return frozenset()
    return frozenset(p for p in programs if p in TOOLCHAIN_OF and TOOLCHAIN_OF[p] not in own
                     and p not in DB_CLIENTS)


class ProjectKnowledge:
    """What init can tell about every service of one project without asking the engine."""

    def __init__(self, project: ComposeProject) -> None:
        self.project = project
        self.root = project.directory
        # The tags services build (`build:` with `image:`): who builds each.
        self.builders = {s.image: s for s in sorted(project.services.values(),
                                                    key=lambda s: s.name)
                         if s.build is not None and s.image}
        self._built: dict[str, Evidence | None] = {}

    def of(self, service: Service) -> Evidence:
        """Programs from the Dockerfile when compose builds the image (or another service
        builds the image it runs), else from the image name; plus what the container is
        started with (a program it starts is one it has) and what its start command
        installs."""
        known = self._image_of(service)
        sources = dict(known.sources)
        argv = started_with(service)
        # A runtime-only image starts its toolchain's host (`dotnet app.dll`) without its SDK.
        for program in () if known.runtime else launched(argv):
            sources.setdefault(program, f"compose starts it: {_shown(argv)}")
        script = shell_script(argv)
        if script is not None:
            for program in in_order(installed_by(script)):
                sources.setdefault(program, f"its command installs it: {_shown(argv)}")
        for image_argv in () if known.runtime else known.launch:
            for program in launched(image_argv):
                sources.setdefault(program, f"{known.label}: starts {_shown(image_argv)}")
        if sources == known.sources:
            return known
        started = frozenset(sources) - frozenset(known.sources)
        return replace(known, programs=in_order(set(sources)),
                       primary=known.primary or started, sources=sources, unknown="")

    def _image_of(self, service: Service) -> Evidence:
        if service.build is not None:
            built = self._from_dockerfile(service, 0)
            if built is not None:
                return built
        builder = self.builders.get(service.image or "")
        if builder is not None and builder is not service:
            built = self._from_dockerfile(builder, 0)
            if built is not None:
                return built
        return from_image(service.image)

    def _base(self, image: str | None, depth: int) -> tuple[Evidence, str]:
        """What a Dockerfile's base image has, and how a comment names it."""
        builder = self.builders.get(image or "")
        if builder is not None and depth < MAX_CHAIN:
            built = self._from_dockerfile(builder, depth + 1)
            if built is not None:
                return built, f"FROM {image} (built by service {builder.name})"
        return from_image(image), f"FROM {image}"

    def _from_dockerfile(self, service: Service, depth: int) -> Evidence | None:
        """What the service's Dockerfile builds; None when there is none to read."""
        key = f"{service.name}@{depth}"
        if key not in self._built:
            self._built[key] = self._read(service, depth)
        return self._built[key]

    def _read(self, service: Service, depth: int) -> Evidence | None:
        build = service.build
        if build is None:
            return None
        path = build.dockerfile_path
        root = self.root
        if build.inline is not None:
            text, label = build.inline, "dockerfile_inline"
        elif path is None:
            return None
        else:
            label = _rel(path, root)
            try:
                text = read_bounded(path)
            except InputError as exc:
                fallback = from_image(service.image)
                reason = "does not exist" if not path.exists() else exc.reason
                return fallback if fallback.programs else Evidence(
                    unknown=f"build {_rel(build.context, root)}: Dockerfile {reason}")
        facts = read_dockerfile(text, dict(build.args), build.target)
        base, named = self._base(facts.base, depth) if facts.base else (Evidence(), "")
        sources = {p: f"{label}: {named}" for p in base.programs}
        for program in facts.installed:
            sources.setdefault(program, f"{label}: installed")
        workdir = facts.workdir or base.workdir
        user = facts.user or base.user
        launch = facts.launch or base.launch
        why = base.runtime
        if not sources:
            # Said without the Dockerfile's name, so that services built alike read alike.
            unknown = f"FROM {facts.base}: {why}" if why else \
                f"{label}: FROM {facts.base or '(unknown)'}"
            return Evidence(unknown=unknown, workdir=workdir, launch=launch, label=label,
                            user=user, runtime=why)
        installed = frozenset(facts.installed) - frozenset(base.programs)
        return Evidence(programs=in_order(set(sources)), primary=base.primary,
                        sources=sources, workdir=workdir, launch=launch, label=label,
                        user=user, secondary=_secondary(installed, base.primary) |
                        base.secondary, runtime=why)


def from_found(found: frozenset[str], known: Evidence, where: str) -> Evidence:
    """What a look inside said (`where`: the running container, the image); the knowledge
    only says which are the image's own and which came on top of another toolchain."""
    if not found:
        return Evidence(unknown=f"{where}: none of the known programs", workdir=known.workdir,
                        user=known.user)
    return Evidence(programs=in_order(set(found)), primary=known.primary & found,
                    sources={p: f"found in {where}" for p in found}, workdir=known.workdir,
                    user=known.user, secondary=known.secondary & found)


def from_probe(found: frozenset[str], known: Evidence) -> Evidence:
    """The running container's answer."""
    return from_found(found, known, "the running container")
