"""The broker's layering: what each module may import, checked on the source, and what the
running broker loads (it ships in the image's runtime venv: no docker SDK, no typer)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

BROKER = REPO / "sidecar_gen" / "broker"
# Of the package: errors, file reading, and the gate's HTTP head checks, listener and clock.
ALLOWED = {"sidecar_gen.errors", "sidecar_gen.fsutil", "sidecar_gen.gate.http",
           "sidecar_gen.gate.server", "sidecar_gen.gate.audit",
           # the healthcheck: the runtime's small client, like the gate's
           "sidecar_gen.runtime", "sidecar_gen.runtime.errors", "sidecar_gen.runtime.httpclient"}
THIRD_PARTY = {"h11"}
# The decisions and the stream readers do no I/O: none of these.
IO_MODULES = {"socket", "_socket", "ssl", "select", "selectors", "threading", "subprocess",
              "time", "signal", "sidecar_gen.broker.server", "sidecar_gen.broker.exchange",
              "sidecar_gen.broker.upstream", "sidecar_gen.broker.http"}
PURE = ["target.py", "endpoints.py", "decide.py", "redact.py", "usage.py", "origin.py"]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", sorted(BROKER.glob("*.py")), ids=lambda p: p.name)
def test_the_broker_imports_the_stdlib_h11_and_little_else(path: Path) -> None:
    for name in _imports(path):
        top = name.split(".")[0]
        if name.startswith("sidecar_gen.broker") or top == "__future__":
            continue
        if top == "sidecar_gen":
            assert name in ALLOWED, (path.name, name)
        else:
            assert top in sys.stdlib_module_names or top in THIRD_PARTY, (path.name, name)


@pytest.mark.parametrize("name", PURE)
def test_decisions_and_readers_do_no_io(name: str) -> None:
    assert not (_imports(BROKER / name) & IO_MODULES), name


def test_the_running_broker_loads_no_docker_sdk() -> None:
    code = ("import sys, sidecar_gen.broker.service; "
            "print(sorted(m for m in ('docker', 'typer', 'ruamel', 'jinja2', 'jsonschema') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_healthcheck_stays_small() -> None:
    modules = {n for n in _imports(BROKER / "health.py") if n.startswith("sidecar_gen")}
    assert modules == {"sidecar_gen.broker.endpoints", "sidecar_gen.runtime",
                       "sidecar_gen.runtime.errors", "sidecar_gen.runtime.httpclient"}
