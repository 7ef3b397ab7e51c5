"""The endpoint table's exec-create handler (`endpoints._exec_create`) on a real gate and engine:
a body the rule does not allow is refused with its reason, and the engine records no exec."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from conftest import BUSYBOX_IMAGE, TEST_LABEL

from gate.conftest import RunningGate, start_gate
from gate.helpers import request

pytestmark = pytest.mark.docker


class Target(NamedTuple):
    gate: RunningGate
    container: Any


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[Target]:
    """A gate whose `php` and `composer` route to one running container."""
    name = f"endpoints-{uuid.uuid4().hex[:8]}"
    container = docker_client.containers.run(BUSYBOX_IMAGE, "sleep 3600", detach=True,
                                             name=name, init=True, labels={TEST_LABEL: "1"})
    bridge = {"version": "1", "containers": {"php": name}, "commands": {
        "php": {"container": "php", "exec": "php -d x=1", "user": "1000:1000", "env": ["APP"]},
        "composer": {"container": "php", "exec": ["composer"], "user": "app",
                     "env": ["TOKEN"]}}}
    gate = start_gate(Path(tmp_path_factory.mktemp("endpoints")), bridge=bridge)
    try:
        yield Target(gate, container)
    finally:
        gate.stop()
        with contextlib.suppress(Exception):
            container.remove(force=True)


def _exec_ids(container: Any) -> list[str]:
    container.reload()
    return list(container.attrs.get("ExecIDs") or [])


def _create(target: Target, body: bytes) -> tuple[int, str]:
    reply = request(target.gate.address, "POST", f"/v1.41/containers/{target.container.name}"
                    "/exec", body, headers={"Content-Type": "application/json"})
    return reply.status, str(reply.json().get("message", ""))


@pytest.mark.parametrize(("doc", "reason"), [
    ({"Privileged": True}, "privileged exec not allowed"),
    ({"Privileged": 1}, "Privileged must be a boolean"),
    ({"Privileged": "false"}, "Privileged must be a boolean"),
    ({"privileged": True}, "key 'privileged' not allowed"),
    ({"User": "root"}, "user 'root' is not a configured user of this container"),
    ({"User": "0"}, "user '0' is not a configured user of this container"),
    ({"User": "app:root"}, "user 'app:root' is not a configured user of this container"),
    ({"User": 1000}, "User must be a string"),
    ({"Env": ["SECRET=1"]}, "environment variable SECRET is not configured"),
    ({"Env": ["SECRET"]}, "environment variable SECRET is not configured"),
    ({"Env": "APP=1"}, "Env must be a list of strings"),
    ({"Env": ["=x"]}, "environment entry '' is not a variable name"),
    ({"Env": ["SIDECAR_EXEC_TOKEN=xyz"]}, "SIDECAR_EXEC_TOKEN must be a hex token"),
    ({"Env": ["HOME=/root"]}, "environment variable HOME is not configured"),
    ({"Env": ["HOME="]}, "environment variable HOME is not configured"),
    ({"Cmd": []}, "Cmd must be a non-empty list of strings"),
    ({"Cmd": "php"}, "Cmd must be a non-empty list of strings"),
    ({"Cmd": [1]}, "Cmd must be a non-empty list of strings"),
    ({"Cmd": ["a\x00b"]}, "Cmd contains a NUL byte"),
    ({"Cmd": None}, "Cmd must be a non-empty list of strings"),
    ({"HostConfig": {}}, "key 'HostConfig' not allowed"),
    ({"Detach": True}, "detached exec not allowed"),
    ({"Tty": "yes"}, "Tty must be a boolean"),
    ({"ConsoleSize": [1]}, "ConsoleSize must be [rows, columns]"),
    ({"ConsoleSize": [True, 1]}, "ConsoleSize must be [rows, columns]"),
    ({"WorkingDir": 1}, "WorkingDir must be a string"),
])
def test_exec_bodies_the_rule_does_not_allow_are_refused(target: Target, doc: dict[str, Any],
                                                         reason: str) -> None:
    before = _exec_ids(target.container)
    status, message = _create(target, json.dumps({"Cmd": ["php"], **doc}).encode())
    assert (status, reason in message) == (403, True), message
    assert _exec_ids(target.container) == before


@pytest.mark.parametrize(("raw", "status", "reason"), [
    (b"[]", 400, "body is not a JSON object"),
    (b"null", 400, "body is not a JSON object"),
    (b"{", 400, "body is not valid JSON"),
    (b"\xff", 400, "body is not valid JSON"),
    (b'{"Cmd":["a"],"Cmd":["b"]}', 403, "JSON body repeats a key"),
    (b'{"Cmd":[NaN]}', 403, "JSON constant NaN not allowed"),
    (b"[" * 100000, 400, "body larger than 65536 bytes"),
    (b'{"Cmd":["a"]}' + b" " * 70000, 400, "body larger than 65536 bytes"),
])
def test_malformed_exec_bodies_are_refused(target: Target, raw: bytes, status: int,
                                           reason: str) -> None:
    before = _exec_ids(target.container)
    got, message = _create(target, raw)
    assert (got, reason in message) == (status, True), message
    assert _exec_ids(target.container) == before


def test_an_allowed_body_is_created_on_the_engine(target: Target) -> None:
    """The refusals above are the rule's, not a gate that refuses everything."""
    before = _exec_ids(target.container)
    body = {"Cmd": ["php", "-d", "x=1", "-v"], "User": "1000:1000", "Env": ["APP=1"]}
    status, message = _create(target, json.dumps(body).encode())
    assert status == 201, message
    assert len(_exec_ids(target.container)) == len(before) + 1
