"""Fixtures of the trust suite: a small project folder and the compose CLI (no engine needed:
`docker compose config` only reads files)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import unavailable

from sidecar_gen.compose.cli import ComposeTarget
from sidecar_gen.trust.record import ApprovalStore

COMPOSE = """\
name: demo
services:
  app:
    image: busybox:latest
    environment:
      PASSWORD: ${DB_PASSWORD:-changeme}
      SHELL_TOKEN:
    volumes: ["./:/app"]
include:
  - .sidecar/compose.yml
"""
GENERATED = """\
services:
  claude:
    image: sidecar-test/claude:latest
    labels: {dev.claude-sidecar.role: claude}
    environment: {BRIDGE_CONFIG: /run/sidecar/policy/bridge.yaml}
    volumes: [sidecar-policy:/run/sidecar/policy:ro]
volumes:
  sidecar-policy:
"""
BRIDGE = 'version: "1"\ncommands:\n  tool:\n    container: app\n    exec: tool\n'
DOMAINS = "api.anthropic.com\n"


@pytest.fixture(scope="session")
def compose_config() -> None:
    """Docker Compose v2 is installed (its `config` works without an engine)."""
    result = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if result.returncode != 0:
        unavailable("Docker Compose v2 is not installed (run .ci/engine.sh)")


def write_project(root: Path, *, dotenv: str = "DB_PASSWORD=hunter2-secret\n",
                  generated: str = GENERATED, compose: str = COMPOSE) -> Path:
    """Write a project folder: compose.yaml, .env and a .sidecar/ (not rendered by us: small)."""
    (root / ".sidecar").mkdir(parents=True)
    (root / "compose.yaml").write_text(compose)
    (root / ".env").write_text(dotenv)
    (root / ".sidecar" / "compose.yml").write_text(generated)
    (root / ".sidecar" / "bridge.yaml").write_text(BRIDGE)
    (root / ".sidecar" / "allowed-domains.txt").write_text(DOMAINS)
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with compose.yaml, .env and a .sidecar/."""
    return write_project(tmp_path / "demo")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment compose and the store see: a private state folder, no COMPOSE_*."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    environ.update({"XDG_STATE_HOME": str(tmp_path / "state"), "SHELL_TOKEN": "shell-secret"})
    return environ


@pytest.fixture
def target(project: Path, env: dict[str, str], compose_config: None) -> ComposeTarget:
    return ComposeTarget(project, env=env)


@pytest.fixture
def store(env: dict[str, str]) -> ApprovalStore:
    return ApprovalStore(Path(env["XDG_STATE_HOME"]) / "claude-sidecar")
