"""The dispatcher end to end, against the real engine (busybox stand-in containers)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runtime.conftest import DispatchEnv, remote_processes

Make = Callable[[dict[str, Any]], DispatchEnv]


def bridge(commands: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"version": "1", "commands": commands, **extra}


def echo_args(container: str, **spec: Any) -> dict[str, Any]:
    """A command printing its argument count, each argument in brackets, and its cwd."""
    return {
        "container": container,
        "exec": ["sh", "-c", 'echo "n=$#"; for a in "$@"; do printf "[%s]\\n" "$a"; done; pwd',
                 "sh"],
        **spec,
    }


def out(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode("utf-8")


def err(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode("utf-8")


def wait_until(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


# -- 1. routing --------------------------------------------------------------------------------


def test_routes_through_containers_map(dispatch_env: Make, box: str, docker_client: Any) -> None:
    env = dispatch_env(bridge({"hn": {"container": "app", "exec": "hostname"}},
                              containers={"app": box}))
    result = env.run("hn")
    assert result.returncode == 0, err(result)
    assert out(result) == docker_client.containers.get(box).id[:12] + "\n"
    assert env.report.created == ["hn"]


def test_routes_to_compose_service_by_labels(dispatch_env: Make, make_container: Any,
                                             docker_client: Any) -> None:
    project = f"proj{os.urandom(4).hex()}"
    labels = {"com.docker.compose.project": project, "com.docker.compose.service": "php",
              "com.docker.compose.container-number": "1"}
    stopped = make_container(labels={**labels, "com.docker.compose.container-number": "2"},
                             command=["sh", "-c", "echo stopped > /who; sleep 3600"])
    stopped.stop(timeout=0)
    make_container(labels={**labels, "com.docker.compose.oneoff": "True"},
                   command=["sh", "-c", "echo oneoff > /who; sleep 3600"])
    make_container(labels={**labels, "com.docker.compose.project": project + "x"},
                   command=["sh", "-c", "echo other-project > /who; sleep 3600"])
    make_container(labels=labels, command=["sh", "-c", "echo service > /who; sleep 3600"])
    env = dispatch_env(bridge({"who": {"container": "php", "exec": "cat /who"}},
                              sidecar={"project": project}))
    assert wait_until(lambda: env.run("who").stdout == b"service\n", 10), err(env.run("who"))


def test_routes_to_literal_container_name(dispatch_env: Make, box: str) -> None:
    env = dispatch_env(bridge({"say": {"container": box, "exec": ["echo", "literal"]}}))
    result = env.run("say")
    assert (result.returncode, out(result)) == (0, "literal\n"), err(result)


def test_unlisted_command_goes_to_default_container(dispatch_env: Make, box: str,
                                                    docker_client: Any) -> None:
    env = dispatch_env(bridge({"x": {"container": box, "exec": "true"}},
                              default_container=box))
    # `hostname` is not routed: a symlink for it makes it reach the dispatcher.
    (env.bin / "hostname").symlink_to(".sidecar-dispatch")
    result = env.run("hostname", cwd="/tmp")
    assert result.returncode == 0, err(result)
    assert out(result) == docker_client.containers.get(box).id[:12] + "\n"


def test_unlisted_command_runs_natively_without_looping(dispatch_env: Make, box: str,
                                                        tmp_path: Path) -> None:
    env = dispatch_env(bridge({"x": {"container": box, "exec": "true"}}))
    native = tmp_path / "native-bin"
    native.mkdir()
    script = native / "hello-native"
    script.write_text("#!/bin/sh\necho native \"$@\"\n")
    script.chmod(0o755)
    for name in ("hello-native", "looper"):
        (env.bin / name).symlink_to(".sidecar-dispatch")
    # The wrapper directory comes first on PATH, also as a second, differently spelled entry.
    path = f"{env.bin}:{env.bin}/.:{native}:/usr/bin:/bin"
    result = env.run("hello-native", "a b", env={"PATH": path})
    assert (result.returncode, out(result)) == (0, "native a b\n"), err(result)
    looped = env.run("looper", env={"PATH": path}, timeout=20)
    assert looped.returncode == 127
    assert "looper: command not found" in err(looped)
    assert len(err(looped).strip().splitlines()) == 1


def test_sidecar_exec_runs_routed_commands_and_refuses_others(dispatch_env: Make, box: str,
                                                              sidecar_cli: list[str]) -> None:
    env = dispatch_env(bridge({"say": {"container": box, "exec": ["echo"]}}))
    result = subprocess.run([*sidecar_cli, "exec", "say", "-n", "x y"], capture_output=True,
                            env={**os.environ, **env.env}, cwd="/tmp")
    assert (result.returncode, result.stdout) == (0, b"x y"), result.stderr
    unknown = subprocess.run([*sidecar_cli, "exec", "--config", str(env.config), "nope"],
                             capture_output=True, env={**os.environ, **env.env}, cwd=env.root)
    assert unknown.returncode == 127
    assert b"not a routed command" in unknown.stderr


# -- 2. argv fidelity --------------------------------------------------------------------------

TRICKY = ["a b", "", "'single'", '"double"', "$HOME", "*", "?[x]", "line1\nline2", "naïve ☃",
          "back\\slash", ";rm -rf /;", "--flag=$(id)", "  lead", "tab\there"]


def test_arguments_arrive_verbatim(dispatch_env: Make, box: str) -> None:
    env = dispatch_env(bridge({"args": echo_args(box)}))
    result = env.run("args", *TRICKY)
    assert result.returncode == 0, err(result)
    expected = f"n={len(TRICKY)}\n" + "".join(f"[{a}]\n" for a in TRICKY)
    assert out(result).startswith(expected)


def test_exec_string_is_split_like_a_shell(dispatch_env: Make, box: str) -> None:
    env = dispatch_env(bridge({"pr": {"container": box, "exec": "printf '%s|' 'two words' x"}}))
    result = env.run("pr", "y")
    assert (result.returncode, out(result)) == (0, "two words|x|y|"), err(result)


# -- 3. path mapping ---------------------------------------------------------------------------


def test_path_mapping_whole_components_and_option_values(dispatch_env: Make, box: str) -> None:
    env = dispatch_env(bridge({"args": echo_args(box, paths={"/workspace": "/srv/app"})}))
    result = env.run("args", "/workspace", "/workspace/src/a.php", "/workspace2/x",
                     "--config=/workspace/c.xml", "--x=/workspace2/y", "rel/workspace")
    assert result.returncode == 0, err(result)
    assert out(result).splitlines()[1:7] == [
        "[/srv/app]", "[/srv/app/src/a.php]", "[/workspace2/x]", "[--config=/srv/app/c.xml]",
        "[--x=/workspace2/y]", "[rel/workspace]"]


def test_working_directory_precedence(dispatch_env: Make, box: str, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    mapped = echo_args(box, paths={str(project): "/srv/app"}, workdir="/data")
    env = dispatch_env(bridge({"mapped": mapped, "plain": echo_args(box)}))
    # CWD under a mapping: translated.
    assert out(env.run("mapped", cwd=project / "src")).splitlines()[-1] == "/srv/app/src"
    # CWD outside every mapping: `workdir`.
    assert out(env.run("mapped", cwd="/tmp")).splitlines()[-1] == "/data"
    # No mapping, no workdir: the CWD unchanged (it exists in busybox).
    assert out(env.run("plain", cwd="/tmp")).splitlines()[-1] == "/tmp"
    # The CWD unchanged but absent in the container: one clear line, 125.
    missing = env.run("plain", cwd=project)
    assert missing.returncode == 125
    assert f"working directory {project} does not exist in container {box}" in err(missing)


# -- 4. streams --------------------------------------------------------------------------------


def test_stdin_eof_reaches_the_process(dispatch_env: Make, box: str) -> None:
    env = dispatch_env(bridge({"cat": {"container": box, "exec": "cat"},
                               "wc": {"container": box, "exec": ["wc", "-c"]}}))
    result = env.run("cat", input=b"x\n", timeout=20)
    assert (result.returncode, result.stdout) == (0, b"x\n")
    empty = env.run("wc", input=b"", timeout=20)
    assert (empty.returncode, empty.stdout.strip()) == (0, b"0")


def test_stdout_and_stderr_stay_separate(dispatch_env: Make, box: str) -> None:
    env = dispatch_env(bridge({"both": {"container": box, "exec": [
        "sh", "-c", "for i in 1 2 3; do echo out$i; echo err$i >&2; done"]}}))
    result = env.run("both")
    assert result.returncode == 0
    assert result.stdout == b"out1\nout2\nout3\n"
    assert result.stderr == b"err1\nerr2\nerr3\n"


# -- 6. exit codes -----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 2, 42, 126, 127, 128, 200, 255])
def test_remote_exit_code_exactly(dispatch_env: Make, box: str, code: int) -> None:
    env = dispatch_env(bridge({"ex": {"container": box, "exec": ["sh", "-c", 'exit "$1"', "sh"]}}))
    result = env.run("ex", str(code))
    assert result.returncode == code, err(result)
    assert result.stderr == b""


def test_remote_killed_by_signal_is_128_plus_n(dispatch_env: Make, box: str) -> None:
    env = dispatch_env(bridge({"die": {"container": box, "exec": ["sh", "-c", "kill -9 $$"]},
                               "term": {"container": box, "exec": ["sh", "-c", "kill $$"]}}))
    assert env.run("die").returncode == 137
    assert env.run("term").returncode == 143


def test_not_found_and_not_executable(dispatch_env: Make, box: str) -> None:
    env = dispatch_env(bridge({"nf": {"container": box, "exec": "no-such-program"},
                               "nx": {"container": box, "exec": "/etc/passwd"}}))
    missing = env.run("nf")
    assert missing.returncode == 127
    assert err(missing) == f"sidecar: nf: no-such-program: not found in container {box}\n"
    assert missing.stdout == b""
    denied = env.run("nx")
    assert denied.returncode == 126
    assert err(denied) == f"sidecar: nx: /etc/passwd: permission denied in container {box}\n"


def test_engine_errors_are_125_with_one_clear_line(dispatch_env: Make, box: str,
                                                   make_container: Any) -> None:
    stopped = make_container()
    stopped.stop(timeout=0)
    env = dispatch_env(bridge({
        "gone": {"container": "sidecar-test-no-such-container", "exec": "true"},
        "stopped": {"container": "svc", "exec": "true"},
        "ok": {"container": box, "exec": "true"},
        "baduser": {"container": box, "exec": "true", "user": "nosuchuser"},
    }, containers={"svc": stopped.name}))
    gone = env.run("gone")
    assert gone.returncode == 125
    assert "container sidecar-test-no-such-container does not exist" in err(gone)
    down = env.run("stopped")
    assert down.returncode == 125
    assert err(down) == (f"sidecar: stopped: container {stopped.name} is not running: "
                         "docker compose up -d svc\n")
    unreachable = env.run("ok", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert unreachable.returncode == 125
    assert "cannot reach the Docker engine at unix:///nonexistent/docker.sock" in err(unreachable)
    scheme = env.run("ok", env={"DOCKER_HOST": "ssh://me@host"})
    assert scheme.returncode == 125
    assert "DOCKER_HOST=ssh://me@host: unsupported scheme" in err(scheme)
    user = env.run("baduser")
    assert user.returncode == 125
    assert "unable to find user nosuchuser" in err(user)
    for result in (gone, down, unreachable, scheme, user):
        assert len(err(result).splitlines()) == 1
        assert "Traceback" not in err(result)


def test_missing_or_invalid_config_is_125(dispatch_env: Make, box: str) -> None:
    env = dispatch_env(bridge({"ok": {"container": box, "exec": "true"}}))
    missing = env.run("ok", env={"BRIDGE_CONFIG": str(env.root / "none.yaml")})
    assert missing.returncode == 125
    assert "cannot read bridge.yaml at" in err(missing)
    env.config.write_text('version: "1"\ncommands:\n  ok: {container: 1, exec: []}\n')
    invalid = env.run("ok")
    assert invalid.returncode == 125
    assert err(invalid).startswith("sidecar: ok: invalid bridge.yaml: ")
    assert len(err(invalid).splitlines()) == 1


# -- 7. signals and timeouts -------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_terminates_remote_process_tree(dispatch_env: Make, box: str,
                                               docker_client: Any, signum: int) -> None:
    marker = str(100000 + int.from_bytes(os.urandom(3), "big") % 800000)
    env = dispatch_env(bridge({"slow": {"container": box, "exec": [
        "sh", "-c", f"sleep {marker}1 & sleep {marker}2; wait"]}}))
    proc = env.popen("slow", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: f"sleep {marker}2" in remote_processes(docker_client, box), 10)
        assert f"sleep {marker}1" in remote_processes(docker_client, box)
        proc.send_signal(signum)
        assert proc.wait(timeout=10) == 128 + signum
        started = time.monotonic()
        assert wait_until(lambda: f"sleep {marker}" not in remote_processes(docker_client, box),
                          3), remote_processes(docker_client, box)
        assert time.monotonic() - started < 3
    finally:
        proc.kill()
        proc.communicate()


def test_closed_stdout_pipe_stops_the_remote_command(dispatch_env: Make, box: str,
                                                     docker_client: Any) -> None:
    marker = os.urandom(4).hex()
    env = dispatch_env(bridge({"spew": {"container": box, "exec": [
        "sh", "-c", f'while :; do echo {marker}; done']}}))
    proc = env.popen("spew", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert marker.encode() in proc.stdout.read(4096)
    proc.stdout.close()
    assert proc.wait(timeout=15) == 128 + signal.SIGPIPE
    assert wait_until(lambda: marker not in remote_processes(docker_client, box), 3)


def test_timeout_terminates_and_exits_124(dispatch_env: Make, box: str,
                                          docker_client: Any) -> None:
    marker = str(100000 + int.from_bytes(os.urandom(3), "big") % 800000)
    env = dispatch_env(bridge({"nap": {"container": box, "exec": ["sleep", marker],
                                       "timeout": 0.5}}))
    started = time.monotonic()
    result = env.run("nap", timeout=20)
    assert result.returncode == 124
    assert time.monotonic() - started < 5
    assert "timed out after 0.5 s" in err(result)
    assert wait_until(lambda: f"sleep {marker}" not in remote_processes(docker_client, box), 3)


# -- 8. user and environment -------------------------------------------------------------------


def test_user_and_environment_passthrough(dispatch_env: Make, box: str) -> None:
    env = dispatch_env(bridge({
        "whoami": {"container": box, "exec": ["id", "-u"], "user": "1000:1000"},
        "penv": {"container": box, "exec": "env", "env": ["APP_ENV", "UNSET_ONE"]},
    }))
    assert out(env.run("whoami")) == "1000\n"
    result = env.run("penv", env={"APP_ENV": "testing", "SECRET_TOKEN": "hunter2"})
    lines = out(result).splitlines()
    assert "APP_ENV=testing" in lines
    assert not any("hunter2" in line or line.startswith("UNSET_ONE") for line in lines)
    assert not any(line.startswith(("BRIDGE_CONFIG=", "DOCKER_HOST=")) for line in lines)


# -- 9. audit log ------------------------------------------------------------------------------


def test_audit_log_one_json_line_per_command(dispatch_env: Make, box: str,
                                             tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    env = dispatch_env(bridge({"args": echo_args(box, paths={"/workspace": "/srv/app"},
                                                 user="1000"),
                               "fail": {"container": box, "exec": ["sh", "-c", "exit 3"]}}))
    env.env["SIDECAR_AUDIT_LOG"] = str(log)
    env.run("args", "/workspace/a", cwd="/tmp")
    env.run("fail")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == 2
    first, second = records
    assert first["command"] == "args"
    assert first["argv"][-1] == "/srv/app/a"
    assert (first["container"], first["workdir"], first["user"]) == (box, "/tmp", "1000")
    assert (first["exit_code"], first["signal"]) == (0, None)
    assert isinstance(first["duration_ms"], int) and first["duration_ms"] >= 0
    assert first["time"].endswith("Z")
    assert (second["command"], second["exit_code"]) == ("fail", 3)


# -- config edits ------------------------------------------------------------------------------


def test_config_edits_take_effect_without_reinstall(dispatch_env: Make, box: str) -> None:
    env = dispatch_env(bridge({"say": {"container": box, "exec": ["echo", "one"]}}))
    assert out(env.run("say")) == "one\n"
    env.write(bridge({"say": {"container": box, "exec": ["echo", "two"]}}))
    assert out(env.run("say")) == "two\n"
    assert out(env.run("say")) == "two\n"  # from the recompiled cache


def test_gate_refusal_message() -> None:
    from sidecar_gen.runtime import diagnose, engine

    refused = engine.EngineError(403, "sidecar gate: POST /containers/x/exec is not allowed",
                                 "create an exec in container x")
    error = diagnose.engine_error(refused, "x", "php")
    assert error.exit_code == 125
    assert error.message == ("permission denied by the Docker API gate: sidecar gate: "
                             "POST /containers/x/exec is not allowed")
