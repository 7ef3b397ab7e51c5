"""The real dispatcher and the real `sidecar proxy` command together, through the real engine.

(The dispatcher's whole e2e suite also runs through a gate: see `docker_endpoint` in
tests/runtime/conftest.py.)
"""

from __future__ import annotations

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
    from sidecar_gen.wrappers import install_wrappers

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


@pytest.fixture
def proxy_process(tmp_path: Path, sidecar_cli: list[str],
                  make_container: Callable[..., Any]) -> Iterator[tuple[Any, int, Path, Any]]:
    box = make_container()
    config = tmp_path / "bridge.yaml"
    config.write_text(json.dumps({"version": "1", "commands": {
        "tool": {"container": box.name, "exec": "sh"}}}))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "decisions.jsonl"
    proc = subprocess.Popen([*sidecar_cli, "proxy", "--listen", f"tcp://127.0.0.1:{port}",
                             "--config", str(config), "--log", str(log)],
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
    yield proc, port, log, box
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_proxy_command_serves_logs_and_stops_on_sigterm(
        proxy_process: tuple[Any, int, Path, Any]) -> None:
    from gate.helpers import request, run_exec

    proc, port, log, box = proxy_process
    address = f"tcp://127.0.0.1:{port}"
    assert run_exec(address, box.name, ["sh", "-c", "exit 9"])[0] == 9
    assert request(address, "POST", "/containers/create", {"Image": "x"}).status == 403
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert b"listening on tcp://127.0.0.1:" in proc.stderr.read()
    decisions = [json.loads(line) for line in log.read_text().splitlines()]
    assert [d["decision"] for d in decisions][-1] == "deny"
    assert any(d["decision"] == "allow" and d["target"] == box.id for d in decisions)


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--listen", "udp://x"], 2, "the listen address must be"),
    (["--upstream", "tcp://127.0.0.1:2375"], 2, "the upstream must be unix://"),
    (["--config", "/nonexistent/bridge.yaml"], 2, "/nonexistent/bridge.yaml"),
    (["--log", "/nonexistent/dir/log"], 2, "cannot open the decision log"),
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
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_proxy_command_invalid_config_is_1(tmp_path: Path, sidecar_cli: list[str]) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text("version: '1'\ncommands: {sh: {container: c, exec: sh}}\n")
    result = subprocess.run([*sidecar_cli, "proxy", "--listen", "tcp://127.0.0.1:0",
                             "--config", str(config)], capture_output=True, timeout=30)
    assert result.returncode == 1
    assert b"reserved" in result.stderr
