"""`sidecar session` usage errors: one line, exit 2, nothing created (no engine needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sidecar_gen.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state"


def one_error_line(result: object) -> str:
    output = getattr(result, "output", "")
    lines = [line for line in output.splitlines() if line]
    assert len(lines) == 1, output
    assert lines[0].startswith("sidecar: error: ")
    return lines[0]


@pytest.mark.parametrize("name", ["Bad", "-x", "a.b", "x" * 33])
def test_new_refuses_a_bad_name(tmp_path: Path, name: str, state: Path) -> None:
    result = runner.invoke(app, ["session", "new", "-C", str(tmp_path), "--", name])
    assert result.exit_code == 2
    assert "session name" in one_error_line(result)
    assert not state.exists()


def test_new_outside_a_git_repository(tmp_path: Path, state: Path) -> None:
    result = runner.invoke(app, ["session", "new", "-C", str(tmp_path), "fix"])
    assert result.exit_code == 2
    assert "is not in a git repository" in one_error_line(result)
    assert not state.exists()


@pytest.mark.parametrize("command", [["rm"], ["rm", "--force"], ["up"], ["exec"]])
def test_unknown_session(tmp_path: Path, command: list[str]) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    result = runner.invoke(app, ["session", command[0], "-C", str(tmp_path), *command[1:],
                                 "nope"])
    assert result.exit_code == 2
    assert f"no session 'nope' for {tmp_path.resolve()} (sessions: none)" in \
        one_error_line(result)


def test_ls_without_sessions(tmp_path: Path) -> None:
    result = runner.invoke(app, ["session", "ls", "-C", str(tmp_path)])
    assert (result.exit_code, result.output) == (
        0, "no sessions (create one with `sidecar session new NAME`)\n")
    result = runner.invoke(app, ["session", "ls", "--json", "-C", str(tmp_path)])
    assert (result.exit_code, result.output) == (0, '{\n  "sessions": []\n}\n')
