"""The gate in front of the real engine: what it allows works exactly like the engine."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from gate.conftest import RunningGate
from gate.helpers import connect, read_reply, request, run_exec

pytestmark = pytest.mark.docker


def _bridge(container: str, **command: Any) -> dict[str, Any]:
    spec = {"container": "app", "exec": "sh", **command}
    return {"version": "1", "containers": {"app": container}, "commands": {"tool": spec}}


@pytest.fixture
def target(make_container: Callable[..., Any]) -> Any:
    return make_container()


@pytest.fixture
def gate(gate_factory: Callable[..., RunningGate], target: Any) -> RunningGate:
    return gate_factory(bridge=_bridge(target.name, user="app", env=["FOO"]))


def test_exec_output_stderr_and_exit_code(gate: RunningGate, target: Any) -> None:
    code, out, err = run_exec(gate.address, target.name,
                              ["sh", "-c", "id -un; echo $FOO; echo oops >&2; exit 42"],
                              user="app", env=["FOO=bar", "SIDECAR_EXEC_TOKEN=" + "ab" * 16])
    assert (code, out, err) == (42, b"app\nbar\n", b"oops\n")


def test_unversioned_paths_and_id_forms_reach_the_same_container(
        gate: RunningGate, target: Any) -> None:
    for ref in (target.name, target.id, target.id[:12]):
        code, out, _ = run_exec(gate.address, ref, ["cat", "/etc/hostname"], prefix="")
        assert code == 0
        assert out.strip() == target.id[:12].encode()


def test_stdin_eof_reaches_the_process(gate: RunningGate, target: Any) -> None:
    # `cat` only ends when it reads EOF: the half-close must cross the gate.
    code, out, _ = run_exec(gate.address, target.name, ["cat"], stdin=b"line one\nline two\n")
    assert (code, out) == (0, b"line one\nline two\n")


def test_large_stream_is_byte_exact(gate: RunningGate, target: Any) -> None:
    payload = hashlib.sha256(b"seed").digest() * (16 * 1024 * 1024 // 32)
    code, out, _ = run_exec(gate.address, target.name, ["cat"], stdin=payload)
    assert code == 0
    assert hashlib.sha256(out).hexdigest() == hashlib.sha256(payload).hexdigest()


def test_tty_exec_and_resize(gate: RunningGate, target: Any) -> None:
    created = request(gate.address, "POST", f"/v1.41/containers/{target.name}/exec",
                      {"AttachStdin": True, "AttachStdout": True, "AttachStderr": True,
                       "Tty": True, "Cmd": ["sh", "-c", 'for i in $(seq 100); do s=$(stty size); '
                                                 '[ "$s" = "33 77" ] && break; sleep 0.1; '
                                                 'done; echo "size $s"; tty']})
    assert created.status == 201
    exec_id = created.json()["Id"]
    started = request(gate.address, "POST", f"/v1.41/exec/{exec_id}/start",
                      {"Detach": False, "Tty": True},
                      headers={"Connection": "Upgrade", "Upgrade": "tcp"})
    assert started.status == 101
    resized = request(gate.address, "POST", f"/v1.41/exec/{exec_id}/resize?h=33&w=77")
    assert resized.status == 200
    sock = started.sock
    assert sock is not None
    data = started.rest
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    assert b"size 33 77" in data
    assert b"/dev/pts/" in data


def test_fifty_concurrent_execs(gate: RunningGate, target: Any) -> None:
    results: dict[int, tuple[int | None, bytes]] = {}

    def one(i: int) -> None:
        code, out, _ = run_exec(gate.address, target.name, ["sh", "-c", f"echo n{i}; exit {i}"])
        results[i] = (code, out)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == {i: (i, f"n{i}\n".encode()) for i in range(50)}


def test_container_list_shows_only_targets(gate: RunningGate, target: Any,
                                           make_container: Callable[..., Any]) -> None:
    other = make_container()
    listing = request(gate.address, "GET", "/v1.41/containers/json?all=1")
    assert listing.status == 200
    assert [c["Id"] for c in listing.json()] == [target.id]
    assert int(listing.headers["content-length"]) == len(listing.body)
    filters = quote(json.dumps({"name": [other.name]}))
    filtered = request(gate.address, "GET", f"/v1.41/containers/json?filters={filters}")
    assert filtered.status == 200
    assert filtered.json() == []
    inspect = request(gate.address, "GET", f"/v1.41/containers/{target.name}/json")
    assert inspect.status == 200
    assert inspect.json()["Id"] == target.id


def test_keep_alive_checks_every_request(gate: RunningGate, target: Any) -> None:
    sock = connect(gate.address)
    sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n"
                 b"POST /v1.41/containers/" + target.name.encode() + b"/kill HTTP/1.1\r\n"
                 b"Host: d\r\nContent-Length: 0\r\n\r\n"
                 b"GET /version HTTP/1.1\r\nHost: d\r\n\r\n")
    first = read_reply(sock)
    second = read_reply(sock, first.rest)
    third = read_reply(sock, second.rest)
    sock.close()
    assert (first.status, first.body) == (200, b"OK")
    assert second.status == 403
    assert third.status == 200 and b"ApiVersion" in third.body
    target.reload()
    assert target.status == "running"


def test_missing_configured_container_is_a_404(gate_factory: Callable[..., RunningGate]) -> None:
    gate = gate_factory(bridge=_bridge("sidecar-test-does-not-exist-4711"))
    reply = request(gate.address, "POST", "/v1.41/containers/sidecar-test-does-not-exist-4711/exec",
                    {"Cmd": ["true"]})
    assert reply.status == 404
    assert "No such container" in reply.json()["message"]


def test_decision_log_is_json_lines(gate: RunningGate, target: Any) -> None:
    run_exec(gate.address, target.name, ["true"])
    request(gate.address, "POST", "/v1.41/containers/create", {"Image": "x"})
    lines = gate.log_lines()
    keys = {"time", "peer", "method", "path", "target", "decision", "reason"}
    assert all(keys <= set(line) for line in lines)
    allowed = [(x["method"], x["decision"], x["target"]) for x in lines
               if x["path"].endswith("/exec")]
    assert allowed == [("POST", "allow", target.id)]
    denied = [x for x in lines if x["decision"] == "deny"]
    assert denied[-1]["path"] == "/v1.41/containers/create"
    assert denied[-1]["peer"].startswith("127.0.0.1:")


def test_config_is_read_once_and_reloaded_on_request(
        tmp_path: Path, gate_factory: Callable[..., RunningGate],
        make_container: Callable[..., Any]) -> None:
    first, second = make_container(), make_container()
    config = tmp_path / "bridge.yaml"
    gate = gate_factory(config=config)
    # No file yet: everything is refused, with how to fix it.
    reply = request(gate.address, "POST", f"/containers/{first.name}/exec", {"Cmd": ["true"]})
    assert reply.status == 403 and "run `sidecar up` on the host" in reply.json()["message"]
    config.write_text(f"version: '1'\ncontainers: {{app: {first.name}}}\n"
                      "commands: {tool: {container: app, exec: sh}}\n")
    assert request(gate.address, "POST", f"/containers/{first.name}/exec",
                   {"Cmd": ["true"]}).status == 403  # no hot reload
    gate.reload()
    assert run_exec(gate.address, first.name, ["true"])[0] == 0
    config.write_text(f"version: '1'\ncontainers: {{app: {second.name}}}\n"
                      "commands: {tool: {container: app, exec: sh}}\n")
    assert run_exec(gate.address, first.name, ["true"])[0] == 0  # still the loaded policy
    gate.reload()
    assert request(gate.address, "POST", f"/containers/{first.name}/exec",
                   {"Cmd": ["true"]}).status == 403
    assert run_exec(gate.address, second.name, ["true"])[0] == 0
    config.write_text("commands: [not, valid\n")
    gate.reload()
    reply = request(gate.address, "POST", f"/containers/{second.name}/exec", {"Cmd": ["true"]})
    assert reply.status == 403 and "unusable" in reply.json()["message"]
    notices = gate.notices()
    assert [n.split(":")[1].strip()[:6] for n in notices if "policy" in n] == \
        ["no app", "policy", "policy", "the ap"]


def test_compose_service_resolution(gate_factory: Callable[..., RunningGate],
                                    make_container: Callable[..., Any]) -> None:
    labels = {"com.docker.compose.service": "web", "com.docker.compose.project": "gateproj"}
    ours = make_container(labels=labels)
    theirs = make_container(labels={**labels, "com.docker.compose.project": "otherproj"})
    gate = gate_factory(bridge={"version": "1", "sidecar": {"project": "gateproj"},
                                "commands": {"tool": {"container": "web", "exec": "sh"}}})
    assert run_exec(gate.address, ours.name, ["true"])[0] == 0
    assert request(gate.address, "POST", f"/containers/{theirs.name}/exec",
                   {"Cmd": ["true"]}).status == 403


def test_strict_mode(gate_factory: Callable[..., RunningGate], target: Any) -> None:
    from sidecar_gen.runtime.killer import NOTHING_FOUND, kill_command

    gate = gate_factory(bridge=_bridge(target.name, exec="cat -u"), strict=True)
    assert run_exec(gate.address, target.name, ["cat", "-u", "/etc/hostname"])[0] == 0
    # Allowed and run: no process carries this token, which the cleanup script reports.
    assert run_exec(gate.address, target.name, kill_command("0" * 32))[0] == NOTHING_FOUND
    for cmd in (["id"], ["cat"], ["sh", "-c", "id"], [*kill_command("0" * 32), "extra"],
                ["sh", "-c", "id", "sh", "0" * 32]):
        reply = request(gate.address, "POST", f"/containers/{target.name}/exec", {"Cmd": cmd})
        assert reply.status == 403, cmd
        assert "strict mode" in reply.json()["message"]


def test_own_container_is_never_a_target(tmp_path: Path, gate_factory: Callable[..., RunningGate],
                                         target: Any) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "mountinfo").write_text(
        f"1234 1200 8:1 /var/lib/docker/containers/{target.id}/hostname /etc/hostname rw - "
        "ext4 /dev/sda1 rw\n")
    (proc / "cgroup").write_text("0::/\n")
    gate = gate_factory(bridge=_bridge(target.name), self_ids=None, proc_root=proc)
    assert target.id in gate.gate.self_ids
    reply = request(gate.address, "POST", f"/containers/{target.name}/exec", {"Cmd": ["true"]})
    assert reply.status == 403


def test_unix_socket_listener(tmp_path: Path, gate_factory: Callable[..., RunningGate],
                              target: Any) -> None:
    path = tmp_path / "gate.sock"
    gate = gate_factory(bridge=_bridge(target.name), listen=f"unix://{path}")
    assert gate.address == f"unix://{path}"
    code, out, _ = run_exec(gate.address, target.name, ["cat"], stdin=b"via unix\n")
    assert (code, out) == (0, b"via unix\n")


def test_upstream_down_gives_502(tmp_path: Path, target: Any) -> None:
    from sidecar_gen.gate.service import Gate, GateOptions
    from sidecar_gen.model import bridge_from_plain

    log = (tmp_path / "log").open("w")
    gate = Gate(GateOptions(listen="tcp://127.0.0.1:0", upstream=f"unix://{tmp_path}/none.sock",
                            bridge=bridge_from_plain(_bridge(target.name)), log=log,
                            self_ids=frozenset()))
    thread = threading.Thread(target=gate.serve_forever, daemon=True)
    thread.start()
    try:
        reply = request(gate.address, "GET", "/_ping")
        assert reply.status == 502
        assert "cannot reach the engine" in reply.json()["message"]
    finally:
        gate.shutdown()
        thread.join(5)


def test_half_close_from_the_engine_side_reaches_the_client(gate: RunningGate,
                                                            target: Any) -> None:
    # The process closes its output while still reading stdin: the client must see EOF on its
    # read side while it can still write (then the process exits).
    created = request(gate.address, "POST", f"/containers/{target.name}/exec",
                      {"AttachStdin": True, "AttachStdout": True, "Cmd": ["cat"]})
    exec_id = created.json()["Id"]
    started = request(gate.address, "POST", f"/exec/{exec_id}/start", {"Detach": False},
                      headers={"Connection": "Upgrade", "Upgrade": "tcp"})
    sock = started.sock
    assert sock is not None
    sock.sendall(b"ping\n")
    sock.shutdown(socket.SHUT_WR)
    data = started.rest
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    assert data.endswith(b"ping\n")


def test_exec_start_refused_when_the_container_stopped_being_a_target(
        tmp_path: Path, gate_factory: Callable[..., RunningGate],
        make_container: Callable[..., Any]) -> None:
    box = make_container()
    config = tmp_path / "bridge.yaml"
    config.write_text(f"version: '1'\ncontainers: {{app: {box.name}}}\n"
                      "commands: {tool: {container: app, exec: sh}}\n")
    gate = gate_factory(config=config)
    created = request(gate.address, "POST", f"/containers/{box.name}/exec",
                      {"AttachStdout": True, "Cmd": ["touch", "/started"]})
    assert created.status == 201
    exec_id = created.json()["Id"]
    config.write_text("version: '1'\ncontainers: {app: elsewhere}\n"
                      "commands: {tool: {container: app, exec: sh}}\n")
    gate.reload()
    reply = request(gate.address, "POST", f"/exec/{exec_id}/start", {"Detach": False},
                    headers={"Connection": "Upgrade", "Upgrade": "tcp"})
    assert reply.status == 403
    assert "no longer a target" in reply.json()["message"]
    assert box.exec_run(["test", "-e", "/started"]).exit_code == 1
