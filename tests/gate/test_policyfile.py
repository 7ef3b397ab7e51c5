"""The approved policy, on the gate's side: read once from a file only `sidecar up` writes,
safely (never a symlink, a FIFO or a huge file), compared with the workspace copy, reported by
the healthcheck."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gate.conftest import RunningGate
from sidecar_gen.gate import health, policyfile

GOOD = "version: '1'\ncommands: {tool: {container: app, exec: sh}}\n"


def _within(seconds: float, action: Callable[[], Any]) -> Any:
    """Run `action` in a thread; fail (instead of hanging the suite) if it blocks."""
    out: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(action())
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "blocked"
    if errors:
        raise errors[0]
    return out[0]


def test_read_regular_refuses_what_is_not_a_plain_file(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(b"x" * 10)
    assert policyfile.read_regular(plain) == b"x" * 10
    link = tmp_path / "link"
    link.symlink_to(plain)
    with pytest.raises(OSError):
        policyfile.read_regular(link)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        _within(5, lambda: policyfile.read_regular(fifo))
    with pytest.raises(ValueError, match="not a regular file"):
        policyfile.read_regular(tmp_path)
    with pytest.raises(ValueError, match="larger than"):
        policyfile.read_regular(plain, limit=9)
    with pytest.raises(FileNotFoundError):
        policyfile.read_regular(tmp_path / "missing")


def test_load_once_from_the_bytes_it_hashes(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yaml"
    state, line = policyfile.load(path, strict=False, environ={})
    assert (state.digest, state.header, state.policy.rules) == (None, "none", {})
    assert "no approved policy at" in line and "run `sidecar up` on the host" in line
    path.write_text(GOOD)
    state, line = policyfile.load(path, strict=False, environ={})
    digest = hashlib.sha256(GOOD.encode()).hexdigest()
    assert (state.digest, state.error) == (digest, None)
    assert set(state.policy.rules) == {"app"}
    assert line == f"sidecar gate: policy sha256:{digest} loaded from {path} (1 container name(s))"
    for bad, says in (("commands: [not, valid\n", "unusable"), ("\xff", "unusable"),
                      ("version: '1'\ncommands: {sh: {container: c, exec: sh}}\n", "reserved")):
        path.write_bytes(bad.encode("latin-1"))
        state, line = policyfile.load(path, strict=False, environ={})
        assert state.header == "none" and state.error and says in line
        assert "refusing every request" in line
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere")
    state, line = policyfile.load(path, strict=False, environ={})
    assert state.header == "none" and "cannot read it" in line


def test_workspace_copy_is_only_compared(tmp_path: Path) -> None:
    approved = tmp_path / "approved.yaml"
    approved.write_text(GOOD)
    workspace = tmp_path / "bridge.yaml"
    state, _ = policyfile.load(approved, strict=False, environ={})
    assert policyfile.compare_workspace(state, None) is None
    line = policyfile.compare_workspace(state, workspace)
    assert line is not None and "(missing) differs from the approved policy" in line
    workspace.write_text(GOOD)
    assert policyfile.compare_workspace(state, workspace) is None
    workspace.write_text(GOOD + "# widened\n")
    line = policyfile.compare_workspace(state, workspace)
    assert line is not None
    assert "the gate keeps the approved one; run `sidecar trust` on the host" in line
    workspace.unlink()
    os.mkfifo(workspace)  # what an agent could leave there: never blocks the gate
    line = _within(5, lambda: policyfile.compare_workspace(state, workspace))
    assert line is not None and "cannot be compared" in line


@pytest.mark.docker
def test_gate_says_once_at_start_and_on_reload_when_the_workspace_differs(
        tmp_path: Path, gate_factory: Callable[..., RunningGate], docker_client: Any) -> None:
    approved, workspace = tmp_path / "policy.yaml", tmp_path / "bridge.yaml"
    approved.write_text(GOOD)
    workspace.write_text(GOOD + "# an edit nobody approved\n")
    gate = gate_factory(config=approved, workspace=workspace)
    differs = [n for n in gate.notices() if "differs from the approved policy" in n]
    assert len(differs) == 1
    approved.write_text(GOOD + "# an edit nobody approved\n")  # `sidecar trust` + `up`
    gate.reload()
    assert [n for n in gate.notices() if "differs" in n] == differs
    assert health.check(gate.address) is None


@pytest.mark.docker
def test_healthcheck(tmp_path: Path, gate_factory: Callable[..., RunningGate],
                     docker_client: Any) -> None:
    gate = gate_factory(config=tmp_path / "missing.yaml")
    problem = health.check(gate.address)
    assert problem is not None and "no usable approved policy (none)" in problem
    assert "sidecar up" in problem
    assert health.main([gate.address]) == 1
    (tmp_path / "missing.yaml").write_text(GOOD)
    gate.reload()
    assert health.main([gate.address]) == 0
    gate.stop()
    problem = health.check(gate.address)
    assert problem is not None and "the gate is not listening" in problem
    assert health.main([]) == 2
