"""Whatever the user approves, a stack that exposes the policy volume is refused: the volume
stays a plain local volume, read-only everywhere, and the gate and claude read exactly it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sidecar_gen.compose.cli import ComposeTarget, resolve_model
from sidecar_gen.render import run_render
from sidecar_gen.trust.policyvolume import design_problems

SIDECAR = str(Path(sys.executable).parent / "sidecar")


@pytest.fixture
def rendered(project: Path, target: ComposeTarget) -> ComposeTarget:
    (project / ".sidecar" / "compose.yml").unlink()
    (project / "compose.yaml").write_text("services:\n  app:\n    image: busybox\n")
    run_render(project)
    return target


def test_the_rendered_stack_keeps_the_design(rendered: ComposeTarget) -> None:
    assert design_problems(resolve_model(rendered).doc) == []


@pytest.mark.parametrize(("override", "problem"), [
    ("services:\n  claude:\n    volumes:\n      - sidecar-policy:/run/sidecar/policy\n",
     "service claude mounts `sidecar-policy` read-write"),
    ("services:\n  app:\n    volumes: [sidecar-policy:/p]\n",
     "service app mounts `sidecar-policy` read-write"),
    ("services:\n  sidecar-gate:\n    volumes: [./.sidecar:/run/sidecar/policy:ro]\n",
     "mounts {root}/.sidecar at /run/sidecar/policy"),
    ("volumes:\n  sidecar-policy:\n    driver_opts: {type: none, o: bind, device: /tmp}\n",
     "volume has a driver or driver options"),
    ("services:\n  sidecar-gate:\n    entrypoint: [sidecar, proxy, --config, "
     "/etc/sidecar/bridge.yaml]\n",
     "service sidecar-gate (gate) does not run with --config=/run/sidecar/policy/bridge.yaml"),
    ("services:\n  claude:\n    environment: {BRIDGE_CONFIG: /workspace/.sidecar/bridge.yaml}\n",
     "service claude (claude) does not set BRIDGE_CONFIG=/run/sidecar/policy/bridge.yaml"),
])
def test_a_stack_that_exposes_the_policy_is_refused(rendered: ComposeTarget, override: str,
                                                    problem: str) -> None:
    root = rendered.directory
    (root / "compose.override.yaml").write_text(override)
    found = design_problems(resolve_model(rendered).doc)
    assert any(problem.format(root=root) in p for p in found), found
    # Refused before anything is recorded, even by `trust --yes`.
    result = subprocess.run([SIDECAR, "trust", "--yes"], cwd=root, env=rendered.environ(),
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert result.stderr.startswith("sidecar: error: refusing a stack that exposes the "
                                    "approved policy: ")
    assert not list(Path(rendered.environ()["XDG_STATE_HOME"]).glob("*/projects/*/*.json"))
