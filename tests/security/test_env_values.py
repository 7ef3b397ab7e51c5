"""A changed `.env` value that is not a secret is plain on the approval
screen. The agent set PUID/PGID to 0 in `.env` (routes with `user: "${PUID}:${PGID}"` then ran
as root); the diff showed two digests. Now the rendered screen says `PUID=0`, `user: "0:0"`,
while a TOKEN's value stays a digest unless the user asks with `--show-values`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from screen import lines, on_a_terminal, render
from trust.conftest import GENERATED, compose_config, write_project

from security.test_screen import SIDECAR, hostile_env

__all__ = ["compose_config"]  # fixtures

COMPOSE = """\
name: ids
services:
  app:
    image: busybox:latest
    user: "${PUID}:${PGID}"
    environment:
      API_TOKEN: ${API_TOKEN}
include:
  - .sidecar/compose.yml
"""
GENERATED_WITH_IDS = GENERATED.replace(
    "environment: {BRIDGE_CONFIG: /run/sidecar/policy/bridge.yaml}",
    "environment: {BRIDGE_CONFIG: /run/sidecar/policy/bridge.yaml, PUID: '${PUID}', "
    "PGID: '${PGID}'}")


@pytest.fixture
def approved(tmp_path: Path, compose_config: None) -> tuple[Path, dict[str, str]]:
    root = write_project(tmp_path / "ids", dotenv="PUID=1000\nPGID=1000\nAPI_TOKEN=tok-approved\n",
                         generated=GENERATED_WITH_IDS, compose=COMPOSE)
    env = hostile_env(tmp_path)
    ran = subprocess.run([SIDECAR, "trust", "--yes"], cwd=root, env=env, capture_output=True,
                         text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    return root, env


def test_puid_zero_is_plain_on_the_screen_and_a_token_is_not(
        approved: tuple[Path, dict[str, str]]) -> None:
    root, env = approved
    (root / ".env").write_text("PUID=0\nPGID=0\nAPI_TOKEN=tok-agent\n")
    output, code = on_a_terminal([SIDECAR, "trust"], root, env, answer=b"n\n")
    assert code == 1
    screen = render(output)
    assert screen == lines(output)
    for row in ("-PUID=1000", "+PUID=0", "-PGID=1000", "+PGID=0",
                '-services.app.user: "1000:1000"', '+services.app.user: "0:0"',
                '-services.claude.environment.PUID: "1000"',
                '+services.claude.environment.PUID: "0"'):
        assert row in screen, (row, screen)
    assert not any("tok-" in row for row in screen), screen
    assert any(row.startswith("+API_TOKEN=hmac-sha256:") for row in screen)
    # The record keeps what is not a secret in clear (it lives in the user's 0700 state folder).
    record = next((Path(env["XDG_STATE_HOME"]) / "claude-sidecar").glob(
        "projects/*/approval.json"))
    stored = json.loads(record.read_text())
    assert stored["model"]["services"]["claude"]["environment"]["PUID"] == "1000"
    assert "tok-approved" not in record.read_text()
    assert oct(record.stat().st_mode & 0o777) == "0o600"
    assert oct(record.parent.stat().st_mode & 0o777) == "0o700"


def test_show_values_reveals_the_token_on_request(
        approved: tuple[Path, dict[str, str]]) -> None:
    root, env = approved
    (root / ".env").write_text("PUID=1000\nPGID=1000\nAPI_TOKEN=tok-agent\n")
    shown = subprocess.run([SIDECAR, "trust", "--show-values"], cwd=root, env=env,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert shown.returncode == 2  # no terminal, no --yes: shown, not approved
    screen = render(shown.stdout)
    assert screen == lines(shown.stdout)
    assert any(row.startswith("+API_TOKEN=hmac-sha256:") and row.endswith('(now: "tok-agent")')
               for row in screen), screen
    assert not any("tok-approved" in row for row in screen)
    plain = subprocess.run([SIDECAR, "trust"], cwd=root, env=env, capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert "tok-agent" not in plain.stdout
