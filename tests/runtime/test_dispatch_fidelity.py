"""Where a routed command could differ from a local one: arguments, signals, streams, HOME.

Against the real engine, directly and through the gate; with a pty where a terminal matters.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import exec_records

from runtime.conftest import DispatchEnv, PtyRun, remote_processes
from sidecar_gen.runtime.terminal import DETACH_BYTES
from sidecar_gen.runtime.transport import parse_host

Make = Callable[[dict[str, Any]], DispatchEnv]
ENGINE = parse_host(os.environ.get("DOCKER_HOST"))  # the engine under test


def bridge(commands: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"version": "1", "commands": commands, **extra}


def marker() -> str:
    """A number no other test's `sleep` uses, to find our processes with `ps`."""
    return str(100000 + int.from_bytes(os.urandom(3), "big") % 800000)


def gone(docker_client: Any, container: str, text: str, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while text in remote_processes(docker_client, container):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# -- D1: tty: always with a stdin that ends ----------------------------------------------------


@pytest.mark.parametrize("stdin", ["devnull", "pipe"])
def test_tty_always_with_a_stdin_that_ends(dispatch_env: Make, box: str, docker_client: Any,
                                           stdin: str) -> None:
    mark = marker()
    env = dispatch_env(bridge({
        "quick": {"container": box, "exec": ["sh", "-c", "echo hi; exit 3"], "tty": "always"},
        "slow": {"container": box, "tty": "always",
                 "exec": ["sh", "-c", f"sleep 1.{mark}; echo hi; exit 3"]},
    }))
    for name in ("quick", "slow"):
        source: Any = subprocess.DEVNULL if stdin == "devnull" else subprocess.PIPE
        proc = env.popen(name, stdin=source, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate(input=b"typed\n" if stdin == "pipe" else None, timeout=30)
        assert proc.returncode == 3, err
        assert err == b""
        # Like `docker exec -t`: the terminal's line ends; what was piped in is echoed by it.
        assert b"hi\r\n" in out, out
        if stdin == "devnull":
            assert out == b"hi\r\n"
    assert gone(docker_client, box, f"sleep 1.{mark}")


# -- D2: stdin: auto | always | never ----------------------------------------------------------


def test_stdin_never_keeps_a_read_loop_intact(dispatch_env: Make, box: str) -> None:
    env = dispatch_env(bridge({
        # The command never reads its stdin; it takes a moment, as real programs do.
        "eats": {"container": box, "exec": ["sh", "-c", "sleep 0.3; echo v"]},
        "polite": {"container": box, "exec": ["sh", "-c", "sleep 0.3; echo v"],
                   "stdin": "never"},
    }))
    loop = 'printf "a\\nb\\nc\\n" | while read l; do echo "$l"; "$0"; done'
    polite = subprocess.run(["sh", "-c", loop, env.cmd("polite")], capture_output=True,
                            env=env.env, cwd="/tmp", timeout=60)
    assert polite.stdout == b"a\nv\nb\nv\nc\nv\n", polite.stderr
    # `auto` streams stdin like `docker exec -i`: the first run takes the loop's other lines.
    eats = subprocess.run(["sh", "-c", loop, env.cmd("eats")], capture_output=True,
                          env=env.env, cwd="/tmp", timeout=60)
    assert eats.stdout == b"a\nv\n", eats.stderr


def test_stdin_never_reads_end_of_file_while_ours_stays_open(dispatch_env: Make,
                                                             box: str) -> None:
    env = dispatch_env(bridge({"cat": {"container": box, "exec": "cat", "stdin": "never"}}))
    proc = env.popen("cat", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
    try:
        assert proc.wait(timeout=30) == 0  # our stdin is still open: cat never saw it
        assert proc.stdout and proc.stdout.read() == b""
    finally:
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize(("mode", "source", "expected"), [
    ("auto", "devnull", "/dev/null"),
    ("auto", "pipe", "pipe:"),
    ("always", "devnull", "pipe:"),
    ("never", "pipe", "/dev/null"),
])
def test_what_the_program_gets_as_stdin(dispatch_env: Make, box: str, mode: str, source: str,
                                        expected: str) -> None:
    env = dispatch_env(bridge({"fd0": {"container": box, "exec": "readlink /proc/self/fd/0",
                                       "stdin": mode}}))
    proc = env.popen("fd0", stdin=subprocess.DEVNULL if source == "devnull" else subprocess.PIPE,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.decode().startswith(expected), out


def test_ctrl_c_stops_a_command_with_a_terminal_and_no_stdin(
        dispatch_env: Make, box: str, docker_client: Any) -> None:
    mark = marker()
    env = dispatch_env(bridge({"nap": {"container": box, "stdin": "never", "exec": [
        "sh", "-c", f"echo READY; sleep {mark}"]}}))
    run = PtyRun([env.cmd("nap")], env.env)  # tty: auto, and both ends are a terminal
    assert run.read_until(b"READY"), run.text
    run.write(b"\x03")  # our terminal is not raw: Ctrl-C is SIGINT for the dispatcher
    assert run.wait() == 130, run.text
    assert gone(docker_client, box, f"sleep {mark}")


# -- D3: SIGQUIT -------------------------------------------------------------------------------


def test_sigquit_stops_the_remote_tree_and_exits_131(dispatch_env: Make, box: str,
                                                     docker_client: Any) -> None:
    mark = marker()
    env = dispatch_env(bridge({"slow": {"container": box, "exec": [
        "sh", "-c", f"sleep {mark}1 & sleep {mark}2; wait"]}}))
    proc = env.popen("slow", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while f"sleep {mark}2" not in remote_processes(docker_client, box):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        proc.send_signal(signal.SIGQUIT)
        assert proc.wait(timeout=15) == 131
        assert gone(docker_client, box, f"sleep {mark}")
    finally:
        proc.kill()
        proc.communicate()


# -- D4: Docker's detach keys ------------------------------------------------------------------

RAW_READ = "stty raw -echo; echo READY; dd bs=1 count={n} 2>/dev/null | od -An -tx1; echo END"


def test_ctrl_p_reaches_the_program_at_once(dispatch_env: Make, box: str) -> None:
    env = dispatch_env(bridge({
        "one": {"container": box, "tty": "always", "exec": ["sh", "-c", RAW_READ.format(n=1)]},
        "two": {"container": box, "tty": "always", "exec": ["sh", "-c", RAW_READ.format(n=2)]},
    }))
    # Ctrl-P alone: Docker's default detach keys would hold it back until the next key.
    run = PtyRun([env.cmd("one")], env.env)
    assert run.read_until(b"READY"), run.text  # the remote terminal is raw from here on
    run.write(b"\x10")
    assert run.read_until(b"END", 20), run.text
    assert run.wait() == 0, run.text
    assert "10" in run.text.split("END")[0]
    # Ctrl-P Ctrl-Q: Docker's default would detach, end the session and report 126.
    run = PtyRun([env.cmd("two")], env.env)
    assert run.read_until(b"READY"), run.text
    run.write(b"\x10")
    time.sleep(0.2)
    run.write(b"\x11")
    assert run.read_until(b"END", 20), run.text
    assert run.wait() == 0, run.text
    assert "10 11" in run.text


@pytest.mark.parametrize("hup", ["ignored", "default"])
def test_a_detach_is_never_126_and_never_leaves_the_command_running(
        dispatch_env: Make, box: str, docker_client: Any, hup: str) -> None:
    """Our own detach sequence, typed key by key: the daemon ends the session (the command
    dies of the closed terminal, or goes on when it ignores SIGHUP); we stop it and say so."""
    mark = marker()
    trap = "trap '' HUP; " if hup == "ignored" else ""
    env = dispatch_env(bridge({"nap": {"container": box, "tty": "always", "exec": [
        "sh", "-c", f"{trap}stty raw -echo; echo READY; sleep {mark}"]}}))
    run = PtyRun([env.cmd("nap")], env.env)
    assert run.read_until(b"READY"), run.text
    for key in DETACH_BYTES:
        run.write(bytes([key]))
        time.sleep(0.15)  # as a person types
    status = run.wait()
    assert status == 125, run.text
    assert "the Docker engine detached from the command" in run.text
    if "detached from container" in run.text:
        # Podman 4.3 writes its own line ("Error: detached from container") to the terminal
        # before the stream ends, not as a piece of it: ours quotes it (README: limits).
        assert "(Error: detached from container); it was stopped" in run.text, run.text
    else:
        assert run.text.count("exec attach failed") == 1, run.text  # only inside our one line
    assert gone(docker_client, box, f"sleep {mark}")


def test_a_program_that_prints_the_detach_line_and_exits_126_is_believed(
        dispatch_env: Make, box: str) -> None:
    line = "exec attach failed: error on attach stdin: read escape sequence"
    env = dispatch_env(bridge({"fake": {"container": box, "tty": "always", "exec": [
        "sh", "-c", f"echo '{line}'; exit 126"]}}))
    result = env.run("fake")
    assert (result.returncode, result.stdout, result.stderr) == (
        126, line.encode() + b"\r\n", b"")


# -- D5: not found / not executable are the engine's answer, never the program's output --------


NOT_FOUND = ('OCI runtime exec failed: exec failed: unable to start container process: exec: "x":'
             " executable file not found in $PATH: unknown")


@pytest.mark.parametrize("tty", ["never", "always"])
def test_output_that_looks_like_a_daemon_error_is_the_programs(dispatch_env: Make, box: str,
                                                               tty: str) -> None:
    env = dispatch_env(bridge({
        "oci": {"container": box, "tty": tty,
                "exec": ["sh", "-c", 'echo "OCI runtime says hello"; exit 126']},
        "nf": {"container": box, "tty": tty, "exec": ["sh", "-c", f"echo '{NOT_FOUND}'; exit 127"]},
    }))
    end = b"\r\n" if tty == "always" else b"\n"
    result = env.run("oci")
    assert (result.returncode, result.stdout, result.stderr) == (
        126, b"OCI runtime says hello" + end, b"")
    result = env.run("nf")
    assert (result.returncode, result.stdout, result.stderr) == (
        127, NOT_FOUND.encode() + end, b"")


def test_such_output_streams_while_the_program_runs(dispatch_env: Make, box: str) -> None:
    env = dispatch_env(bridge({"talk": {"container": box, "exec": [
        "sh", "-c", 'echo "OCI runtime exec failed: not really"; sleep 60']}}))
    proc = env.popen("talk", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"OCI runtime exec failed: not really\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 143
        proc.communicate()


@pytest.mark.parametrize("tty", ["never", "always"])
def test_start_failures_are_decided_by_the_engine(dispatch_env: Make, box: str,
                                                  tty: str) -> None:
    env = dispatch_env(bridge({"nf": {"container": box, "exec": "no-such-program", "tty": tty},
                               "nx": {"container": box, "exec": "/etc/passwd", "tty": tty}}))
    missing = env.run("nf")
    assert (missing.returncode, missing.stdout) == (127, b"")
    assert missing.stderr.decode() == (
        f"sidecar: nf: no-such-program: not found in container {box}\n")
    denied = env.run("nx")
    assert (denied.returncode, denied.stdout) == (126, b"")
    assert denied.stderr.decode() == (
        f"sidecar: nx: /etc/passwd: permission denied in container {box}\n")


# -- D6: a container stopped under a running command -------------------------------------------


def test_a_stopped_container_turns_137_into_125_with_a_hint(make_container: Any) -> None:
    """The verdict after a 137/143, from one look at the container (no polling)."""
    from sidecar_gen.runtime import dispatch, engine, terminal
    from sidecar_gen.runtime.contract import Route
    from sidecar_gen.runtime.plan import ExecPlan

    running = make_container()
    stopped = make_container()
    stopped.stop(timeout=0)

    def plan(container: Any) -> ExecPlan:
        return ExecPlan(name="spew", route=Route("app", ("spew",)), argv=("spew",),
                    container=container.name, ref=container.id, user=None, workdir="/", env=(),
                    token="0" * 32, tty=False, stdin=False, endpoint=ENGINE)

    killed = engine.ExecState(running=False, exit_code=137, pid=4321)
    quiet = terminal.Output(None, b"")
    assert dispatch.verdict(plan(running), killed, quiet) == 137
    with pytest.raises(dispatch.DispatchError) as info:
        dispatch.verdict(plan(stopped), killed, quiet)
    assert (info.value.exit_code, info.value.message) == (125, (
        f"container {stopped.name} stopped while the command was running (exit code 137):"
        " docker compose up -d app"))
    stopped.remove()
    with pytest.raises(dispatch.DispatchError):
        dispatch.verdict(plan(stopped), killed, quiet)
    exited = engine.ExecState(running=False, exit_code=1, pid=4321)
    assert dispatch.verdict(plan(stopped), exited, quiet) == 1  # only 137/143 ask


@pytest.mark.parametrize(("raw", "code"), [(-15, 143), (-9, 137), (-1, 129), (-2, 130)])
def test_a_negative_exit_code_is_the_signal_it_names(make_container: Any, raw: int,
                                                      code: int) -> None:
    """Some engines report a process killed by signal N as exit code -N (the Go runtime's
    raw status): the verdict is 128+N, as a shell says, never the low byte (-15 & 0xFF = 241)."""
    from sidecar_gen.runtime import dispatch, engine, terminal
    from sidecar_gen.runtime.contract import Route
    from sidecar_gen.runtime.plan import ExecPlan

    running = make_container()
    plan = ExecPlan(name="nap", route=Route("app", ("nap",)), argv=("nap",),
                    container=running.name, ref=running.id, user=None, workdir="/", env=(),
                    token="0" * 32, tty=False, stdin=False, endpoint=ENGINE)
    state = engine.ExecState(running=False, exit_code=raw, pid=4321)
    assert dispatch.verdict(plan, state, terminal.Output(None, b"")) == code


@pytest.mark.parametrize("how", ["kill", "remove"])
def test_container_stopped_under_a_command(dispatch_env: Make, make_container: Any,
                                           how: str) -> None:
    """The command dies with its container (137, as with docker exec); when the engine has
    already recorded the stop, or dropped the exec with the container, the dispatcher says so
    instead (125). One line at most, nothing else."""
    victim = make_container()
    env = dispatch_env(bridge({"nap": {"container": "app", "exec": ["sleep", "60"]}},
                              containers={"app": victim.name}))
    proc = env.popen("nap", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while "sleep 60" not in victim.exec_run(["ps"]).output.decode():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    if how == "kill":
        victim.kill()
    else:
        victim.remove(force=True)
    _out, stderr = proc.communicate(timeout=30)
    hint = (f"sidecar: nap: container {re.escape(victim.name)} stopped while the command was"
            " running(?: \\(exit code 137\\))?: docker compose up -d app\n")
    if proc.returncode == 125:
        assert re.fullmatch(hint, stderr.decode()), stderr
    else:
        assert (proc.returncode, stderr) == (137, b"")


def test_kill_script_stops_what_carries_the_token_and_says_when_nothing_did(
        box: str, docker_client: Any) -> None:
    from sidecar_gen.runtime import killer, names

    container = docker_client.containers.get(box)
    token, mark = os.urandom(16).hex(), marker()
    container.exec_run(["sh", "-c", f"sleep {mark}1 & sleep {mark}2; wait"], detach=True,
                       environment={names.EXEC_TOKEN_ENV: token})
    container.exec_run(["sleep", f"{mark}3"], detach=True)  # no token: a bystander
    deadline = time.monotonic() + 15
    while f"sleep {mark}2" not in remote_processes(docker_client, box):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert container.exec_run(killer.kill_command(token)).exit_code == 0
    assert gone(docker_client, box, f"sleep {mark}1") and gone(docker_client, box, f"sleep {mark}2")
    assert f"sleep {mark}3" in remote_processes(docker_client, box)
    assert container.exec_run(killer.kill_command(token)).exit_code == killer.NOTHING_FOUND
    container.exec_run(["pkill", "-f", f"sleep {mark}3"])


# -- 16.3: the cleanup runs as the command's user ----------------------------------------------


def test_sigterm_stops_a_command_of_another_user_than_the_containers(
        dispatch_env: Make, make_container: Any, docker_client: Any) -> None:
    mark = marker()
    victim = make_container(user="4321:4321")  # default user: neither root nor the command's
    env = dispatch_env(bridge({"slow": {"container": victim.name, "user": "1000:1000", "exec": [
        "sh", "-c", f"sleep {mark}1 & sleep {mark}2; wait"]}}))
    since = int(time.time()) - 1
    proc = env.popen("slow", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while f"sleep {mark}2" not in remote_processes(docker_client, victim.name):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 143
        assert gone(docker_client, victim.name, f"sleep {mark}"), remote_processes(
            docker_client, victim.name)
    finally:
        proc.kill()
        proc.communicate()
    # The engine's record of the cleanup exec: it ran as the command's user.
    users = [record["ProcessConfig"]["user"]
             for record in exec_records(docker_client, victim.id, since)
             if (record["ProcessConfig"]["arguments"] or ["", ""])[:2][-1].startswith("case")]
    assert users == ["1000:1000"]


# -- 12: a uid without a home ------------------------------------------------------------------


def test_a_uid_without_an_account_gets_a_writable_home(
        dispatch_env: Make, box: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The gate fills ${PUID}/${PGID} from its own environment (render passes the same values).
    monkeypatch.setenv("PUID", "4242")
    monkeypatch.setenv("PGID", "4242")
    env = dispatch_env(bridge({
        "cache": {"container": box, "user": "${PUID}:${PGID}", "exec": [
            "sh", "-c", 'mkdir -p "$HOME/.cache/tool" && echo kept > "$HOME/.cache/tool/x" && '
            'cat "$HOME/.cache/tool/x" && echo "$HOME" && ls -ln "$HOME/.cache/tool/x"']},
        # A named user keeps the home of its account.
        "named": {"container": box, "user": "app", "exec": ["sh", "-c", 'echo "$HOME"']},
    }))
    result = env.run("cache", env={"PUID": "4242", "PGID": "4242"})
    assert result.returncode == 0, result.stderr
    kept, home, listing = result.stdout.decode().splitlines()
    assert (kept, home) == ("kept", "/tmp")
    assert listing.split()[2:4] == ["4242", "4242"]
    named = env.run("named")
    assert (named.returncode, named.stdout) == (0, b"/app\n"), named.stderr
