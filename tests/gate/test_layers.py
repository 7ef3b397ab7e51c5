"""The gate's layering (issue 11): what each module may import, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

GATE = REPO / "sidecar_gen" / "gate"
# The runtime modules the gate may use: the contract, the stack's names, the cleanup exec's
# shape, user specs, the one transport and the one Engine API client (with its JSON and errors).
RUNTIME_ALLOWED = {"contract", "names", "killer", "userspec", "transport", "httpclient",
                   "jsonlite", "errors"}
# Modules that would mean I/O (or threads): the decisions must not touch them.
IO_MODULES = {"socket", "_socket", "os", "selectors", "threading", "subprocess", "pathlib",
              "io", "h11", "time", "signal", "sidecar_gen.gate.engine",
              "sidecar_gen.gate.server", "sidecar_gen.gate.http"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("path", sorted(GATE.glob("*.py")), ids=lambda p: p.name)
def test_the_gate_uses_only_the_shared_runtime_modules(path: Path) -> None:
    used = {name.split(".")[2] for name in _imports(path)
            if name.startswith("sidecar_gen.runtime.")}
    assert used <= RUNTIME_ALLOWED, used - RUNTIME_ALLOWED


@pytest.mark.parametrize("name", ["policy.py", "listing.py", "urlpath.py"])
def test_decisions_do_no_io(name: str) -> None:
    assert not (_imports(GATE / name) & IO_MODULES)


def test_one_engine_client() -> None:
    assert not (GATE / "upstream.py").exists()
    for path in GATE.glob("*.py"):
        # Only the runtime's client speaks HTTP to the engine: no second client in the gate.
        assert "http.client" not in _imports(path), path.name
    assert "sidecar_gen.runtime.httpclient" in _imports(GATE / "engine.py")


def test_the_healthcheck_stays_small() -> None:
    # It runs every few seconds in the gate's container: the standard library and the runtime.
    modules = {n for n in _imports(GATE / "health.py")
               if n in {"sys", "__future__"} or n.count(".") == 2}
    assert modules == {"__future__", "sys", "sidecar_gen.runtime.transport",
                       "sidecar_gen.runtime.errors", "sidecar_gen.runtime.httpclient"}
