"""The real dispatcher and the real `sidecar proxy` command together, through the real engine.

(The dispatcher's whole e2e suite also runs through a gate: see `docker_endpoint` in
tests/runtime/conftest.py.)
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from gate.conftest import RunningGate

pytestmark = pytest.mark.docker


def _install(tmp: Path, bridge: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    from sidecar_gen.wrappers.install import install_wrappers

    config = tmp / ".sidecar" / "bridge.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(bridge))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
    install_wrappers(tmp / "bin", config)
    return {"PATH": f"{tmp / 'bin'}:/usr/bin:/bin", "HOME": str(tmp),
            "XDG_CACHE_HOME": str(tmp / "cache"), "BRIDGE_CONFIG": str(config)}


def test_fifty_concurrent_dispatches_through_the_gate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_container: Callable[..., Any],
        gate_factory: Callable[..., RunningGate]) -> None:
    box = make_container()
    env = _install(tmp_path, {"version": "1", "commands": {
        "say": {"container": box.name, "exec": ["sh", "-c", 'echo "$1"; exit "$2"', "sh"]}}},
        monkeypatch)
    gate = gate_factory(config=Path(env["BRIDGE_CONFIG"]))
    env["DOCKER_HOST"] = gate.address

    def one(i: int) -> tuple[int, bytes]:
        result = subprocess.run(["say", f"n{i}", str(i)], env=env, capture_output=True,
                                cwd="/tmp", timeout=120)
        return result.returncode, result.stdout

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(one, range(50)))
    assert results == [(i, f"n{i}\n".encode()) for i in range(50)]


def test_gate_refusal_reaches_the_user_as_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_container: Callable[..., Any],
        gate_factory: Callable[..., RunningGate]) -> None:
    box = make_container()
    # The dispatcher's bridge.yaml passes SECRET; the gate's (the one that counts) does not.
    env = _install(tmp_path, {"version": "1", "commands": {
        "show": {"container": box.name, "exec": "env", "env": ["SECRET"]}}}, monkeypatch)
    gate = gate_factory(bridge={"version": "1", "commands": {
        "show": {"container": box.name, "exec": "env"}}})
    env.update(DOCKER_HOST=gate.address, SECRET="hunter2")
    result = subprocess.run(["show"], env=env, capture_output=True, cwd="/tmp", timeout=60)
    assert result.returncode == 125
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert "permission denied by the Docker API gate" in lines[0]
    assert "environment variable SECRET is not configured" in lines[0]
    assert b"hunter2" not in result.stdout


def start_proxy(tmp_path: Path, sidecar_cli: list[str], config: Path,
                *extra: str) -> tuple[Any, str, Path]:
    """`sidecar proxy` as a process on a free port: (process, address, decision log)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / f"decisions-{port}.jsonl"
    proc = subprocess.Popen([*sidecar_cli, "proxy", "--listen", f"tcp://127.0.0.1:{port}",
                             "--config", str(config), "--log", str(log), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            assert time.monotonic() < deadline, "sidecar proxy did not start"
            time.sleep(0.05)
    return proc, f"tcp://127.0.0.1:{port}", log


def stop_proxy(proc: Any) -> str:
    """SIGTERM; the exit code must be 0; returns what it wrote on stderr."""
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    return str(proc.stderr.read().decode())


@pytest.fixture
def proxy_process(tmp_path: Path, sidecar_cli: list[str],
                  make_container: Callable[..., Any]) -> Iterator[tuple[Any, str, Path, Any]]:
    box = make_container()
    config = tmp_path / "bridge.yaml"
    config.write_text(json.dumps({"version": "1", "commands": {
        "tool": {"container": box.name, "exec": "sh"}}}))
    proc, address, log = start_proxy(tmp_path, sidecar_cli, config)
    yield proc, address, log, box
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_proxy_command_serves_logs_and_stops_on_sigterm(
        proxy_process: tuple[Any, str, Path, Any]) -> None:
    from gate.helpers import request, run_exec

    proc, address, log, box = proxy_process
    assert run_exec(address, box.name, ["sh", "-c", "exit 9"])[0] == 9
    assert request(address, "POST", "/containers/create", {"Image": "x"}).status == 403
    stderr = stop_proxy(proc)
    assert "listening on tcp://127.0.0.1:" in stderr
    decisions = [json.loads(line) for line in log.read_text().splitlines()]
    assert [d["decision"] for d in decisions][-1] == "deny"
    assert any(d["decision"] == "allow" and d["target"] == box.id for d in decisions)


def test_policy_is_read_at_start_and_on_sighup_only(
        tmp_path: Path, proxy_process: tuple[Any, str, Path, Any],
        make_container: Callable[..., Any]) -> None:
    from gate.helpers import request, run_exec

    proc, address, log, box = proxy_process
    other = make_container()
    config = tmp_path / "bridge.yaml"
    first = request(address, "GET", "/_ping").headers["x-sidecar-policy"]
    assert first == "sha256:" + hashlib.sha256(config.read_bytes()).hexdigest()
    assert request(address, "GET", "/v1.41/version").headers["x-sidecar-policy"] == first
    assert request(address, "HEAD", "/_ping").headers["x-sidecar-policy"] == first
    # An edit (what an agent could do through a routed command) changes nothing by itself.
    config.write_text(json.dumps({"version": "1", "commands": {
        "tool": {"container": other.name, "exec": "sh", "user": "0"}}}))
    assert run_exec(address, box.name, ["true"])[0] == 0
    refused = request(address, "POST", f"/containers/{other.name}/exec", {"Cmd": ["id"]})
    assert refused.status == 403
    assert other.attrs["ExecIDs"] is None and other.client.api.inspect_container(
        other.id)["ExecIDs"] is None
    assert request(address, "GET", "/_ping").headers["x-sidecar-policy"] == first
    # SIGHUP (what `sidecar up` sends after approving) loads it.
    proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while request(address, "GET", "/_ping").headers["x-sidecar-policy"] == first:
        assert time.monotonic() < deadline, "SIGHUP did not reload the policy"
        time.sleep(0.05)
    assert run_exec(address, other.name, ["true"], user="0")[0] == 0
    assert request(address, "POST", f"/containers/{box.name}/exec",
                   {"Cmd": ["true"]}).status == 403  # not configured any more
    stderr = stop_proxy(proc)
    loaded = [line for line in stderr.splitlines() if "loaded from" in line]
    assert len(loaded) == 2, stderr
    policies = {d["policy"] for d in (json.loads(x) for x in log.read_text().splitlines())}
    assert policies == {first, "sha256:" + hashlib.sha256(config.read_bytes()).hexdigest()}


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--listen", "udp://x"], 2, "the listen address must be"),
    (["--upstream", "ftp://127.0.0.1:2375"], 2, "the upstream must be unix:///path or tcp://"),
    (["--log", "/nonexistent/dir/log"], 2, "cannot open the decision log"),
    (["--max-connections", "0"], 2, "--max-connections"),
])
def test_proxy_command_bad_input(tmp_path: Path, sidecar_cli: list[str], args: list[str],
                                 code: int, message: str) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text('{"version": "1", "commands": {"tool": {"container": "c", "exec": "x"}}}')
    base = ["--listen", "tcp://127.0.0.1:0", "--config", str(config)]
    result = subprocess.run([*sidecar_cli, "proxy", *base, *args], capture_output=True,
                            timeout=30, env={k: v for k, v in os.environ.items()
                                             if k != "SIDECAR_GATE_LOG"})
    assert result.returncode == code
    lines = [line for line in result.stderr.decode().strip().splitlines() if line.strip()]
    assert message in lines[-1] and len([x for x in lines if "error" in x.lower()]) == 1, lines


