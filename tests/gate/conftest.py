"""Fixtures that start a real gate (in a thread of the test process) in front of the engine."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sidecar_gen.gate.service import Gate, GateOptions
from sidecar_gen.model import Bridge, bridge_from_plain


class RunningGate:
    """A gate serving in a background thread, its decision log and notices in files."""

    def __init__(self, gate: Gate, log_path: Path, notices_path: Path) -> None:
        self.gate = gate
        self.address = gate.address
        self.log_path = log_path
        self.notices_path = notices_path
        self._thread = threading.Thread(target=gate.serve_forever, daemon=True)
        self._stopped = False
        self._thread.start()

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line]

    def notices(self) -> list[str]:
        return self.notices_path.read_text().splitlines()

    def reload(self) -> None:
        """What SIGHUP does (signals reach only the main thread)."""
        self.gate.reload()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        # A loop that died before it was asked to stop is a bug, whatever the test checked.
        alive = self._thread.is_alive()
        self.gate.shutdown()
        self._thread.join(timeout=5)
        assert alive, "the gate's event loop died during the test"


def start_gate(tmp: Path, *, bridge: Bridge | dict[str, Any] | None = None,
               config: Path | None = None, strict: bool = False,
               self_ids: frozenset[str] | None = frozenset(), listen: str = "tcp://127.0.0.1:0",
               proc_root: Path | None = None, **options: Any) -> RunningGate:
    """Start a gate on a free port; `self_ids=None` detects them from `proc_root`; other
    keywords are `GateOptions` fields (workspace, project) or `Limits` fields."""
    from sidecar_gen.gate.server import Limits

    # The engine the tests run against (DOCKER_HOST: Podman's socket in the Podman CI part).
    options.setdefault("upstream", os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock")
    limit_names = set(Limits.__dataclass_fields__)
    limits = Limits(**{k: options.pop(k) for k in list(options) if k in limit_names})
    if isinstance(bridge, dict):
        bridge = bridge_from_plain(bridge)
    stem = f"gate-{threading.get_ident()}-{id(bridge)}-{id(options)}"
    log_path, notices_path = tmp / f"{stem}.log", tmp / f"{stem}.notices"
    stream = log_path.open("a", encoding="utf-8")
    notices = notices_path.open("a", encoding="utf-8")
    gate_options = GateOptions(listen=listen, bridge=bridge, config=config, strict=strict,
                               log=stream, notices=notices, self_ids=self_ids, limits=limits,
                               **options)
    if proc_root is not None:
        gate_options.proc_root = proc_root
    return RunningGate(Gate(gate_options), log_path, notices_path)


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
