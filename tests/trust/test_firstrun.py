"""`sidecar up` in a project with no `.sidecar/` yet, where no engine is needed: the refusals
come before anything is written, the plan is escaped, and undo puts the folder back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sidecar_gen.render import RenderError
from sidecar_gen.trust.firstrun import Plan, needs_first_run, write_first_run

SIDECAR = str(Path(sys.executable).parent / "sidecar")
NO_ENGINE = "unix:///nonexistent/docker.sock"
COMPOSE = """\
services:
  web:
    image: node:20-bookworm
    working_dir: /app
    volumes: [".:/app"]
"""
OVERRIDE = "services:\n  web:\n    environment: {MINE: '1'}\n"


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    """A compose project as a user has it before any sidecar command: no .sidecar/."""
    root = tmp_path / "fresh"
    root.mkdir()
    (root / "compose.yaml").write_text(COMPOSE)
    (root / "compose.override.yaml").write_text(OVERRIDE)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _up(root: Path, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    environ = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    environ.update({"XDG_STATE_HOME": str(tmp_path / "state"), **env})
    return subprocess.run([SIDECAR, "up", *args], cwd=root, env=environ, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120)


def test_no_terminal_and_no_yes_is_refused_before_writing(fresh: Path, tmp_path: Path) -> None:
    before = _files(fresh)
    result = _up(fresh, tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"sidecar: error: {fresh} has no .sidecar/ yet: a first run shows its plan and asks; "
        "stdin is not a terminal: pass --yes to start without asking"]
    assert _files(fresh) == before
    assert not (tmp_path / "state").exists()


def test_no_engine_is_refused_before_writing(fresh: Path, tmp_path: Path) -> None:
    before = _files(fresh)
    result = _up(fresh, tmp_path, "--yes", DOCKER_HOST=NO_ENGINE)
    assert result.returncode == 1
    assert result.stderr.startswith("sidecar: error: cannot reach the Docker engine")
    assert _files(fresh) == before
    assert not (fresh / ".sidecar").exists()


def test_only_a_folder_without_sidecar_takes_the_first_run(fresh: Path) -> None:
    assert needs_first_run(fresh)
    (fresh / ".sidecar").symlink_to(fresh / "elsewhere")  # dangling: still the user's
    assert not needs_first_run(fresh)


def test_undo_puts_the_folder_back(fresh: Path, compose_config: None) -> None:
    before = _files(fresh)
    run = write_first_run(fresh, probe=False, image="example/claude:1")
    after = _files(fresh)
    assert set(after) - set(before) == {".sidecar/bridge.yaml", ".sidecar/allowed-domains.txt",
                                        ".sidecar/compose.yml"}
    assert "  image: example/claude:1\n" in after[".sidecar/bridge.yaml"].decode()
    assert after["compose.yaml"].endswith(b"include:\n  - .sidecar/compose.yml\n")
    assert after["compose.override.yaml"] == before["compose.override.yaml"]  # the user's
    assert [c.path.name for c in run.written] == ["bridge.yaml", "allowed-domains.txt",
                                                 "compose.yml", "compose.yaml"]
    run.undo()
    assert _files(fresh) == before
    assert not (fresh / ".sidecar").exists()


def test_undo_keeps_what_the_user_added_meanwhile(fresh: Path, compose_config: None) -> None:
    run = write_first_run(fresh, probe=False)
    (fresh / ".sidecar" / "notes.txt").write_text("mine\n")
    run.undo()
    assert (fresh / ".sidecar" / "notes.txt").read_text() == "mine\n"
    assert not (fresh / ".sidecar" / "bridge.yaml").exists()


def test_the_plan_is_escaped() -> None:
    plan = Plan(routes={"web\x1b[2J": ["npm\r", "node"]}, domains=["a.example\x07"],
                firewall=True, added=["claude", "sidecar-gate"], written=[".sidecar/x\x1b]0;t"],
                approve=["new      compose.yaml"], image="img\x1b[1m")
    text = "\n".join(plan.lines())
    assert not any(ch in text for ch in "\x1b\r\x07")
    assert "  web\\x1b[2J: node, npm\\r" in text.splitlines()
    assert "Claude may reach (1 domains, and GitHub): a.example\\x07" in text


def test_a_plan_without_routes_or_firewall_says_so() -> None:
    plan = Plan(routes={}, domains=[], firewall=False, added=["claude"], written=[],
                approve=[], image="i")
    lines = plan.lines()
    assert "  none: every command runs in Claude's own container" in lines
    assert "egress firewall: off (Claude may reach any address)" in lines


def test_a_failed_render_takes_back_what_init_wrote(fresh: Path, compose_config: None) -> None:
    # A project that already has a service of the sidecar's name: init writes, render
    # refuses, and the folder is as it was.
    (fresh / "compose.override.yaml").write_text("services:\n  sidecar-gate:\n    image: x\n")
    before = _files(fresh)
    with pytest.raises(RenderError, match="sidecar-gate are used by your project"):
        write_first_run(fresh, probe=False)
    assert _files(fresh) == before
    assert not (fresh / ".sidecar").exists()


def test_claude_outside_any_started_project_says_to_run_up(fresh: Path, tmp_path: Path) -> None:
    import os

    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "DOCKER_HOST": NO_ENGINE}
    result = subprocess.run([SIDECAR, "claude", "--version"], cwd=fresh, env=env,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 1
    assert result.stderr == (f"sidecar: error: no stack of {fresh} was ever started (no "
                             "approval on record): start it with `sidecar up`\n")


@pytest.mark.parametrize(("here", "workdir"), [
    ("", "/workspace"), ("src/lib", "/workspace/src/lib"), ("..", "/workspace")])
def test_claude_runs_in_the_folder_matching_yours(tmp_path: Path, here: str,
                                                  workdir: str) -> None:
    from types import SimpleNamespace

    from sidecar_gen.session.enter import exec_head

    project = tmp_path / "p"
    (project / "src" / "lib").mkdir(parents=True)
    container = SimpleNamespace(attrs={"Config": {"WorkingDir": "/workspace"}})
    head = exec_head(container, project, project / here, tty=True)
    assert head[1:] == ["exec", "-i", "-t", "-w", workdir]
    assert exec_head(container, project, project, tty=False)[1:4] == ["exec", "-i", "-w"]


def test_a_folder_without_a_compose_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _up(empty, tmp_path, "--yes")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"sidecar: error: {empty} has no compose file (compose.yaml or COMPOSE_FILE): run "
        "`sidecar up` in your Docker Compose project, or `sidecar init` to write a starter"]
    assert list(empty.iterdir()) == []
