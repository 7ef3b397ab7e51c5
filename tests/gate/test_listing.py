"""`GET /containers/json` answered by the gate over the targets only.

Unit tests of the query rules; the oracle test (the same question asked before and after a
non-target appears gets the same bytes); and a differential test against the real engine: for
every query, the gate's answer equals the engine's answer restricted to the targets.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from conftest import BUSYBOX_IMAGE, TEST_LABEL, unique_name

from gate.conftest import RunningGate
from gate.helpers import request
from sidecar_gen.gate.listing import ListQuery, evaluate, parse_query
from sidecar_gen.gate.policy import NoSuchContainerError, RefusedError


def _q(**params: Any) -> ListQuery:
    return parse_query({k: json.dumps(v) if k == "filters" else str(v)
                        for k, v in params.items()})


@pytest.mark.parametrize(("params", "status"), [
    ({"since": "x"}, 403), ({"before": "x"}, 403), ({"filters": []}, 400),
    ({"filters": {"bogus": ["x"]}}, 400), ({"filters": {"status": ["bogus"]}}, 400),
    ({"filters": {"ancestor": ["busybox"]}}, 403), ({"filters": {"network": ["n"]}}, 403),
    ({"filters": {"exited": ["0"]}}, 403), ({"filters": {"before": ["a", "b"]}}, 400),
    ({"filters": {"name": ["(a+)+$"]}}, 403), ({"filters": {"name": ["a*"]}}, 403),
    ({"filters": {"id": ["[0-9]"]}}, 403), ({"filters": {"name": {"x": False}}}, 400),
    ({"filters": {"label": "x"}}, 400), ({"filters": {"name": ["x"] * 65}}, 403),
    ({"limit": "x"}, 400), ({"limit": "1e3"}, 400),
])
def test_queries_the_gate_does_not_evaluate_are_refused(params: dict[str, Any],
                                                        status: int) -> None:
    raw = {k: json.dumps(v) if k == "filters" and not isinstance(v, str) else str(v)
           for k, v in params.items()}
    with pytest.raises(RefusedError) as caught:
        parse_query(raw)
    assert caught.value.status == status


def test_query_values_like_the_engine() -> None:
    assert _q() == ListQuery()
    assert _q(all="yes").all and not _q(all="0").all and not _q(all="False").all
    assert _q(filters={"status": ["exited"]}).all  # a status filter implies all
    assert _q(filters={"name": {"web": True}}).filters == {"name": ("web",)}  # the CLI's form
    assert _q(limit=-1, size=1, trunc_cmd=0).size


def _c(n: int, state: str = "running", **labels: str) -> dict[str, Any]:
    return {"Id": f"{n:x}" * 64, "Names": [f"/box-{n}"], "State": state, "Labels": labels}


# Newest first, as the engine lists them.
TARGETS = [_c(6, "paused"), _c(5), _c(4, "created"), _c(3), _c(2, "exited", tier="db"),
           _c(1, tier="web")]


def _ids(query: ListQuery) -> list[int]:
    return [int(c["Id"][0], 16) for c in evaluate(query, TARGETS)]


def test_walk_matches_the_engine_order_of_checks() -> None:
    assert _ids(_q()) == [6, 5, 3, 1]
    assert _ids(_q(all=1)) == [6, 5, 4, 3, 2, 1]
    assert _ids(_q(limit=2)) == [6, 5]  # a limit includes stopped containers
    assert _ids(_q(filters={"before": ["box-3"]})) == [1]
    assert _ids(_q(all=1, filters={"before": ["box-3"]})) == [2, 1]
    assert _ids(_q(filters={"since": ["3" * 64]})) == [6, 5]
    assert _ids(_q(limit=1, filters={"before": ["box-3"]})) == [2]
    assert _ids(_q(filters={"before": ["box-2"]})) == [1]  # a stopped one still counts
    assert _ids(_q(filters={"since": ["box-4"]})) == [6, 5]
    # With a name filter the walk holds only the matching containers: `before` a container the
    # name does not match never starts, `since` one never stops.
    assert _ids(_q(filters={"before": ["box-3"], "name": ["box-1"]})) == []
    assert _ids(_q(filters={"since": ["box-3"], "name": ["box-5"]})) == [5]
    assert _ids(_q(filters={"label": ["tier"]})) == [1]
    assert _ids(_q(filters={"label": ["tier=db"], "status": ["exited"]})) == [2]
    assert _ids(_q(filters={"name": ["^/box-6$", "^box-5"]})) == [6, 5]
    assert _ids(_q(filters={"id": ["4444"], "status": ["created"]})) == [4]
    with pytest.raises(NoSuchContainerError):
        evaluate(_q(filters={"before": ["box-7"]}), TARGETS)
    with pytest.raises(NoSuchContainerError):
        evaluate(_q(filters={"since": ["333"]}), TARGETS)  # no prefixes, like the engine


# -- against the engine ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(docker_client: Any) -> Iterator[tuple[str, list[Any]]]:
    """Six members of one compose service in several states, created in order."""
    name = unique_name("listproj")
    made: list[Any] = []
    try:
        for i, state in enumerate(["running", "exited", "running", "created", "running",
                                   "paused"]):
            labels = {TEST_LABEL: "1", "com.docker.compose.project": name,
                      "com.docker.compose.service": "svc", "tier": "even" if i % 2 else "odd",
                      f"only{i}": ""}
            kwargs = {"name": f"{name}-svc-{i}", "labels": labels}
            if state == "created":
                made.append(docker_client.containers.create(BUSYBOX_IMAGE, "sleep 600",
                                                            **kwargs))
                continue
            command = "true" if state == "exited" else "sleep 600"
            box = docker_client.containers.run(BUSYBOX_IMAGE, command, detach=True, **kwargs)
            made.append(box)
            if state == "exited":
                box.wait(timeout=30)
            if state == "paused":
                box.pause()
        yield name, made
    finally:
        for box in made:
            with contextlib.suppress(Exception):
                box.remove(force=True)


@pytest.fixture
def scoped_gate(project: tuple[str, list[Any]],
                gate_factory: Callable[..., RunningGate]) -> RunningGate:
    name, _ = project
    return gate_factory(bridge={"version": "1", "commands": {
        "tool": {"container": "svc", "exec": "sh"}}}, project=name)


def _queries(name: str, made: list[Any]) -> list[dict[str, Any]]:
    second, fourth = made[2], made[4]
    return [
        {}, {"all": "1"}, {"limit": "2"}, {"limit": "0"}, {"all": "1", "limit": "3"},
        {"filters": {"before": [second.name]}}, {"filters": {"since": [second.name]}},
        # before/since a stopped container, without `all`: still where the walk starts/stops.
        {"filters": {"before": [made[1].name]}}, {"filters": {"since": [made[3].name]}},
        {"all": "1", "filters": {"before": [second.id]}},
        {"all": "1", "filters": {"since": [made[0].name]}},
        {"limit": "1", "filters": {"before": [fourth.name]}},
        {"filters": {"status": ["exited", "created"]}}, {"filters": {"status": ["paused"]}},
        {"all": "1", "filters": {"name": [f"^{name}-svc-1"]}},
        {"all": "1", "filters": {"name": ["svc-2$", "^/" + name + "-svc-5"]}},
        {"all": "1", "filters": {"name": ["svc.3"]}},
        {"all": "1", "filters": {"id": [second.id[:20]]}},
        {"all": "1", "filters": {"id": [second.id]}, "size": "1"},
        {"all": "1", "filters": {"label": ["tier=even"]}},
        {"filters": {"label": ["tier", "only2"]}},
        {"all": "1", "filters": {"before": [second.name], "name": [f"{name}-svc-0"]}},
        {"filters": {"since": [second.name], "name": [f"{name}-svc-4"]}},
        {"filters": {"name": {f"{name}-svc-4": True}}},
    ]


@pytest.mark.docker
def test_answers_equal_the_engine_restricted_to_the_targets(
        docker_client: Any, project: tuple[str, list[Any]], scoped_gate: RunningGate) -> None:
    name, made = project
    label = f"com.docker.compose.project={name}"
    for params in _queries(name, made):
        filters = params.get("filters", {})
        query = {k: v for k, v in params.items() if k != "filters"}
        gate_q = "&".join([f"{k}={v}" for k, v in query.items()]
                          + ([f"filters={quote(json.dumps(filters), safe='')}"]
                             if filters else []))
        reply = request(scoped_gate.address, "GET",
                        f"/v1.41/containers/json?{gate_q}".rstrip("?"))
        assert reply.status == 200, (params, reply.body)
        # The engine takes one form per document: the CLI's maps, or lists.
        maps = any(isinstance(v, dict) for v in filters.values())
        labels = filters.get("label", {} if maps else [])
        with_scope = {**filters, "label": {**labels, label: True} if maps
                      else [*labels, label]}
        engine = docker_client.api.get(docker_client.api._url("/containers/json"),
                                       params={**query, "filters": json.dumps(with_scope)})
        assert engine.status_code == 200, (params, engine.text)
        assert [c["Id"] for c in reply.json()] == [c["Id"] for c in engine.json()], params
        if params.get("size"):
            assert [c.get("SizeRootFs") for c in reply.json()] == \
                [c.get("SizeRootFs") for c in engine.json()]


@pytest.mark.docker
def test_no_answer_depends_on_a_container_that_is_not_a_target(
        docker_client: Any, project: tuple[str, list[Any]], scoped_gate: RunningGate) -> None:
    """The same questions, before and after a non-target with the asked-for name appears:
    byte-identical answers (status and body). Before it exists, the engine itself would say
    "no such container"; after, it would answer; the gate says the same both times."""
    proj, made = project
    ghost = unique_name("ghost")
    questions = [("GET", "/containers/json?filters=" + quote(json.dumps(f), safe="")) for f in (
        {"before": [ghost]}, {"since": [ghost]}, {"name": [ghost]},
        {"before": [made[2].name], "name": [ghost]})]
    questions += [("GET", "/containers/json?limit=1"), ("GET", "/containers/json?limit=100"),
                  ("GET", "/containers/json?all=1"), ("GET", f"/containers/{ghost}/json"),
                  ("POST", f"/containers/{ghost}/exec")]

    def ask() -> list[tuple[int, bytes]]:
        out = []
        for method, target in questions:
            reply = request(scoped_gate.address, method, target,
                            {"Cmd": ["true"]} if method == "POST" else None)
            body = reply.body
            if reply.status == 200:
                # "Up 3 seconds": the engine's clock, not an oracle. Everything else must stay.
                entries = json.loads(body)
                assert isinstance(entries, list)
                body = json.dumps([{k: v for k, v in c.items() if k != "Status"}
                                   for c in entries]).encode()
            out.append((reply.status, body))
        return out

    before = ask()
    assert before[0][0] == 404
    # Newer than every target (a limit would show it), named as asked, in another project,
    # in this project but not a target (a protected role), and unlabelled.
    for labels in ({"com.docker.compose.project": "elsewhere"},
                   {"com.docker.compose.project": proj, "dev.claude-sidecar.role": "claude",
                    "com.docker.compose.service": "svc"}, {}):
        intruder = docker_client.containers.run(BUSYBOX_IMAGE, "sleep 600", detach=True,
                                                name=ghost, labels={TEST_LABEL: "1", **labels})
        try:
            assert ask() == before, labels
        finally:
            intruder.remove(force=True)
        assert docker_client.api.inspect_container(made[0].id)["ExecIDs"] is None
