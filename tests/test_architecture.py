"""The direction of dependencies (ARCHITECTURE.md), read from the source: every import,
module-level or inside a function, goes to the same layer or a lower one."""

from __future__ import annotations

import ast
import fnmatch
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sidecar_gen"

# Lowest first. A module belongs to the layer that names it, else to the first layer with a
# matching pattern (a package's layer, with the modules that sit lower or higher named).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("runtime", ("runtime", "runtime.*")),
    ("base", ("", "errors", "model", "resources", "templating", "yamlio", "fsutil", "limits",
              "validate", "validate.findings", "validate.rules", "validate.reporters",
              "firewall.toolchains", "scaffold.programs", "image", "image.ids",
              "host", "host.process")),
    ("domain", ("config", "fileplan", "validate.*", "compose", "compose.*", "scaffold",
                "scaffold.*", "host.*", "image.*", "wrappers", "wrappers.*",
                "firewall", "firewall.*", "gate", "gate.*", "broker", "broker.*")),
    ("actions", ("validate.check", "scaffold.proposal", "render", "trust", "trust.*", "audit",
                 "audit.*",
                 "doctor", "doctor.*", "session", "session.*", "auth")),
    ("cli", ("cli", "cli.*")),
)
RANK = {name: index for index, (name, _) in enumerate(LAYERS)}
# The one deliberate upward edge: a stale route cache is recompiled (and bridge.yaml validated)
# by the full package, imported lazily on that slow path only.
ALLOWED_UPWARD = {("runtime.cache", "wrappers.routes"), ("runtime.cache", "errors")}
GATE_MAY_USE = {"runtime.contract", "runtime.killer", "runtime.names", "runtime.userspec",
                "runtime.transport", "runtime.httpclient", "runtime.jsonlite", "runtime.errors",
                "runtime.healthcheck"}
STDLIB = set(sys.stdlib_module_names)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "_data" not in p.parts}


def layer_of(module: str) -> str:
    for name, patterns in LAYERS:
        if module in patterns:
            return name
    for name, patterns in LAYERS:
        if any(fnmatch.fnmatchcase(module, pattern) for pattern in patterns):
            return name
    raise AssertionError(f"sidecar_gen.{module} has no layer: add it to ARCHITECTURE.md and here")


