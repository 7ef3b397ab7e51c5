"""Who gets a program several services have: by what they are for, never by their names alone."""

from __future__ import annotations

from sidecar_gen.scaffold.owners import ALIKE, Standing, choose, standings


def test_each_rule_decides_in_its_order() -> None:
    # "aaa" would win by name every time: each rule picks another service.
    assert choose([Standing("aaa"), Standing("db", primary=True)]) == (
        "db", "it is its image's own")
    assert choose([Standing("aaa"), Standing("web", mapped=True)]) == (
        "web", "it mounts the project")
    assert choose([Standing("aaa", mapped=True), Standing("tools", mapped=True, root=True)]) == (
        "tools", "it mounts the project's root folder")
    assert choose([Standing("aaa"), Standing("web", started=True)]) == (
        "web", "it runs that toolchain")
    assert choose([Standing("aaa", started=True), Standing("web", started=True,
                                                          publishes=True)]) == (
        "web", "it publishes ports")
    assert choose([Standing("aaa"), Standing("web", waited=2)]) == (
        "web", "most services depend on it")


def test_a_stronger_rule_wins_over_a_weaker_one() -> None:
    # The worker publishes nothing but mounts the project; the app publishes but mounts nothing.
    assert choose([Standing("app", publishes=True), Standing("worker", mapped=True)])[0] == \
        "worker"


def test_alike_services_say_so() -> None:
    assert choose([Standing("b"), Standing("a"), Standing("c")]) == ("a", ALIKE)
    # Narrowed by a rule, then alike: the note says both.
    assert choose([Standing("z"), Standing("b", started=True), Standing("a", started=True)]) == (
        "a", "it runs that toolchain; among those, the first by name")
    assert choose([Standing("only")]) == ("only", None)


def test_counts_come_from_the_project() -> None:
    depends = {"api": (), "api-worker": ("api",), "api-clock": ("api",), "web": ("api",)}
    found = {s.name: s for s in standings(["api", "api-worker", "api-clock"],
                                          Standing, depends)}
    assert (found["api"].waited, found["api"].extended) == (3, 2)
    assert (found["api-worker"].waited, found["api-worker"].extended) == (0, 0)
    assert choose(found.values()) == ("api", "most services depend on it")
