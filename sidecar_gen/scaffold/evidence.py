"""Which programs each compose service has, and how init knows: the service's running container
(asked by `probe`), else its Dockerfile (`dockerfile`), else its image (`programs`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sidecar_gen.compose.env import read_bounded
from sidecar_gen.compose.project import Service
from sidecar_gen.errors import InputError
from sidecar_gen.scaffold.dockerfile import read_dockerfile
from sidecar_gen.scaffold.programs import image_programs, in_order, launched


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
        return Evidence(unknown=f"image {shown}")
    return Evidence(programs=in_order(set(programs)), primary=frozenset(programs),
                    sources={p: f"image {shown}" for p in programs})


def from_dockerfile(service: Service, root: Path) -> Evidence | None:
    """What the service's Dockerfile builds; None when there is none to read."""
    build = service.build
    if build is None:
        return None
    path = build.dockerfile_path
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
    base = image_programs(facts.base) if facts.base else ()
    sources = {p: f"{label}: FROM {facts.base}" for p in base}
    for program in facts.installed:
        sources.setdefault(program, f"{label}: installed")
    if not sources:
        return Evidence(unknown=f"{label}: FROM {facts.base or '(unknown)'}",
                        workdir=facts.workdir, launch=facts.launch, label=label)
    return Evidence(programs=in_order(set(sources)), primary=frozenset(base), sources=sources,
                    workdir=facts.workdir, launch=facts.launch, label=label)


def knowledge(service: Service, root: Path) -> Evidence:
    """Programs from the Dockerfile when compose builds the image, else from the image name;
    plus what the container is started with (a program it starts is one it has)."""
    built = from_dockerfile(service, root)
    known = built if built is not None else from_image(service.image)
    sources = dict(known.sources)
    for argv in service.launch:
        for program in launched(argv):
            sources.setdefault(program, f"compose starts it: {_shown(argv)}")
    for argv in known.launch:
        for program in launched(argv):
            sources.setdefault(program, f"{known.label}: starts {_shown(argv)}")
    if sources == known.sources:
        return known
    started = frozenset(sources) - frozenset(known.sources)
    return Evidence(programs=in_order(set(sources)), primary=known.primary or started,
                    sources=sources, workdir=known.workdir)


def from_probe(found: frozenset[str], known: Evidence) -> Evidence:
    """The running container's answer; the image knowledge only says which are its own."""
    if not found:
        return Evidence(unknown="running container: none of the known programs",
                        workdir=known.workdir)
    return Evidence(programs=in_order(set(found)), primary=known.primary & found,
                    sources={p: "found in the running container" for p in found},
                    workdir=known.workdir)
