"""Which service gets a program that several services have, and why.

Services that run once and exit never get one (`roles.one_shot`: they are excluded before).
Among the rest, in this order: the service whose image's own toolchain it is (the database's
client goes to the database); one that mounts the project; one that mounts the project's root
folder (where a command run at the top of the project works); one whose start command runs the
program's toolchain (the app server, not the container that sleeps); one that publishes ports
(what people reach: the app, not its workers); the one most others depend on (the app its
workers wait for); the one whose name the others extend (`api` before `api-worker`). When all
of these are equal the services are alike, and the note says so: the first by name is taken,
and changing `container:` picks another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

# (what decides, how the note says it), strongest first.
RULES: tuple[tuple[str, str], ...] = (
    ("primary", "it is its image's own"),
    ("mapped", "it mounts the project"),
    ("root", "it mounts the project's root folder"),
    ("started", "it runs that toolchain"),
    ("publishes", "it publishes ports"),
    ("waited", "most services depend on it"),
    ("extended", "the others' names extend its name"),
)
ALIKE = "nothing sets them apart: the first by name; change `container:` to pick another"


@dataclass(frozen=True)
class Standing:
    """What counts for one service when a program is shared (higher wins, per rule)."""

    name: str
    primary: bool = False
    mapped: bool = False
    root: bool = False
    started: bool = False
    publishes: bool = False
    waited: int = 0
    extended: int = 0

    def value(self, rule: str) -> int:
        """This service's value for one rule."""
        return int(getattr(self, rule))


def choose(standings: Iterable[Standing]) -> tuple[str, str | None]:
    """The service that gets the program, and why among those that have it (None: only one
    has it)."""
    left = sorted(standings, key=lambda s: s.name)
    if len(left) == 1:
        return left[0].name, None
    narrowed: list[str] = []
    for rule, said in RULES:
        best = max(s.value(rule) for s in left)
        kept = [s for s in left if s.value(rule) == best]
        if len(kept) < len(left):
            left = kept
            if len(left) == 1:
                return left[0].name, said
            narrowed.append(said)
    if narrowed:
        return left[0].name, f"{'; '.join(narrowed)}; among those, the first by name"
    return left[0].name, ALIKE


def standings(having: Iterable[str], facts: Callable[[str], Standing],
              depends_on: Mapping[str, Iterable[str]]) -> list[Standing]:
    """The standings of `having` (the services with the program), each from `facts`, with the
    counts that compare them: how many services depend on each, whose names extend its."""
    names = list(having)
    waited = {n: sum(n in set(deps) for deps in depends_on.values()) for n in names}
    out = []
    for name in names:
        extended = sum(other != name and other.startswith((f"{name}-", f"{name}_"))
                       for other in names)
        base = facts(name)
        out.append(Standing(name, base.primary, base.mapped, base.root, base.started,
                            base.publishes, waited[name], extended))
    return out
