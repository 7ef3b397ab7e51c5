"""Fixtures that start a real gate (in a thread of the test process) in front of the engine."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sidecar_gen.gate import Gate, GateOptions
from sidecar_gen.model import Bridge, bridge_from_plain


class RunningGate:
    """A gate serving in a background thread, with its decision log in a file."""

    def __init__(self, gate: Gate, log_path: Path) -> None:
        self.gate = gate
        self.address = gate.address
        self.log_path = log_path
        self._thread = threading.Thread(target=gate.serve_forever, daemon=True)
        self._thread.start()

    def log_lines(self) -> list[dict[str, Any]]:
        import json

        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line]

    def stop(self) -> None:
        self.gate.shutdown()
        self._thread.join(timeout=5)


def start_gate(tmp: Path, *, bridge: Bridge | dict[str, Any] | None = None,
               config: Path | None = None, strict: bool = False,
               self_ids: frozenset[str] | None = frozenset(), listen: str = "tcp://127.0.0.1:0",
               proc_root: Path | None = None) -> RunningGate:
    """Start a gate on a free port; `self_ids=None` detects them from `proc_root`."""
    if isinstance(bridge, dict):
        bridge = bridge_from_plain(bridge)
    log_path = tmp / f"gate-{threading.get_ident()}-{id(bridge)}.log"
    stream = log_path.open("a", encoding="utf-8")
    options = GateOptions(listen=listen, bridge=bridge, config=config, strict=strict,
                          log=stream, self_ids=self_ids)
    if proc_root is not None:
        options.proc_root = proc_root
    return RunningGate(Gate(options), log_path)


@pytest.fixture
def gate_factory(tmp_path: Path, docker_client: Any) -> Iterator[Callable[..., RunningGate]]:
    """Start gates for one test; all are stopped afterwards."""
    gates: list[RunningGate] = []

    def _start(**kwargs: Any) -> RunningGate:
        gate = start_gate(tmp_path, **kwargs)
        gates.append(gate)
        return gate

    yield _start
    for gate in gates:
        gate.stop()
