"""The policy probe doctor runs in the claude container, run here exactly as doctor runs it
(`python3 -I -c <the module's text> ARGS`) against a real gate: it reports the gate's policy
header and the digests of the policy files, and says why when the gate cannot be asked."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from gate.conftest import RunningGate
from gate.helpers import request

from sidecar_gen.doctor.stack import POLICY_PROBE
from sidecar_gen.resources import program_text

BRIDGE = {"version": "1", "commands": {"php": {"container": "app", "exec": "php"}}}


def _probe(docker_host: str | None, folder: Path, *names: str) -> dict[str, object]:
    env = {"PATH": "/usr/bin:/bin", "POLICY": str(folder)}
    if docker_host is not None:
        env["DOCKER_HOST"] = docker_host
    ran = subprocess.run([sys.executable, "-I", "-c", program_text(POLICY_PROBE), "POLICY",
                          "/nowhere", *names], env=env, capture_output=True, text=True,
                         timeout=60, check=True)
    found: dict[str, object] = json.loads(ran.stdout)
    return found


@pytest.mark.parametrize("listen", ["tcp", "unix"])
def test_it_reports_the_gates_policy_and_the_files_digests(
        listen: str, tmp_path: Path, gate_factory: Callable[..., RunningGate]) -> None:
    address = "tcp://127.0.0.1:0" if listen == "tcp" else f"unix://{tmp_path}/gate.sock"
    gate = gate_factory(bridge=BRIDGE, listen=address)
    folder = tmp_path / "policy"
    folder.mkdir()
    (folder / "bridge.yaml").write_bytes(b"version: '1'\n")
    header = request(gate.address, "GET", "/_ping").headers.get("x-sidecar-policy")
    assert header
    found = _probe(gate.address, folder, "bridge.yaml", "allowed-domains.txt")
    assert found == {"status": 200, "policy": header,
                     "bridge.yaml": hashlib.sha256(b"version: '1'\n").hexdigest(),
                     "allowed-domains.txt": None}


def test_without_a_gate_it_says_why(tmp_path: Path) -> None:
    assert _probe(None, tmp_path, "bridge.yaml") == {
        "error": "ValueError: DOCKER_HOST is ''", "bridge.yaml": None}
    found = _probe(f"unix://{tmp_path}/none.sock", tmp_path)
    assert str(found["error"]).startswith("FileNotFoundError: ")
