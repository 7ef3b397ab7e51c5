"""The runner of host commands: limits, process groups, signals; with real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sidecar_gen.errors import ExitCode, Interrupted, SidecarError
from sidecar_gen.host import process as hostproc

# A command that leaves a grandchild behind it and never ends: both pids go to a file.
HANG = "sleep 1000 & echo $! >> {pids}; echo $$ >> {pids}; wait"


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def pids_of(path: Path, count: int = 2, timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [int(p) for p in path.read_text().split()] if path.exists() else []
        if len(found) >= count:
            return found
        time.sleep(0.02)
    raise AssertionError(f"the command never wrote {count} pids to {path}")


def gone(pids: list[int], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def test_a_command_over_its_limit_is_stopped_with_its_whole_group(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pids = tmp_path / "pids"
    monkeypatch.setenv("SIDECAR_TIMEOUT_GIT", "1")
    call = hostproc.HostCommand(["sh", "-c", HANG.format(pids=pids)], "git", "the hanging stand-in")
    with pytest.raises(hostproc.HostTimeoutError) as caught:
        hostproc.run(call)
    assert caught.value.message == ("the hanging stand-in did not finish within 1 s: stopped "
                                    "it and its children (set SIDECAR_TIMEOUT_GIT to allow "
                                    "longer)")
    assert caught.value.exit_code is ExitCode.FINDINGS
    found = pids_of(pids)
    assert gone(found), [p for p in found if alive(p)]  # the grandchild too


def test_a_command_that_ignores_sigterm_is_killed(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pids = tmp_path / "pids"
    monkeypatch.setenv("SIDECAR_TIMEOUT_GIT", "0.5")
    monkeypatch.setattr(hostproc, "GRACE", 0.5)
    script = "trap '' TERM; " + HANG.format(pids=pids)
    with pytest.raises(hostproc.HostTimeoutError):
        hostproc.run(hostproc.HostCommand(["sh", "-c", script], "git", "stubborn"))
    assert gone(pids_of(pids))


def test_output_input_and_status_of_a_command_within_its_limit() -> None:
    done = hostproc.run(hostproc.HostCommand(["sh", "-c", "cat; echo err >&2; exit 3"], "git",
                                             "cat", input="in\n"))
    assert (done.returncode, done.stdout, done.stderr) == (3, "in\n", "err\n")


def test_relayed_output_reaches_the_terminal_escaped_as_it_comes(
        capfd: pytest.CaptureFixture[str]) -> None:
    """A child whose output is not captured (compose's progress in `sidecar up`) never writes
    to the terminal itself: each line arrives escaped, its line break kept, its input fed."""
    script = (r"""read -r got; printf 'up\033[1A\033[2K%s\n' "$got"; """
              r"""printf 'bidi\342\200\256\n' >&2""")
    done = hostproc.run(hostproc.HostCommand(["sh", "-c", script], "compose-up", "compose",
                                             input="hi\n", capture=False))
    out, err = capfd.readouterr()
    assert done.returncode == 0
    assert out == "up\\x1b[1A\\x1b[2Khi\n"
    assert err == "bidi\\u202e\n"


def test_limits_come_from_the_environment_and_bad_values_are_one_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert hostproc.limit("compose-up") == hostproc.LIMITS["compose-up"]
    monkeypatch.setenv("SIDECAR_TIMEOUT_COMPOSE_UP", "3600")
    assert hostproc.limit("compose-up") == 3600
    for bad in ("soon", "0", "-5", "nan"):
        monkeypatch.setenv("SIDECAR_TIMEOUT_COMPOSE_UP", bad)
        with pytest.raises(SidecarError) as caught:
            hostproc.limit("compose-up")
        assert caught.value.exit_code is ExitCode.USAGE
        assert caught.value.message.startswith(f"SIDECAR_TIMEOUT_COMPOSE_UP={bad!r}: ")


def test_a_missing_program_is_one_line() -> None:
    with pytest.raises(SidecarError) as caught:
        hostproc.run(hostproc.HostCommand(["/nonexistent/docker"], "git", "docker compose config"))
    assert caught.value.message == "cannot run docker compose config: No such file or directory"
    assert caught.value.exit_code is ExitCode.USAGE


RUNNER = """
import sys
from sidecar_gen.host import process as hostproc
from sidecar_gen.errors import Interrupted
try:
    hostproc.run(hostproc.HostCommand(["sh", "-c", sys.argv[1]], "compose-up", "stand-in"))
except Interrupted as exc:
    sys.exit(128 + exc.signum)
sys.exit(0)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_to_sidecar_stops_the_childs_group(tmp_path: Path, signum: int) -> None:
    pids = tmp_path / "pids"
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, HANG.format(pids=pids)])
    try:
        found = pids_of(pids)
        runner.send_signal(signum)
        assert runner.wait(timeout=30) == 128 + signum
    finally:
        runner.kill()
    assert gone(found), [p for p in found if alive(p)]


def test_children_side_by_side_are_all_stopped_when_one_times_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    monkeypatch.setenv("SIDECAR_TIMEOUT_COMPOSE_VERSION", "100")
    monkeypatch.setenv("SIDECAR_TIMEOUT_COMPOSE_CONFIG", "1")
    background = hostproc.start(hostproc.HostCommand(["sh", "-c", HANG.format(pids=first)],
                                              "compose-version", "version"))
    with background, pytest.raises(hostproc.HostTimeoutError):
        hostproc.run(hostproc.HostCommand(["sh", "-c", HANG.format(pids=second)], "compose-config",
                                   "config"))
    assert gone(pids_of(first) + pids_of(second))
    assert not hostproc._live  # and the signal handlers are sidecar's own again
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_as_root_a_child_runs_as_the_owner_of_a_folder(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (the CI runs the suite as root)")
    folder = tmp_path / "project"
    folder.mkdir()
    os.chown(folder, 1234, 2345)
    owner = hostproc.owner_identity(folder)
    assert owner == hostproc.Identity(1234, 2345)
    done = hostproc.run(hostproc.HostCommand(["sh", "-c", "id -u; id -g; id -G"], "git", "id",
                                      identity=owner))
    assert done.stdout.split() == ["1234", "2345", "2345"]  # no supplementary group of root
    assert hostproc.owner_identity(tmp_path) is None  # root's own folder: no change


def test_a_signal_while_a_child_starts_stops_it_once_it_is_known(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[int] = []
    real = subprocess.Popen

    class SignalledAtStart(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            started.append(self.pid)
            os.kill(os.getpid(), signal.SIGTERM)  # handled before the runner knows the child

    monkeypatch.setattr(subprocess, "Popen", SignalledAtStart)
    with pytest.raises(Interrupted) as caught:
        hostproc.run(hostproc.HostCommand(["sh", "-c", HANG.format(pids=tmp_path / "pids")], "git",
                                   "stand-in"))
    assert caught.value.signum == signal.SIGTERM
    assert gone(started), started
    assert not hostproc._live
