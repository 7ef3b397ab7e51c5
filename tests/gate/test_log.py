"""The decision log is the audit trail: every line follows the documented schema
(schemas/gate-decision.schema.json) and says what the agent asked for, never a secret."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from conftest import REPO
from jsonschema import Draft202012Validator

from gate.conftest import RunningGate
from gate.helpers import connect, read_reply, request, send_raw, until_turned_away

pytestmark = pytest.mark.docker
SCHEMA = json.loads((REPO / "schemas" / "gate-decision.schema.json").read_text())


def test_every_line_follows_the_schema_and_says_what_ran(
        gate_factory: Callable[..., RunningGate], make_container: Callable[..., Any]) -> None:
    Draft202012Validator.check_schema(SCHEMA)
    box = make_container()
    gate = gate_factory(bridge={"version": "1", "commands": {"tool": {
        "container": box.name, "exec": "sh", "user": "nobody", "env": ["APP_KEY"]}}},
        head_timeout=0.5)
    # Another gate, with room for two connections only, for the line of connections turned away.
    small = gate_factory(bridge={"version": "1", "commands": {"tool": {
        "container": box.name, "exec": "sh"}}}, max_connections=2)
    body = {"AttachStdout": True, "Tty": True, "User": "nobody", "WorkingDir": "/tmp",
            "Env": ["APP_KEY=s3cret-value", "SIDECAR_EXEC_TOKEN=" + "ab" * 16],
            "Cmd": ["sh", "-c", "sleep 1"]}
    created = request(gate.address, "POST", f"/v1.41/containers/{box.name}/exec", body)
    assert created.status == 201
    exec_id = created.json()["Id"]
    started = request(gate.address, "POST", f"/v1.41/exec/{exec_id}/start",
                      {"Detach": False, "Tty": True},
                      headers={"Connection": "Upgrade", "Upgrade": "tcp"})
    assert started.status == 101
    assert request(gate.address, "POST", f"/v1.41/exec/{exec_id}/resize?h=40&w=120").status \
        == 200
    assert started.sock is not None
    started.sock.close()
    listing = "/v1.41/containers/json?all=1&filters=%7B%22label%22%3A%5B%22x%3Dy%22%5D%7D"
    assert request(gate.address, "GET", listing).status == 200
    root = {**body, "User": "root", "Env": ["APP_KEY=another-s3cret"]}
    assert request(gate.address, "POST", f"/containers/{box.id}/exec", root).status == 403
    assert request(gate.address, "POST", "/containers/create?name=x", {"Image": "x"}).status \
        == 403
    assert send_raw(gate.address, b"GET /_ping HTTP/1.1\nHost: x\n\n").status == 400
    slow = connect(gate.address)
    slow.sendall(b"GET /_ping HTTP/1.1\r\n")  # times out: 408
    assert read_reply(slow).status == 408
    held = [connect(small.address) for _ in range(2)]
    for sock in held:
        sock.sendall(b"G")
    assert until_turned_away(small.address).status == 503
    header = request(gate.address, "GET", "/_ping").headers["x-sidecar-policy"]
    gate.stop()
    small.stop()

    lines = gate.log_path.read_text().splitlines() + small.log_path.read_text().splitlines()
    assert "s3cret" not in "\n".join(lines)
    decisions = [json.loads(line) for line in lines]
    validator = Draft202012Validator(SCHEMA)
    for decision in decisions:
        errors = [e.message for e in validator.iter_errors(decision)]
        assert errors == [], (decision, errors)
    # Each line names the policy in force: the one the gate's /_ping announces.
    assert {json.loads(line)["policy"] for line in gate.log_path.read_text().splitlines()} \
        == {header}
    assert header.startswith("sha256:")

    def one(**match: Any) -> dict[str, Any]:
        found = [d for d in decisions if all(d.get(k) == v for k, v in match.items())]
        assert len(found) == 1, (match, decisions)
        return found[0]

    create = one(method="POST", path=f"/v1.41/containers/{box.name}/exec")
    assert (create["decision"], create["status"], create["target"]) == ("allow", 201, box.id)
    assert create["exec"] == {"cmd": ["sh", "-c", "sleep 1"], "user": "nobody",
                              "env": ["APP_KEY", "SIDECAR_EXEC_TOKEN"], "workdir": "/tmp",
                              "tty": True}
    assert create["exec_id"] == exec_id
    start = one(path=f"/v1.41/exec/{exec_id}/start")
    assert (start["decision"], start["status"], start["target"]) == ("allow", 101, box.id)
    resize = one(path=f"/v1.41/exec/{exec_id}/resize?h=40&w=120")
    assert resize["size"] == {"h": 40, "w": 120}
    assert one(path=listing)["status"] == 200  # the full query string
    refused = one(path=f"/containers/{box.id}/exec")
    assert (refused["decision"], refused["status"], refused["exec"]["user"]) == \
        ("deny", 403, "root")
    assert "user 'root'" in refused["reason"]
    assert one(path="/containers/create?name=x")["decision"] == "deny"
    assert one(status=400)["reason"] == "bare CR or LF in the request head"
    assert one(status=408)["path"] == "-"
    assert one(status=503)["count"] >= 1