def imports_of(module: str) -> set[str]:
    """Every module this one imports: `sidecar_gen.x` as `x`, others by their top-level name."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - node.level + 1]
                target = ".".join([*base, node.module or ""]).strip(".")
                out.add(f"sidecar_gen.{target}" if target else "sidecar_gen")
            elif node.module:
                ours = node.module == "sidecar_gen" or node.module.startswith("sidecar_gen.")
                names = [f"{node.module}.{a.name}".removeprefix("sidecar_gen.")
                         for a in node.names]
                # `from sidecar_gen.runtime import cache` imports the module `runtime.cache`;
                # `from sidecar_gen.errors import ExitCode` imports `errors`.
                modules = {n for n in names if ours and n in MODULES}
                out.update(f"sidecar_gen.{n}" for n in modules)
                if len(modules) < len(names):
                    out.add(node.module)
    return out


def internal(names: set[str]) -> set[str]:
    return {n.removeprefix("sidecar_gen").lstrip(".") for n in names
            if n == "sidecar_gen" or n.startswith("sidecar_gen.")}


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module: str) -> None:
    mine = RANK[layer_of(module)]
    for target in internal(imports_of(module)):
        if target not in MODULES:
            continue  # `from sidecar_gen import __version__` and the like
        if (module, target) in ALLOWED_UPWARD:
            continue
        assert RANK[layer_of(target)] <= mine, (
            f"sidecar_gen.{module} ({layer_of(module)}) imports sidecar_gen.{target} "
            f"({layer_of(target)})")


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer_of(m) == "runtime"))
def test_runtime_is_stdlib_only(module: str) -> None:
    for name in imports_of(module):
        top = name.split(".")[0]
        assert top in STDLIB or top.startswith("_") or top == "sidecar_gen", (module, name)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer_of(m) != "cli"))
def test_only_the_cli_knows_typer(module: str) -> None:
    assert "typer" not in {n.split(".")[0] for n in imports_of(module)}, module
    assert "cli" not in {t.split(".")[0] for t in internal(imports_of(module))}, module


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("gate")))
def test_the_gate_uses_only_the_runtimes_public_pieces(module: str) -> None:
    used = {t for t in internal(imports_of(module)) if t.startswith("runtime")}
    assert used <= GATE_MAY_USE, (module, sorted(used - GATE_MAY_USE))


def test_the_layers_are_documented() -> None:
    text = (PACKAGE.parent / "ARCHITECTURE.md").read_text(encoding="utf-8").lower()
    for index, (name, _) in enumerate(LAYERS, start=1):
        assert f"| {index}. {name} |" in text, name


# Import cycles between modules that are there on purpose: the dispatcher's slow path
# (a stale route cache is recompiled by the full package), and the doctor package whose
# `__init__` runs the checks its modules report into.
KNOWN_CYCLES = [{"config", "wrappers.routes", "runtime.cache"},
                {"doctor", "doctor.host", "doctor.podman", "doctor.stack", "doctor.brokercheck"}]


def _cycles() -> list[set[str]]:
    """The strongly connected components of the import graph with more than one module."""
    graph = {m: {t for t in internal(imports_of(m)) if t in MODULES and t != m} for m in MODULES}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        for target in graph[module]:
            if target not in order:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], order[target])
        if low[module] == order[module]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(component)

    for module in sorted(graph):
        if module not in order:
            visit(module)
    return found


def test_no_import_cycles_but_the_known_ones() -> None:
    unexpected = [sorted(c) for c in _cycles() if c not in KNOWN_CYCLES]
    assert not unexpected, unexpected


def test_names_and_constants_come_from_runtime_names_not_render() -> None:
    """`render` is an action, not a constants hub: what other modules take from it is code."""
    from sidecar_gen import render

    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "sidecar_gen.render":
                for alias in node.names:
                    assert callable(getattr(render, alias.name)), (module, alias.name)


def test_no_class_name_is_defined_twice() -> None:
    """A type's name says its concern: two classes of one name in the package are two
    concerns under one word (an import of the wrong one type-checks where both fit)."""
    where: dict[str, list[str]] = {}
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                where.setdefault(node.name, []).append(module)
    assert {name: mods for name, mods in where.items() if len(mods) > 1} == {}


MAX_LINES = 450
MAX_TOP_LEVEL = 12


def test_no_module_is_over_the_line_limit() -> None:
    long = {m: n for m, p in MODULES.items()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_the_top_level_holds_only_the_cli_the_cross_cutting_modules_and_packages() -> None:
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert len(top) <= MAX_TOP_LEVEL, top


PACKAGES = sorted(m for m, p in MODULES.items() if p.name == "__init__.py" and m)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_says_what_it_owns_and_what_it_may_import(package: str) -> None:
    doc = ast.get_docstring(ast.parse(MODULES[package].read_text(encoding="utf-8"))) or ""
    assert "Owns:" in doc and "May import:" in doc, package


# The gate's own rules: its decision modules do no I/O (nothing that would mean a socket, a
# file, a thread or the clock), one Engine API client (the runtime's) speaks to the engine, and
# the healthcheck (run every few seconds in the gate's container) loads no more than it needs.
GATE_DECISIONS = ("gate.policy", "gate.listing", "gate.urlpath")
IO_MODULES = {"socket", "_socket", "os", "selectors", "threading", "subprocess", "pathlib",
              "io", "h11", "time", "signal", "sidecar_gen.gate.engine",
              "sidecar_gen.gate.server", "sidecar_gen.gate.http"}


@pytest.mark.parametrize("module", GATE_DECISIONS)
def test_the_gates_decisions_do_no_io(module: str) -> None:
    assert not imports_of(module) & IO_MODULES, module


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("gate")))
def test_the_gate_has_one_engine_client(module: str) -> None:
    assert "http.client" not in imports_of(module), module


def test_the_gates_engine_is_the_runtimes_client() -> None:
    assert "sidecar_gen.runtime.httpclient" in imports_of("gate.engine")


# The broker's own rules: it ships in the image's runtime venv, so it imports the standard
# library, h11 and a few pieces of this package (errors, file reading, the gate's HTTP head
# checks, listener and clock; the runtime's small client for its healthcheck), never the docker
# SDK or typer; its decisions and stream readers do no I/O.
BROKER_MAY_IMPORT = {"sidecar_gen.errors", "sidecar_gen.fsutil", "sidecar_gen.gate.http",
                     "sidecar_gen.gate.server", "sidecar_gen.gate.audit",
                     "sidecar_gen.runtime.transport", "sidecar_gen.runtime.errors",
                     "sidecar_gen.runtime.httpclient", "sidecar_gen.runtime.healthcheck",
                     "sidecar_gen.runtime.names"}
BROKER_DECISIONS = ("broker.target", "broker.endpoints", "broker.decide", "broker.redact",
                    "broker.usage", "broker.origin")
BROKER_IO = {"socket", "_socket", "ssl", "select", "selectors", "threading", "subprocess",
             "time", "signal", "sidecar_gen.broker.server", "sidecar_gen.broker.exchange",
             "sidecar_gen.broker.upstream", "sidecar_gen.broker.http"}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("broker")))
def test_the_broker_imports_the_stdlib_h11_and_little_else(module: str) -> None:
    for name in imports_of(module):
        if name.startswith("sidecar_gen.broker") or name == "__future__":
            continue
        if name.split(".")[0] == "sidecar_gen":
            assert name in BROKER_MAY_IMPORT, (module, name)
        else:
            assert name.split(".")[0] in STDLIB | {"h11"}, (module, name)


@pytest.mark.parametrize("module", BROKER_DECISIONS)
def test_the_brokers_decisions_and_readers_do_no_io(module: str) -> None:
    assert not imports_of(module) & BROKER_IO, module


def test_the_running_broker_loads_no_host_side_library() -> None:
    code = ("import sys, sidecar_gen.broker.service; "
            "print(sorted(m for m in ('docker', 'typer', 'ruamel', 'jinja2', 'jsonschema') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["broker.health", "gate.health"])
def test_the_healthchecks_stay_small(module: str) -> None:
    # They run every few seconds in their containers: one shared request helper of the
    # runtime, whose own imports are the runtime's small client.
    assert imports_of(module) - STDLIB <= {
        "sidecar_gen.broker.endpoints", "sidecar_gen.runtime.healthcheck"}
    assert {n for n in imports_of("runtime.healthcheck") if n.startswith("sidecar_gen")} == {
        "sidecar_gen.runtime.transport", "sidecar_gen.runtime.errors",
        "sidecar_gen.runtime.httpclient"}


# Programs that run elsewhere as program text (`python3 -I -c`): the standard library only,
# nothing of this package (the other side may have another version of it, or none).
PROGRAM_TEXTS = ("doctor.policyprobe", "doctor.secretprobe")


@pytest.mark.parametrize("module", PROGRAM_TEXTS)
def test_program_texts_stand_alone(module: str) -> None:
    assert {name.split(".")[0] for name in imports_of(module)} <= STDLIB, module
