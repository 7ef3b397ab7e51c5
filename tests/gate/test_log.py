"""The decision log is the audit trail: every line follows the documented schema
(schemas/gate-decision.schema.json) and says what the agent asked for, never a secret."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from conftest import REPO
from jsonschema import Draft202012Validator

from gate.conftest import RunningGate
from gate.helpers import connect, read_reply, request, run_exec, send_raw, until_turned_away
from sidecar_gen.gate import audit

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
    start = one(path=f"/v1.41/exec/{exec_id}/start", reason="start an exec of this gate")
    assert (start["decision"], start["status"], start["target"]) == ("allow", 101, box.id)
    # The stream's end has its own line: the exec, and the bytes each side sent (none in).
    end = one(path=f"/v1.41/exec/{exec_id}/start", reason="exec stream ended")
    assert (end["exec_id"], end["target"], end["stream"]["stdin"]) == (exec_id, box.id, 0)
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


def _validate(lines: list[dict[str, Any]]) -> None:
    validator = Draft202012Validator(SCHEMA)
    for line in lines:
        errors = [e.message for e in validator.iter_errors(line)]
        assert errors == [], (line, errors)


def test_a_script_fed_on_stdin_shows_as_its_byte_count(
        gate_factory: Callable[..., RunningGate], make_container: Callable[..., Any]) -> None:
    """`sh` reading its script from stdin is logged as ["sh"]: the line that ends the stream
    says how much input it was given, and how much came out (issue 20.7)."""
    box = make_container()
    gate = gate_factory(bridge={"version": "1", "commands": {"tool": {
        "container": box.name, "exec": "sh"}}})
    script = b"echo fed; echo " + b"x" * 5000 + b" >/dev/null; echo twice >&2\n"
    code, out, err = run_exec(gate.address, box.name, ["sh"], stdin=script)
    assert (code, out, err) == (0, b"fed\n", b"twice\n")
    quiet = run_exec(gate.address, box.name, ["true"])
    assert quiet == (0, b"", b"")
    gate.stop()
    lines = gate.log_lines()
    _validate(lines)
    ends = [d for d in lines if d["reason"] == "exec stream ended"]
    created = {d["exec_id"]: d["exec"]["cmd"] for d in lines if "exec" in d}
    by_cmd = {tuple(created[d["exec_id"]]): d["stream"] for d in ends}
    # Without a terminal each chunk of output carries the engine's 8-byte frame header.
    assert by_cmd[("sh",)]["stdin"] == len(script)
    assert by_cmd[("sh",)]["output"] == len(b"fed\n") + len(b"twice\n") + 2 * 8
    assert by_cmd[("true",)] == {"stdin": 0, "output": 0}


def _flood(address: str, requests: list[bytes]) -> int:
    """Pipeline `requests` on one connection (read while writing); the 403s counted."""
    sock = connect(address)
    sent = threading.Thread(target=lambda: sock.sendall(b"".join(requests)), daemon=True)
    sent.start()
    data, refused = b"", 0
    while refused < len(requests):
        chunk = sock.recv(1 << 20)
        assert chunk, f"closed after {refused} answers"
        data += chunk
        while b"\r\n\r\n" in data:
            head, _, data = data.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(data) < length:
                data += sock.recv(1 << 20)
            data = data[length:]
            assert head.startswith(b"HTTP/1.1 403 "), head[:100]
            refused += 1
    sent.join()
    sock.close()
    return refused


def test_a_flood_of_refusals_is_counted_not_written(
        gate_factory: Callable[..., RunningGate], make_container: Callable[..., Any]) -> None:
    """One client pipelining refused requests with 15 KB paths (issue 20.4: 275 MiB in 10 s)
    gets a bounded log: its first lines (cut, saying by how much), then count lines whose counts
    add up to every request it made; the execs it ran meanwhile are all written whole."""
    box = make_container()
    gate = gate_factory(bridge={"version": "1", "commands": {"tool": {
        "container": box.name, "exec": "sh"}}})
    long_path = "/" + "a" * 15000
    # Refusals for 20 reasons (more than the 16 kept apart), most with the long path.
    methods = [f"M{i}" for i in range(20)]
    requests = [f"GET {long_path}/{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                for i in range(3000)]
    requests += [f"{m} /_ping HTTP/1.1\r\nHost: x\r\n\r\n".encode() for m in methods * 10]
    argv = ["sh", "-c", "echo " + "y" * 3000]
    with ThreadPoolExecutor(max_workers=4) as pool:
        flood = pool.submit(_flood, gate.address, requests)
        execs = [pool.submit(run_exec, gate.address, box.name, argv) for _ in range(20)]
        assert flood.result(timeout=300) == len(requests)
        assert [f.result()[0] for f in execs] == [0] * 20
    gate.stop()
    written = gate.log_path.stat().st_size
    lines = gate.log_lines()
    _validate(lines)
    flood_peer = {d["peer"] for d in lines if d["decision"] == "deny" and "since" not in d}
    assert len(flood_peer) == 1
    client = flood_peer.pop().rpartition(":")[0]
    mine = [d for d in lines if d["peer"].rpartition(":")[0] == client or d["peer"] == client]
    refused = [d for d in mine if d["decision"] == "deny"]
    counts = [d for d in refused if "since" in d]
    # Every request is accounted for, one by one or in a count line.
    assert sum(d.get("count", 1) for d in refused) == len(requests)
    assert counts and all(d["count"] >= 1 and d["path"] == "-" for d in counts)
    assert any(d["reason"] == audit.OTHER_REASON for d in counts)
    assert len({d["reason"] for d in counts}) <= audit.MAX_REASONS + 1
    # What was written one by one is cut, and says how much.
    one_by_one = [d for d in refused if "since" not in d and d["path"].startswith("/aaa")]
    assert one_by_one
    for d in one_by_one:
        assert len(d["path"]) == audit.STRING_BYTES
        assert d["cut"]["path"] in {len(f"{long_path}/{i}") - audit.STRING_BYTES
                                    for i in (0, 10, 100, 1000)}
    # The execs: every create and start line, whole, with the full argv.
    creates = [d for d in lines if d["reason"] == "exec into a target"]
    assert len(creates) == 20 and all(d["exec"]["cmd"] == argv for d in creates)
    assert len([d for d in lines if d["reason"] == "start an exec of this gate"]) == 20
    assert len([d for d in lines if d["reason"] == "exec stream ended"]) == 20
    assert not any("cut" in d for d in lines if d["decision"] == "allow")
    # Bounded: the budget's burst, plus what it refills in the time the flood took, plus the
    # count lines and the execs' lines; unbounded it was over 45 MB.
    sent = sum(len(r) for r in requests)
    assert sent > 45_000_000
    assert written < 400_000, written


def test_the_documented_bounds_are_the_gates() -> None:
    """README and the schema state the bounds audit.py enforces."""
    cut = SCHEMA["properties"]["cut"]["description"]
    assert f"strings are cut to {audit.STRING_BYTES} bytes, list items to {audit.ITEM_BYTES}, " \
        f"lists to {audit.LIST_ITEMS} items" in cut
    readme = (REPO / "README.md").read_text()
    assert f"its strings cut to {audit.STRING_BYTES} bytes, list items to {audit.ITEM_BYTES} " \
        f"bytes and lists to {audit.LIST_ITEMS} items" in readme
    assert f"{audit.BUDGET_BURST // 1024} KiB at once, refilled at " \
        f"{audit.BUDGET_PER_SECOND // 1024} KiB a second" in readme
    assert f"every {audit.SUMMARY_SECONDS:.0f} s with `count`" in readme
    assert f"{audit.ACTION_BURST // (1 << 20)} MiB at once, refilled at " \
        f"{audit.ACTION_PER_SECOND // 1024} KiB a\n  second" in readme
    assert f"At most {audit.MAX_REASONS} reasons per\n  client" in readme
    assert f"more than {audit.MAX_CLIENTS} clients share one budget" in readme


def test_a_flood_of_allowed_execs_is_recorded_exec_by_exec(
        gate_factory: Callable[..., RunningGate], make_container: Callable[..., Any]) -> None:
    """Allowed exec creates are actions: every one has its line, never a count; beyond the
    client's action budget the line is cut (60 KB argvs: 62 MB in 10 s before)."""
    box = make_container()
    gate = gate_factory(bridge={"version": "1", "commands": {"tool": {
        "container": box.name, "exec": "sh"}}})
    argv = ["sh", "-c", "x" * 60000]
    created = []
    for _ in range(60):
        reply = request(gate.address, "POST", f"/v1.41/containers/{box.name}/exec",
                        {"Cmd": argv, "AttachStdout": True})
        assert reply.status == 201
        created.append(reply.json()["Id"])
    gate.stop()
    lines = gate.log_lines()
    _validate(lines)
    creates = [d for d in lines if d["reason"] == "exec into a target"]
    assert [d["exec_id"] for d in creates] == created  # each one, in order
    whole = [d for d in creates if d["exec"]["cmd"] == argv]
    cut = [d for d in creates if "cut" in d]
    assert whole and cut and len(whole) + len(cut) == len(created)
    assert creates.index(cut[0]) == len(whole)  # whole while the budget lasts, then cut
    for d in cut:
        assert d["exec"]["cmd"] == ["sh", "-c", "x" * audit.ITEM_BYTES]
        assert d["cut"] == {"exec": 60000 - audit.ITEM_BYTES}
    size = gate.log_path.stat().st_size
    assert size < audit.ACTION_BURST + 60 * 2048, size
