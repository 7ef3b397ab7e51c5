"""`sidecar up`, `trust` and `doctor` from the command line, where no engine is needed: the
refusals come before any engine call, and bad usage is one line with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from screen import on_a_terminal

from sidecar_gen.compose.cli import ComposeTarget
from sidecar_gen.trust.record import ApprovalStore

SIDECAR = str(Path(sys.executable).parent / "sidecar")
NO_ENGINE = "unix:///nonexistent/docker.sock"


def run(target: ComposeTarget, *args: str,
        **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SIDECAR, *args], cwd=target.directory,
                          env={**target.environ(), **env}, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def records(store: ApprovalStore) -> list[Path]:
    return list(store.root.glob("projects/*/approval.json"))


def test_up_refuses_a_change_before_any_engine_call(target: ComposeTarget,
                                                    store: ApprovalStore) -> None:
    assert run(target, "trust", "--yes").returncode == 0
    (target.directory / "compose.override.yaml").write_text(
        "services:\n  app:\n    privileged: true\n")
    up = run(target, "up", DOCKER_HOST=NO_ENGINE)
    assert up.returncode == 1
    assert up.stdout.startswith("new      compose.override.yaml\n")
    assert "+services.app.privileged: true" in up.stdout
    assert up.stderr.splitlines()[-1] == (
        "sidecar: error: changed since you approved it: compose.override.yaml; review the "
        "diff above, then `sidecar trust` to approve it")
    assert "cannot reach" not in up.stderr


def test_first_up_records_nothing_when_the_engine_is_away(target: ComposeTarget,
                                                          store: ApprovalStore) -> None:
    up = run(target, "up", DOCKER_HOST=NO_ENGINE)
    assert up.returncode == 1
    assert up.stderr.startswith("sidecar: error: cannot reach the Docker engine")
    assert records(store) == []


def test_trust_needs_a_terminal_or_yes(target: ComposeTarget, store: ApprovalStore) -> None:
    refused = run(target, "trust")
    assert refused.returncode == 2
    assert refused.stderr == ("sidecar: error: stdin is not a terminal: pass --yes to approve "
                              "without asking\n")
    assert "no approval on record" in refused.stdout
    assert records(store) == []
    approved = run(target, "trust", "--yes")
    assert approved.returncode == 0 and records(store)
    assert approved.stdout.splitlines()[-1].startswith(f"approved {target.directory}")
    again = run(target, "trust")
    assert again.returncode == 0
    assert again.stdout.startswith("nothing to approve")


def _trust_on_a_terminal(target: ComposeTarget, answer: bytes) -> tuple[int, str]:
    output, code = on_a_terminal([SIDECAR, "trust"], target.directory, target.environ(), answer)
    return code, output.decode()


@pytest.mark.parametrize(("answer", "code"), [(b"n\n", 1), (b"y\n", 0)])
def test_trust_asks_on_a_terminal(target: ComposeTarget, store: ApprovalStore, answer: bytes,
                                  code: int) -> None:
    status, output = _trust_on_a_terminal(target, answer)
    assert status == code, output
    assert bool(records(store)) is (code == 0)
    if code:
        assert "sidecar: error: not approved" in output


def test_an_invalid_policy_is_never_approved(target: ComposeTarget, store: ApprovalStore) -> None:
    bridge = target.directory / ".sidecar" / "bridge.yaml"
    bridge.write_text('version: "1"\ncommands:\n  php: {bogus: 1}\n')
    for args in (("trust", "--yes"), ("up",)):
        result = run(target, *args, DOCKER_HOST=NO_ENGINE)
        assert result.returncode == 1, result
        assert result.stderr.startswith("sidecar: error: ") and "bridge.yaml" in result.stderr
    assert records(store) == []


def test_a_missing_allowlist_is_a_usage_error(target: ComposeTarget, store: ApprovalStore) -> None:
    (target.directory / ".sidecar" / "allowed-domains.txt").unlink()
    result = run(target, "trust", "--yes")
    assert result.returncode == 2
    assert "allowed-domains.txt: no such file (run `sidecar init` and `sidecar render`" in (
        result.stderr)


def test_a_compose_error_is_one_line(target: ComposeTarget, store: ApprovalStore) -> None:
    (target.directory / "compose.override.yaml").write_text("services: [not, a, mapping]\n")
    result = run(target, "trust", "--yes")
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("sidecar: error: docker compose config failed in ")


@pytest.mark.parametrize("args", [("up", "--dir", "/nonexistent"),
                                  ("trust", "--dir", "/nonexistent"),
                                  ("doctor", "--dir", "/nonexistent"),
                                  ("doctor", "--format", "xml")])
def test_usage_errors(target: ComposeTarget, args: tuple[str, ...]) -> None:
    result = run(target, *args)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr


def test_a_policy_file_that_is_a_link_is_refused(target: ComposeTarget, store: ApprovalStore,
                                                 tmp_path: Path) -> None:
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY\n")
    domains = target.directory / ".sidecar" / "allowed-domains.txt"
    domains.unlink()
    domains.symlink_to(secret)
    result = run(target, "trust", "--yes")
    assert result.returncode == 2
    assert "is a symbolic link" in result.stderr
    assert "PRIVATE KEY" not in result.stdout + result.stderr
    assert records(store) == []


def test_net_allow_never_approves_another_change(target: ComposeTarget,
                                                 store: ApprovalStore) -> None:
    assert run(target, "trust", "--yes").returncode == 0
    bridge = (target.directory / ".sidecar" / "bridge.yaml").read_text()
    # What the agent may have written since the approval: `net allow` must not approve it.
    (target.directory / "compose.override.yaml").write_text(
        "services:\n  app:\n    privileged: true\n")
    refused = run(target, "net", "allow", "example.org", DOCKER_HOST=NO_ENGINE)
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.startswith("sidecar: error: changed since you approved it: "
                                     "compose.override.yaml")
    assert (target.directory / ".sidecar" / "bridge.yaml").read_text() == bridge
    assert "cannot reach" not in refused.stderr
    bad = run(target, "net", "allow", "https://example.org/", DOCKER_HOST=NO_ENGINE)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
