"""`sidecar auth`: the real credentials stored on the host (0600, never from argv, never
printed), their sources and precedence; bad input is one line, exit 2. The real command, in
a subprocess, with its own state folder."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from broker.conftest import API_KEY, GITHUB, OAUTH

from sidecar_gen.auth import CredentialStore, resolve

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def auth(state: Path, sidecar_cli: list[str]) -> Run:
    def run(*args: str, stdin: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        environ = {k: v for k, v in os.environ.items()
                   if k not in ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN")}
        result = subprocess.run([*sidecar_cli, "auth", *args], input=stdin, text=True,
                                capture_output=True, timeout=60,
                                env={**environ, "XDG_STATE_HOME": str(state), **(env or {})})
        for secret in (API_KEY, OAUTH, GITHUB):
            assert secret not in result.stdout + result.stderr, "a secret was printed"
        return result
    return run


def _one_line(result: subprocess.CompletedProcess[str], code: int, why: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and why in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_set_from_a_file_and_from_stdin(auth: Run, state: Path, tmp_path: Path) -> None:
    secret_file = tmp_path / "key.txt"
    secret_file.write_text(f"  {API_KEY}\n")
    stored = auth("set", "--api-key", "--from-file", str(secret_file))
    assert stored.returncode == 0, stored.stderr
    folder = state / "claude-sidecar" / "credentials"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "api-key").stat().st_mode) == 0o600
    assert (folder / "api-key").read_text() == API_KEY + "\n"
    assert auth("set", "--github-token", "--from-file", "-", stdin=GITHUB + "\n").returncode == 0
    status = auth("status")
    assert status.returncode == 0
    assert status.stdout.splitlines() == [
        f"anthropic: Anthropic API key from stored {folder / 'api-key'}",
        f"github: GitHub token from stored {folder / 'github-token'}"]


def test_the_environment_comes_first(auth: Run, state: Path) -> None:
    auth("set", "--oauth-token", "--from-file", "-", stdin=OAUTH)
    status = auth("status", env={"ANTHROPIC_API_KEY": API_KEY})
    assert status.stdout.splitlines()[:2] == [
        "anthropic: Anthropic API key from environment ANTHROPIC_API_KEY",
        f"  overridden: Claude OAuth token from stored "
        f"{state / 'claude-sidecar' / 'credentials' / 'oauth-token'}"]
    store = CredentialStore(state / "claude-sidecar")
    both = {"ANTHROPIC_API_KEY": API_KEY, "CLAUDE_CODE_OAUTH_TOKEN": OAUTH}
    resolved = resolve(store, both)
    assert resolved.anthropic is not None and resolved.anthropic.value == API_KEY
    resolved = resolve(store, {"CLAUDE_CODE_OAUTH_TOKEN": OAUTH.replace("REAL", "ENV")})
    assert resolved.anthropic is not None and "ENV" in resolved.anthropic.value
    assert resolve(store, {}).anthropic.value == OAUTH  # type: ignore[union-attr]
    assert API_KEY not in repr(resolve(store, both))


def test_status_without_a_credential(auth: Run) -> None:
    status = auth("status")
    assert status.returncode == 1
    assert status.stdout.startswith("anthropic: none (set ANTHROPIC_API_KEY")


def test_one_anthropic_credential_at_a_time(auth: Run, state: Path) -> None:
    assert auth("set", "--api-key", "--from-file", "-", stdin=API_KEY).returncode == 0
    _one_line(auth("set", "--oauth-token", "--from-file", "-", stdin=OAUTH), 2,
              "already holds the Anthropic API key: add --force")
    replaced = auth("set", "--oauth-token", "--force", "--from-file", "-", stdin=OAUTH)
    assert replaced.returncode == 0 and "replaced the stored Anthropic API key" in \
        replaced.stderr
    folder = state / "claude-sidecar" / "credentials"
    assert sorted(p.name for p in folder.iterdir()) == ["oauth-token"]
    assert auth("unset", "--oauth-token").returncode == 0
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize(("args", "stdin", "why"), [
    (["set", "--api-key", API_KEY], None, "never taken from the command line"),
    (["set", "--api-key"], "", "no terminal to ask"),
    (["set", "--api-key", "--from-file", API_KEY], None, "its name is not repeated"),
    (["set", "--api-key", "--from-file", "-"], OAUTH, "looks like a Claude OAuth token"),
    (["set", "--oauth-token", "--from-file", "-"], API_KEY, "looks like an Anthropic API key"),
    (["set", "--api-key", "--from-file", "-"], "two words\n", "not visible ASCII"),
    (["set", "--api-key", "--from-file", "-"], "\n", "empty"),
    (["set", "--api-key", "--from-file", "-"], "sk-ant-api03-sidecar-broker-placeholder",
     "placeholder"),
    (["set", "--from-file", "-"], API_KEY, "exactly one of"),
    (["set", "--api-key", "--github-token", "--from-file", "-"], API_KEY, "exactly one of"),
])
def test_bad_input_is_one_line(auth: Run, state: Path, args: list[str], stdin: str | None,
                               why: str) -> None:
    _one_line(auth(*args, stdin=stdin), 2, why)
    assert not (state / "claude-sidecar" / "credentials" / "api-key").exists()


def test_a_fifo_is_refused_at_once(auth: Run, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    start = time.monotonic()
    _one_line(auth("set", "--api-key", "--from-file", str(fifo)), 2, "FIFO")
    assert time.monotonic() - start < 30


def test_a_stored_file_others_could_write_is_refused(auth: Run, state: Path) -> None:
    auth("set", "--github-token", "--from-file", "-", stdin=GITHUB)
    path = state / "claude-sidecar" / "credentials" / "github-token"
    path.chmod(0o666)
    _one_line(auth("status"), 2, "not a file of yours that only you can write")
    path.chmod(0o644)  # readable by others only: ours, so tightened
    assert auth("status").returncode == 1  # (no Anthropic credential)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.unlink()
    path.symlink_to("/etc/hostname")
    _one_line(auth("status"), 2, "symbolic link")


def test_a_state_folder_others_can_write_is_refused(auth: Run, state: Path) -> None:
    auth("set", "--github-token", "--from-file", "-", stdin=GITHUB)
    (state / "claude-sidecar" / "credentials").chmod(0o777)
    _one_line(auth("status"), 2, "writable by other users")
