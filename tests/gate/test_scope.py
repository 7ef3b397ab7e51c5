"""Which containers can be targets at all: the gate's own compose project only, and
never the services `sidecar render` generates, whatever bridge.yaml says.

Effects are proven by the engine's event stream: no `exec_create` ever reached a container the
gate must not touch.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import unique_name
from ruamel.yaml import YAML

from gate.conftest import RunningGate
from gate.helpers import request, run_exec
from sidecar_gen.render import run_render
from sidecar_gen.runtime.contract import NUMBER_LABEL, PROJECT_LABEL, ROLE_LABEL, SERVICE_LABEL

pytestmark = pytest.mark.docker


def _exec_events(client: Any, cid: str, since: float) -> list[str]:
    events = client.events(since=int(since) - 1, until=int(time.time()) + 1, decode=True,
                           filters={"container": cid, "type": "container"})
    return [e["Action"] for e in events if str(e.get("Action", "")).startswith("exec_")]


def _member(make_container: Callable[..., Any], project: str, service: str,
            **labels: str) -> Any:
    return make_container(name=f"{project}-{service}-1", labels={
        PROJECT_LABEL: project, SERVICE_LABEL: service, NUMBER_LABEL: "1", **labels})


def rendered_labels(tmp_path: Path) -> dict[str, dict[str, str]]:
    """The labels `sidecar render` puts on each generated service (viewer enabled)."""
    root = tmp_path / "rendered"
    (root / ".sidecar").mkdir(parents=True)
    (root / ".sidecar" / "bridge.yaml").write_text(
        'version: "1"\ncommands:\n  php: {container: php, exec: php}\n'
        "sidecar:\n  viewer: {enabled: true}\n")
    (root / "compose.yaml").write_text("services:\n  php:\n    image: php\n")
    run_render(root)
    services = YAML(typ="safe").load((root / ".sidecar" / "compose.yml").read_text())["services"]
    return {name: dict(spec["labels"]) for name, spec in services.items()}


def test_generated_services_are_never_targets_through_the_dispatcher(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, docker_client: Any,
        make_container: Callable[..., Any], gate_factory: Callable[..., RunningGate]) -> None:
    from sidecar_gen.wrappers.install import install_wrappers

    labels = rendered_labels(tmp_path)
    assert set(labels) == {"claude", "sidecar-gate", "viewer", "sidecar-broker"}
    project = unique_name("roles")
    since = time.time()
    protected = {name: _member(make_container, project, name, **labels[name])
                 for name in labels}
    app = _member(make_container, project, "app")
    commands = {f"who-{name}": {"container": name, "exec": "id"} for name in [*labels, "app"]}
    config = tmp_path / ".sidecar" / "bridge.yaml"
    config.parent.mkdir()
    config.write_text(json.dumps({"version": "1", "commands": commands,
                                  "sidecar": {"project": project}}))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    install_wrappers(tmp_path / "bin", config)
    gate = gate_factory(config=config, project=project)
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path),
           "XDG_CACHE_HOME": str(tmp_path / "cache"), "BRIDGE_CONFIG": str(config),
           "DOCKER_HOST": gate.address}

    def run(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([command], env=env, capture_output=True, text=True, cwd="/tmp",
                              timeout=60)

    assert run("who-app").returncode == 0  # the control: routing itself works
    for name, box in protected.items():
        result = run(f"who-{name}")
        assert result.returncode == 125, result
        role = labels[name][ROLE_LABEL]
        assert f"is never a target: it is protected (role {role})" in result.stderr
        # And straight at the API, by every reference.
        for ref in (box.id, box.id[:12], box.name, name):
            for method, path in (("POST", f"/containers/{ref}/exec"),
                                 ("GET", f"/containers/{ref}/json")):
                reply = request(gate.address, method, path,
                                {"Cmd": ["id"]} if method == "POST" else None)
                assert reply.status in (403, 404), (ref, reply.body)
    listed = {c["Id"] for c in request(gate.address, "GET", "/containers/json?all=1").json()}
    assert listed == {app.id}
    assert _exec_events(docker_client, app.id, since)  # the control has its events
    for box in protected.values():
        assert _exec_events(docker_client, box.id, since) == []


def test_only_the_gate_own_compose_project_has_targets(
        tmp_path: Path, docker_client: Any, make_container: Callable[..., Any],
        gate_factory: Callable[..., RunningGate]) -> None:
    ours, theirs = unique_name("ours"), unique_name("theirs")
    # The gate's own container (a stand-in found through a mountinfo line, as in a container).
    itself = _member(make_container, ours, "sidecar-gate", **{ROLE_LABEL: "gate"})
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "mountinfo").write_text(
        f"1 2 8:1 /var/lib/docker/containers/{itself.id}/hostname /etc/hostname rw - ext4 x\n")
    (proc / "cgroup").write_text("0::/\n")
    since = time.time()
    web = _member(make_container, ours, "web")
    foreign_web = _member(make_container, theirs, "web")
    foreign_db = _member(make_container, theirs, "db")
    loner = make_container()  # no compose labels at all
    gate = gate_factory(bridge={"version": "1", "containers": {"db": foreign_db.name},
                                "sidecar": {"project": theirs},  # the gate's own project wins
                                "commands": {
                                    "w": {"container": "web", "exec": "sh"},
                                    "d": {"container": "db", "exec": "sh"},
                                    "l": {"container": loner.name, "exec": "sh"},
                                    "s": {"container": "sidecar-gate", "exec": "sh"}}},
                        self_ids=None, proc_root=proc)
    assert f"sidecar gate: targets are limited to compose project {ours}" in gate.notices()
    assert run_exec(gate.address, web.id, ["true"])[0] == 0
    # Outside the project nothing is even seen: a configured name there is answered like a
    # missing container (another session's containers are not an oracle either).
    for box in (foreign_db, loner):
        reply = request(gate.address, "POST", f"/containers/{box.name}/exec", {"Cmd": ["id"]})
        assert (reply.status, reply.json()) == (404, {"message": f"No such container: {box.name}"})
    reply = request(gate.address, "POST", "/containers/sidecar-gate/exec", {"Cmd": ["id"]})
    assert reply.status == 403
    assert "the gate's own container" in reply.json()["message"]
    for ref in (foreign_web.id, foreign_web.name, itself.id):
        assert request(gate.address, "POST", f"/containers/{ref}/exec",
                       {"Cmd": ["id"]}).status == 403
    listed = [c["Id"] for c in request(gate.address, "GET", "/containers/json?all=1").json()]
    assert listed == [web.id]
    for box in (foreign_web, foreign_db, loner, itself):
        assert _exec_events(docker_client, box.id, since) == []