@pytest.mark.parametrize(("text", "says"), [
    (None, "no approved policy at"),
    ("version: '1'\ncommands: {sh: {container: c, exec: sh}}\n", "reserved"),
    ("commands: [not, valid\n", "unusable"),
])
def test_missing_or_invalid_policy_refuses_everything(
        tmp_path: Path, sidecar_cli: list[str], make_container: Callable[..., Any],
        text: str | None, says: str) -> None:
    from gate.helpers import request

    box = make_container()
    config = tmp_path / "policy" / "bridge.yaml"
    config.parent.mkdir()
    if text is not None:
        config.write_text(text)
    proc, address, _log = start_proxy(tmp_path, sidecar_cli, config)
    ping = request(address, "GET", "/_ping")
    assert (ping.status, ping.headers["x-sidecar-policy"]) == (200, "none")
    for method, target in (("POST", f"/containers/{box.name}/exec"),
                           ("GET", "/containers/json"), ("GET", f"/containers/{box.id}/json")):
        reply = request(address, method, target, {"Cmd": ["true"]} if method == "POST" else None)
        assert reply.status == 403
        assert "sidecar up" in reply.json()["message"]
    assert box.client.api.inspect_container(box.id)["ExecIDs"] is None
    stderr = stop_proxy(proc)
    notices = [line for line in stderr.splitlines() if says in line]
    assert len(notices) == 1, stderr
    assert "refusing every request" in notices[0] and "sidecar up" in notices[0]
