"""The dispatcher's verdict from answers recorded from both engines (Docker and Podman).

`data/exec_answers.json` holds, per engine and case, the exec stream and the exec inspect answer
after it ended, as the engines sent them. Each is replayed through the real output pump (on a
socket pair) and `verdict`: both engines must give the same exit code, output and message.
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from sidecar_gen.runtime import dispatch, engine, terminal
from sidecar_gen.runtime.contract import Route
from sidecar_gen.runtime.errors import DispatchError
from sidecar_gen.runtime.frames import encode_header
from sidecar_gen.runtime.plan import ExecPlan
from sidecar_gen.runtime.transport import parse_host

ANSWERS = json.loads((Path(__file__).parent / "data" / "exec_answers.json").read_text())
ENGINES = ("docker", "podman")
# What the user sees, whichever engine: (exit code, stdout, stderr) or (code, our one line).
RAN = {"exit7": (7, b"hi\n", b""), "exit0": (0, b"", b""),
       "sh127": (127, b"", b"sh: nonexist: not found\n")}
REFUSED = {
    "notfound": (127, "nonexist: not found in container box"),
    "notexec": (126, "/etc/passwd: permission denied in container box"),
    "workdir": (125, "working directory /nonexist does not exist in container box (fix"
                " `workdir`/`paths` in bridge.yaml)"),
    "user": (125, "unable to find user nosuchuser: no matching entries in passwd file in"
             " container box (fix `user` in bridge.yaml)"),
    "group": (125, "unable to find group nosuchgroup: no matching entries in group file in"
              " container box (fix `user` in bridge.yaml)"),
}


def _stream(recorded: Any, tty: bool) -> bytes:
    if isinstance(recorded, str):  # a TTY's one stream, or Podman's unframed JSON error
        return recorded.encode()
    assert not tty
    return b"".join(encode_header(stream, len(text.encode())) + text.encode()
                    for stream, text in recorded)


def _replay(engine_name: str, mode: str, case: str) -> tuple[int | DispatchError, str]:
    """Run the recorded answer through the pump and the verdict; returns (code or error,
    the recorded server header) with the output left in the captured fds."""
    record = ANSWERS[engine_name]
    answer = record[mode][case]
    tty = mode == "tty"
    inspect = answer["inspect"]
    state = engine.ExecState(inspect["Running"], inspect["ExitCode"], inspect["Pid"],
                             pid_kept=not record["server"].startswith("Libpod/"))
    ours, theirs = socket.socketpair()
    data = _stream(answer["frames"], tty)
    sender = threading.Thread(target=lambda: (theirs.sendall(data), theirs.close()))
    sender.start()
    try:
        output = terminal.pump_output(ours, b"", tty, lambda: state.running or state.pid != 0)
    finally:
        sender.join()
        ours.close()
    plan = ExecPlan(name="cmd", route=Route("app", ("cmd",)), argv=("cmd",), container="box",
                    ref="box", user=None, workdir="/", env=(), token="0" * 32, tty=tty,
                    stdin=False, endpoint=parse_host(None))
    try:
        return dispatch.verdict(plan, state, output), record["server"]
    except DispatchError as exc:
        return exc, record["server"]


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("case", sorted(RAN))
def test_a_program_that_ran_gets_its_exit_code_and_output(
        engine_name: str, case: str, capfd: pytest.CaptureFixture[bytes]) -> None:
    result, _ = _replay(engine_name, "frames", case)
    out, err = capfd.readouterr()
    assert (result, out.encode(), err.encode()) == RAN[case]


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("case", sorted(RAN))
def test_with_a_tty_too(engine_name: str, case: str, capfd: pytest.CaptureFixture[bytes]) -> None:
    result, _ = _replay(engine_name, "tty", case)
    out, err = capfd.readouterr()
    code, stdout, stderr = RAN[case]
    assert (result, out.encode(), err) == (code, (stdout + stderr).replace(b"\n", b"\r\n"), "")


@pytest.mark.parametrize("mode", ["frames", "tty"])
@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_start_failure_is_one_line_and_the_documented_code(
        engine_name: str, case: str, mode: str, capfd: pytest.CaptureFixture[bytes]) -> None:
    result, _ = _replay(engine_name, mode, case)
    out, err = capfd.readouterr()
    assert isinstance(result, DispatchError)
    assert (result.exit_code, result.message) == REFUSED[case]
    assert (out, err) == ("", "")  # the engine's own lines are held back, not shown raw


def test_the_recordings_are_of_both_engines_and_differ_where_the_issue_says() -> None:
    """The premise: Podman reports pid 0 for every ended exec, Docker only for one that never
    started; the start failures' codes also differ."""
    docker, podman = ANSWERS["docker"]["frames"], ANSWERS["podman"]["frames"]
    assert docker["exit7"]["inspect"]["Pid"] != 0
    assert podman["exit7"]["inspect"]["Pid"] == 0
    assert docker["notfound"]["inspect"]["ExitCode"] == 126
    assert podman["notfound"]["inspect"]["ExitCode"] == 127


def test_podman_is_told_by_its_server_header() -> None:
    def response(server: str) -> Any:
        from sidecar_gen.runtime.httpclient import Response
        return Response(200, "OK", {"server": server}, b"{}")

    assert engine.is_podman(response("Libpod/4.3.1 (linux)"))
    assert not engine.is_podman(response("Docker/20.10.24+dfsg1 (linux)"))
    assert not engine.is_podman(response(""))
