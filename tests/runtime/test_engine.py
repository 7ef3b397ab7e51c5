"""`runtime/engine`: one function per Engine API endpoint, on a real socket pair."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from runtime.helpers import answer, serve
from sidecar_gen.runtime import (
    engine,
    httpclient,
)


def test_engine_create_exec_returns_the_id_and_sends_the_config() -> None:
    conn, thread, seen = serve(answer("201 Created", b'{"Id":"abc123"}'))
    assert engine.create_exec(conn, "my app", {"Cmd": ["true"]}) == "abc123"
    thread.join()
    assert seen[0].startswith(b"POST /v1.41/containers/my%20app/exec HTTP/1.1\r\n")


@pytest.mark.parametrize(("status", "body"), [
    ("404 Not Found", b'{"message":"No such container: x"}'),
    ("409 Conflict", b'{"message":"Container x is not running"}'),
    ("403 Forbidden", b'{"message":"sidecar gate: not allowed"}'),
    ("500 Internal Server Error", b"boom"),
])
def test_engine_error_statuses_carry_status_and_message(status: str, body: bytes) -> None:
    conn, thread, _ = serve(answer(status, body))
    with pytest.raises(engine.EngineError) as info:
        engine.create_exec(conn, "x", {"Cmd": ["true"]})
    thread.join()
    code = int(status.split(maxsplit=1)[0])
    assert (info.value.status, info.value.exit_code) == (code, 125)
    assert info.value.explanation == (body.decode() if code == 500 else
                                      json.loads(body)["message"])


@pytest.mark.parametrize(("call", "body"), [
    (lambda conn: engine.create_exec(conn, "x", {}), b'{"Id": 5}'),
    (lambda conn: engine.create_exec(conn, "x", {}), b'{"Id": "../x"}'),
    (lambda conn: engine.create_exec(conn, "x", {}), b"not json"),
    (lambda conn: engine.list_containers(conn, {}), b'{"not": "a list"}'),
    (lambda conn: engine.inspect_exec(conn, "abc"), b"[]"),
])
def test_engine_answers_of_the_wrong_shape_are_protocol_errors(call: Any, body: bytes) -> None:
    status = "201 Created" if b"Id" in body or body == b"not json" else "200 OK"
    conn, thread, _ = serve(answer(status, body))
    with pytest.raises(httpclient.ProtocolError) as info:
        call(conn)
    thread.join()
    assert info.value.exit_code == 125


def test_engine_inspect_exec_reads_state() -> None:
    conn, thread, _ = serve(answer("200 OK", b'{"Running":true,"ExitCode":null,"Pid":77}'))
    state = engine.inspect_exec(conn, "abc")
    thread.join()
    assert (state.running, state.exit_code, state.pid) == (True, None, 77)
    conn, thread, _ = serve(answer("200 OK", b'{"Running":false,"ExitCode":126}'))
    state = engine.inspect_exec(conn, "abc")
    thread.join()
    assert (state.running, state.exit_code, state.pid) == (False, 126, 0)


def test_engine_list_containers_sends_the_filters() -> None:
    conn, thread, seen = serve(answer("200 OK", b'[{"Id":"a"}, "junk"]'))
    assert engine.list_containers(conn, {"label": ["a=b"]}) == [{"Id": "a"}]
    thread.join()
    expected = "/v1.41/containers/json?all=1&filters=" + httpclient.quote('{"label":["a=b"]}')
    assert seen[0].startswith(f"GET {expected} HTTP/1.1".encode())


def test_engine_lost_connection_is_a_protocol_error() -> None:
    ours, theirs = socket.socketpair()
    theirs.close()
    import _socket

    conn = httpclient.Connection(_socket.socket(fileno=ours.detach()))
    with pytest.raises(httpclient.ProtocolError):
        engine.inspect_exec(conn, "abc")
