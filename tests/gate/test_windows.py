"""No window after a rename, a recreate or a removal; no ambiguous prefix taken.

Every decision is taken on a listing fetched for that request, so the requests below follow
the change at once (no sleep) and the proof is the engine's own record: which execs exist in
which container, and whether they ever ran.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from conftest import BUSYBOX_IMAGE, TEST_LABEL, unique_name

from gate.conftest import RunningGate
from gate.helpers import request, run_exec

pytestmark = pytest.mark.docker
UPGRADE = {"Connection": "Upgrade", "Upgrade": "tcp"}


def _bridge(name: str) -> dict[str, Any]:
    return {"version": "1", "containers": {"app": name},
            "commands": {"tool": {"container": "app", "exec": "sh"}}}


def _exec_ids(client: Any, cid: str) -> list[str]:
    return list(client.api.inspect_container(cid)["ExecIDs"] or [])


def test_no_exec_starts_in_a_container_renamed_away(
        docker_client: Any, gate_factory: Callable[..., RunningGate],
        make_container: Callable[..., Any]) -> None:
    box = make_container()
    name = box.name
    gate = gate_factory(bridge=_bridge(name))
    created = request(gate.address, "POST", f"/containers/{name}/exec",
                      {"AttachStdout": True, "Cmd": ["touch", "/started"]})
    assert created.status == 201
    exec_id = created.json()["Id"]
    box.rename(f"{name}-away")
    # At once: the exec may not start, be resized or inspected, and no new one is created.
    started = request(gate.address, "POST", f"/exec/{exec_id}/start", {"Detach": False},
                      headers=UPGRADE)
    assert started.status == 403
    assert "no longer a target" in started.json()["message"]
    assert request(gate.address, "POST", f"/exec/{exec_id}/resize?h=1&w=1").status == 403
    assert request(gate.address, "GET", f"/exec/{exec_id}/json").status == 403
    for ref in (box.id, box.id[:12], f"{name}-away"):
        assert request(gate.address, "POST", f"/containers/{ref}/exec",
                       {"Cmd": ["touch", "/again"]}).status == 403
        assert request(gate.address, "GET", f"/containers/{ref}/json").status == 403
    assert request(gate.address, "GET", "/containers/json?all=1").json() == []
    # The engine's record: the one exec, never started.
    assert _exec_ids(docker_client, box.id) == [exec_id]
    state = docker_client.api.exec_inspect(exec_id)
    assert (state["Running"], state["Pid"], state["ExitCode"]) == (False, 0, None)
    # Renamed back, it is the target again.
    box.rename(name)
    assert run_exec(gate.address, name, ["true"])[0] == 0


def test_a_container_recreated_under_the_target_name(
        docker_client: Any, gate_factory: Callable[..., RunningGate],
        make_container: Callable[..., Any]) -> None:
    name = unique_name()
    old = make_container(name=name)
    gate = gate_factory(bridge=_bridge(name))
    created = request(gate.address, "POST", f"/containers/{name}/exec",
                      {"AttachStdout": True, "Cmd": ["true"]})
    assert created.status == 201
    old_exec = created.json()["Id"]
    old.remove(force=True)
    new = make_container(name=name)
    # The old container's exec is refused (its container is gone); the name reaches the new
    # container, and the engine's exec record names the new container's full id.
    assert request(gate.address, "POST", f"/exec/{old_exec}/start", {"Detach": False},
                   headers=UPGRADE).status == 403
    assert request(gate.address, "POST", f"/containers/{old.id}/exec",
                   {"Cmd": ["true"]}).status == 403
    assert _container_of(docker_client, gate, name) == new.id
    code, out, _ = run_exec(gate.address, name, ["cat", "/etc/hostname"])
    assert (code, out.strip()) == (0, new.id[:12].encode())
    # Another container renamed into the name becomes the target (names decide, at once).
    stranger = make_container()
    new.rename(f"{name}-old")
    stranger.rename(name)
    assert _container_of(docker_client, gate, name) == stranger.id
    assert request(gate.address, "POST", f"/containers/{new.id}/exec",
                   {"Cmd": ["true"]}).status == 403


def _container_of(client: Any, gate: RunningGate, ref: str) -> str:
    """Create an exec through the gate; the container the engine recorded it for."""
    created = request(gate.address, "POST", f"/containers/{ref}/exec", {"Cmd": ["true"]})
    assert created.status == 201, created.body
    return str(client.api.exec_inspect(created.json()["Id"])["ContainerID"])


def test_an_ambiguous_id_prefix_is_refused(
        docker_client: Any, gate_factory: Callable[..., RunningGate],
        make_container: Callable[..., Any]) -> None:
    box = make_container()
    gate = gate_factory(bridge=_bridge(box.name))
    created: list[Any] = []
    try:
        # A non-target container whose id starts like the target's (about 16 tries).
        while not any(c.id[0] == box.id[0] for c in docker_client.containers.list(
                all=True) if c.id != box.id):
            assert len(created) < 200
            created.append(docker_client.containers.create(
                BUSYBOX_IMAGE, "true", name=unique_name("ambig"), labels={TEST_LABEL: "1"}))
        others = [c.id for c in docker_client.containers.list(all=True)
                  if c.id != box.id and c.id[0] == box.id[0]]
        reply = request(gate.address, "POST", f"/containers/{box.id[:1]}/exec",
                        {"Cmd": ["touch", "/pwned"]})
        assert reply.status == 403
        assert "ambiguous" in reply.json()["message"]
        assert request(gate.address, "GET", f"/containers/{box.id[:1]}/json").status == 403
        assert _exec_ids(docker_client, box.id) == []
        for other in others:
            with contextlib.suppress(Exception):  # another test may have removed it meanwhile
                assert _exec_ids(docker_client, other) == []
        # A prefix only the target has is fine.
        assert run_exec(gate.address, box.id[:16], ["true"])[0] == 0
    finally:
        for c in created:
            with contextlib.suppress(Exception):
                c.remove(force=True)
