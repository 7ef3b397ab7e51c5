"""Unit tests of the dispatcher's layers: JSON, framing, paths, transport, HTTP, Engine API
calls, the run plan, diagnoses, route cache."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar_gen.runtime import (
    cache,
    diagnose,
    engine,
    frames,
    httpclient,
    jsonlite,
    killer,
    names,
    pathmap,
    transport,
)
from sidecar_gen.runtime.contract import FIELDS, ROUTE_OPTIONS, Route, RouteTable
from sidecar_gen.runtime.errors import DispatchError
from sidecar_gen.runtime.plan import ExecPlan
from sidecar_gen.runtime.terminal import DETACH_BYTES, DETACH_KEYS

REPO = Path(__file__).resolve().parents[2]

# -- jsonlite ----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values)
def test_jsonlite_round_trips_like_json(value: object) -> None:
    encoded = jsonlite.dumps(value)
    assert json.loads(encoded) == value
    assert jsonlite.loads(encoded) == value
    assert jsonlite.loads(json.dumps(value, indent=1) + "\n") == value


def test_jsonlite_rejects_bad_input() -> None:
    for bad in ("", "{", '{"a": 1} x', "[1,]", "nope"):
        with pytest.raises(ValueError):
            jsonlite.loads(bad)
    with pytest.raises(ValueError):
        jsonlite.dumps(float("nan"))
    with pytest.raises(TypeError):
        jsonlite.dumps({1: "x"})
    with pytest.raises(TypeError):
        jsonlite.dumps(object())


def test_jsonlite_escapes_non_ascii_and_controls() -> None:
    text = jsonlite.dumps({"k": "é\n\"\x00"})
    assert text.isascii()
    assert json.loads(text) == {"k": "é\n\"\x00"}


# -- frames ------------------------------------------------------------------------------------


def _frames(items: list[tuple[int, bytes]]) -> bytes:
    return b"".join(frames.encode_header(s, len(p)) + p for s, p in items)


@given(
    st.lists(st.tuples(st.sampled_from([1, 2, 3]), st.binary(max_size=300)), max_size=8),
    st.integers(min_value=1, max_value=64),
)
def test_demuxer_reassembles_frames_split_anywhere(items: list[tuple[int, bytes]],
                                                   step: int) -> None:
    data = _frames(items)
    demux = frames.Demuxer()
    got: dict[int, bytearray] = {1: bytearray(), 2: bytearray(), 3: bytearray()}
    order: list[int] = []
    for pos in range(0, len(data), step):
        for stream, piece in demux.feed(data[pos : pos + step]):
            got[stream] += piece
            if not order or order[-1] != stream:
                order.append(stream)
    for stream in (1, 2, 3):
        assert bytes(got[stream]) == b"".join(p for s, p in items if s == stream)
    assert not demux.in_frame


def test_demuxer_reports_truncated_stream() -> None:
    demux = frames.Demuxer()
    assert demux.feed(frames.encode_header(1, 10) + b"abc") == [(1, memoryview(b"abc"))]
    assert demux.in_frame


# -- paths -------------------------------------------------------------------------------------

MAP = (("/workspace/vendor", "/opt/vendor"), ("/workspace", "/var/www/html"))


@pytest.mark.parametrize(("arg", "expected"), [
    ("/workspace", "/var/www/html"),
    ("/workspace/", "/var/www/html/"),
    ("/workspace/src/a.php", "/var/www/html/src/a.php"),
    ("/workspace/vendor/x", "/opt/vendor/x"),
    ("/workspace2/x", "/workspace2/x"),
    ("/workspacex", "/workspacex"),
    ("/other/workspace", "/other/workspace"),
    ("workspace/a", "workspace/a"),
    ("--config=/workspace/c.xml", "--config=/var/www/html/c.xml"),
    ("-c=/workspace/c.xml", "-c=/var/www/html/c.xml"),
    ("--config=/workspace2/c.xml", "--config=/workspace2/c.xml"),
    ("--opt=relative", "--opt=relative"),
    ("x=/workspace", "x=/workspace"),
    ("", ""),
])
def test_map_arg(arg: str, expected: str) -> None:
    assert pathmap.map_arg(arg, MAP) == expected


def test_map_root_mappings() -> None:
    assert pathmap.map_path("/a/b", (("/", "/srv"),)) == "/srv/a/b"
    assert pathmap.map_path("/", (("/", "/srv"),)) == "/srv"
    assert pathmap.map_path("/app/x", (("/app", "/"),)) == "/x"
    assert pathmap.map_path("/app", (("/app", "/"),)) == "/"


def test_pick_workdir_precedence() -> None:
    assert pathmap.pick_workdir("/workspace/src", MAP, "/w") == "/var/www/html/src"
    assert pathmap.pick_workdir("/elsewhere", MAP, "/w") == "/w"
    assert pathmap.pick_workdir("/elsewhere", MAP, None) == "/elsewhere"
    assert pathmap.pick_workdir("/workspace2", MAP, None) == "/workspace2"


# -- transport ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (None, ("unix", "/var/run/docker.sock", 0)),
    ("", ("unix", "/var/run/docker.sock", 0)),
    ("unix:///run/x.sock", ("unix", "/run/x.sock", 0)),
    ("tcp://127.0.0.1:2375", ("tcp", "127.0.0.1", 2375)),
    ("tcp://gate:2375/", ("tcp", "gate", 2375)),
    ("tcp://[::1]:2375", ("tcp", "::1", 2375)),
    ("tcp://gate", ("tcp", "gate", 2375)),
])
def test_parse_host(value: str | None, expected: tuple[str, str, int]) -> None:
    assert transport.parse_host(value) == expected


@pytest.mark.parametrize("value", ["ssh://user@host", "npipe:////./pipe/docker", "unix://rel",
                                   "tcp://host:notaport", "tcp://:2375", "http://x:1"])
def test_parse_host_rejects(value: str) -> None:
    with pytest.raises(DispatchError) as info:
        transport.parse_host(value)
    assert info.value.exit_code == 125
    assert value in info.value.message


def test_connect_failure_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(DispatchError) as info:
        transport.connect(("unix", str(tmp_path / "none.sock"), 0))
    assert "cannot reach the Docker engine at unix://" in info.value.message
    assert info.value.exit_code == 125


# -- HTTP client -------------------------------------------------------------------------------


def _serve(answer: bytes) -> tuple[httpclient.Connection, threading.Thread, list[bytes]]:
    """A socketpair whose far end reads one request head and writes `answer` verbatim."""
    ours, theirs = socket.socketpair()
    seen: list[bytes] = []

    def server() -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += theirs.recv(65536)
        seen.append(data)
        theirs.sendall(answer)
        theirs.close()

    thread = threading.Thread(target=server)
    thread.start()
    import _socket

    raw = _socket.socket(fileno=ours.detach())
    return httpclient.Connection(raw), thread, seen


def test_http_content_length_and_keepalive_framing() -> None:
    conn, thread, seen = _serve(
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
        b'{"Id":"ab"}EXTRA')
    response = conn.request("POST", "/containers/x/exec", {"Cmd": ["a b"]})
    thread.join()
    assert response.status == 201
    assert response.json() == {"Id": "ab"}
    assert bytes(conn.buf) == b"EXTRA"  # the next response's bytes stay buffered
    head = seen[0].decode()
    assert head.startswith("POST /v1.41/containers/x/exec HTTP/1.1\r\n")
    assert "Content-Type: application/json" in head


def test_http_chunked_body() -> None:
    conn, thread, _ = _serve(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\n[1,2\r\n3;ext=1\r\n,3]\r\n0\r\nX-Trailer: 1\r\n\r\n")
    response = conn.request("GET", "/containers/json")
    thread.join()
    assert response.json() == [1, 2, 3]


def test_http_close_delimited_body_and_error_message() -> None:
    conn, thread, _ = _serve(
        b'HTTP/1.1 403 Forbidden\r\n\r\n{"message": "sidecar gate: POST /x is not allowed"}')
    response = conn.request("POST", "/x")
    thread.join()
    assert response.status == 403
    assert response.message() == "sidecar gate: POST /x is not allowed"


def test_http_upgrade_keeps_stream_bytes() -> None:
    conn, thread, seen = _serve(
        b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        + frames.encode_header(1, 2) + b"hi")
    response = conn.upgrade("/exec/abc/start", {"Detach": False, "Tty": False})
    thread.join()
    assert response.status == 101
    assert bytes(conn.buf) == frames.encode_header(1, 2) + b"hi"
    assert b"Upgrade: tcp" in seen[0] and b"Connection: Upgrade" in seen[0]


@pytest.mark.parametrize("answer", [b"", b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Le"])
def test_http_protocol_errors_are_dispatch_errors(answer: bytes) -> None:
    conn, thread, _ = _serve(answer)
    with pytest.raises(httpclient.ProtocolError) as info:
        conn.request("GET", "/_ping")
    thread.join()
    assert info.value.exit_code == 125


def test_quote_is_percent_encoding() -> None:
    expected = "%7B%22label%22%3A%5B%22a%3Db%20c%2F%C3%A9%22%5D%7D"
    assert httpclient.quote('{"label":["a=b c/é"]}') == expected


# -- Engine API calls --------------------------------------------------------------------------


def _answer(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def test_engine_create_exec_returns_the_id_and_sends_the_config() -> None:
    conn, thread, seen = _serve(_answer("201 Created", b'{"Id":"abc123"}'))
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
    conn, thread, _ = _serve(_answer(status, body))
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
    conn, thread, _ = _serve(_answer(status, body))
    with pytest.raises(httpclient.ProtocolError) as info:
        call(conn)
    thread.join()
    assert info.value.exit_code == 125


def test_engine_inspect_exec_reads_state() -> None:
    conn, thread, _ = _serve(_answer("200 OK", b'{"Running":true,"ExitCode":null,"Pid":77}'))
    state = engine.inspect_exec(conn, "abc")
    thread.join()
    assert (state.running, state.exit_code, state.pid) == (True, None, 77)
    conn, thread, _ = _serve(_answer("200 OK", b'{"Running":false,"ExitCode":126}'))
    state = engine.inspect_exec(conn, "abc")
    thread.join()
    assert (state.running, state.exit_code, state.pid) == (False, 126, 0)


def test_engine_list_containers_sends_the_filters() -> None:
    conn, thread, seen = _serve(_answer("200 OK", b'[{"Id":"a"}, "junk"]'))
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


# -- the run plan ------------------------------------------------------------------------------

ROUTE = Route("app", ("php",), paths=(("/workspace", "/srv"),), user="${PUID}:${PGID}",
              env=("APP_ENV",), tty="always", stdin="never", timeout=5.0)


def _plan(route: Route = ROUTE, environ: dict[str, str] | None = None) -> ExecPlan:
    return ExecPlan.build("php", ["/workspace/a.php"], route, ref="cid", container="shop-app-1",
                      user="1000:1000" if route.user else None,
                      endpoint=("unix", "/x.sock", 0), environ=environ or {"APP_ENV": "t"},
                      cwd="/workspace/src")


def test_plan_exec_config() -> None:
    plan = _plan()
    config = plan.exec_config()
    token = plan.token
    assert config == {
        "AttachStdin": False, "AttachStdout": True, "AttachStderr": True, "Tty": True,
        "Env": ["APP_ENV=t", "HOME=/tmp", f"SIDECAR_EXEC_TOKEN={token}"],
        "Cmd": ["php", "/srv/a.php"], "WorkingDir": "/srv/src", "DetachKeys": DETACH_KEYS,
        "User": "1000:1000"}
    assert len(token) == names.EXEC_TOKEN_HEX_DIGITS and int(token, 16) >= 0
    # No terminal: no detach keys (they only exist on a TTY); no user: no home is made up.
    plain = _plan(Route("app", ("php",), tty="never", stdin="always"))
    config = plain.exec_config()
    assert "DetachKeys" not in config and "User" not in config
    assert config["Env"] == [f"SIDECAR_EXEC_TOKEN={plain.token}"]
    assert (config["Tty"], config["AttachStdin"]) == (False, True)


def test_plan_is_read_only() -> None:
    plan = _plan()
    with pytest.raises(AttributeError):
        plan.user = "0"  # type: ignore[misc]


def test_detach_keys_are_ones_docker_accepts_and_nobody_types() -> None:
    keys = DETACH_KEYS.split(",")
    assert len(keys) >= 6
    assert "ctrl-p" not in keys and "ctrl-q" not in keys
    # Docker's names: ctrl-@ is NUL, ctrl-X is X's code - 0x40 (the daemon's term.ToBytes).
    assert bytes(ord(k[-1]) - 0x40 for k in keys) == DETACH_BYTES


@pytest.mark.parametrize(("source", "mode", "expected"), [
    ("devnull", "auto", False), ("closed", "auto", False), ("pipe", "auto", True),
    ("devnull", "always", True), ("pipe", "never", False), ("file", "auto", True),
])
def test_stdin_wanted(source: str, mode: str, expected: bool, tmp_path: Path) -> None:
    script = (f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
              "from sidecar_gen.runtime.plan import stdin_wanted\n"
              f"print(stdin_wanted({mode!r}))\n")
    data = tmp_path / "in.txt"
    data.write_text("x")
    stdin: Any = {"devnull": subprocess.DEVNULL, "pipe": None, "closed": None,
                  "file": data.open("rb")}[source]
    argv = [sys.executable, "-I", "-S", "-c", script]
    if source == "closed":
        argv = ["sh", "-c", '"$@" <&-', "sh", *argv]
    result = subprocess.run(argv, stdin=stdin, stdout=subprocess.PIPE, text=True, check=True,
                            input="" if source == "pipe" else None)
    assert result.stdout.strip() == str(expected)


def test_home_for_uids_without_an_account() -> None:
    from sidecar_gen.runtime.userspec import home_for

    assert home_for("1000:1000") == "/tmp"
    assert home_for("4242") == "/tmp"
    assert home_for("www-data") is None  # a named user has an account, and its home
    assert home_for("www-data:1000") is None
    assert home_for("0:0") is None  # root's home always exists
    assert home_for(None) is None
    assert home_for("1000:1000", ("HOME",)) is None  # bridge.yaml passes HOME through


# -- diagnoses ---------------------------------------------------------------------------------

OCI = "OCI runtime exec failed: exec failed: unable to start container process: "


@pytest.mark.parametrize(("text", "message", "code"), [
    (OCI + 'exec: "nope": executable file not found in $PATH: unknown',
     "nope: not found in container c", 127),
    (OCI + 'exec: "/etc/passwd": permission denied: unknown',
     "/etc/passwd: permission denied in container c", 126),
    (OCI + 'chdir to cwd ("/x") set in config.json failed: no such file or directory: unknown',
     "working directory /x does not exist in container c (fix `workdir`/`paths` in bridge.yaml)",
     125),
    ("unable to find user bob: no matching entries in passwd file",
     "unable to find user bob: no matching entries in passwd file in container c"
     " (fix `user` in bridge.yaml)", 125),
    ("", "cannot execute in container c (exit code 127)", 127),
    ("something new", "cannot execute in container c: something new", 126),
])
def test_start_failures(text: str, message: str, code: int) -> None:
    error = diagnose.start_failure(text, "c", 127 if not text else 126)
    assert (error.message, error.exit_code) == (message, code)


def test_attach_failure_is_only_the_last_line() -> None:
    line = b"exec attach failed: error on attach stdin: read escape sequence\r\n"
    assert diagnose.attach_failure(line) == line.decode().strip()
    assert diagnose.attach_failure(b"output\r\n" + line) == line.decode().strip()
    assert diagnose.attach_failure(line + b"more\r\n") is None
    assert diagnose.attach_failure(line.rstrip()) is None
    assert diagnose.attach_failure(b"plain output\n") is None


@pytest.mark.parametrize(("status", "message", "expected"), [
    (403, "sidecar gate: no", "permission denied by the Docker API gate: sidecar gate: no"),
    (404, "No such container: c", "container c does not exist: start it with `docker compose"
     " up -d svc` or fix `container` in bridge.yaml (No such container: c)"),
    (409, "Container c is paused, unpause the container", "container c is paused: docker"
     " compose unpause svc"),
    (409, "Container c is not running", "container c is not running: docker compose up -d svc"),
    (500, "boom", "Docker engine error for container c: boom (HTTP 500)"),
])
def test_engine_error_messages(status: int, message: str, expected: str) -> None:
    error = diagnose.engine_error(engine.EngineError(status, message, "x"), "c", "svc")
    assert (error.message, error.exit_code) == (expected, 125)


# -- the contract ------------------------------------------------------------------------------


def test_schema_command_properties_are_the_route_fields() -> None:
    schema = json.loads((REPO / "schemas" / "bridge.schema.json").read_text())
    properties = set(schema["$defs"]["command"]["properties"])
    assert properties - {"exec"} == set(FIELDS) - {"argv"}
    for name in ("tty", "stdin"):
        spec = schema["$defs"]["command"]["properties"][name]
        assert spec["title"] and spec["description"]
        assert spec["enum"] == ["auto", "always", "never"]


def test_a_route_option_is_declared_once_and_the_schema_agrees() -> None:
    command = json.loads((REPO / "schemas" / "bridge.schema.json").read_text())[
        "$defs"]["command"]
    assert list(command["properties"]) == list(ROUTE_OPTIONS)
    assert set(FIELDS) == {field for field, _parse, _show in ROUTE_OPTIONS.values()}
    defaults = Route.__init__.__kwdefaults__ or {}
    keywords = set(Route.__init__.__code__.co_varnames[1:Route.__init__.__code__.co_argcount])
    assert keywords | set(defaults) == set(FIELDS)
    for key, (field, _parse, _show) in ROUTE_OPTIONS.items():
        if "default" in command["properties"][key]:
            assert command["properties"][key]["default"] == defaults[field], key
        assert (key in command["required"]) == (field not in defaults), key


def test_a_route_reads_back_from_what_init_writes() -> None:
    spec = {"container": "app", "exec": "php -d 'x=a b'", "workdir": "/srv",
            "paths": {"/workspace/": "/srv//app"}, "user": "${PUID}:${PGID}", "env": ["A"],
            "tty": "never", "stdin": "never", "timeout": 5}
    route = Route.from_spec(spec)
    assert route == Route("app", ("php", "-d", "x=a b"), workdir="/srv",
                          paths=(("/workspace", "/srv/app"),), user="${PUID}:${PGID}",
                          env=("A",), tty="never", stdin="never", timeout=5.0)
    assert Route.from_spec(route.to_spec()) == route
    assert Route("app", ("php",)).to_spec() == {"container": "app", "exec": "php"}


# -- route cache -------------------------------------------------------------------------------


def test_find_config_lookup_order(tmp_path: Path) -> None:
    cwd = str(tmp_path)
    assert cache.find_config({}, cwd) == f"{cwd}/.sidecar/bridge.yaml"
    assert cache.find_config({"SIDECAR_CONFIG_DIR": "/cfg"}, cwd) == "/cfg/bridge.yaml"
    assert cache.find_config({"SIDECAR_CONFIG_DIR": "/cfg", "BRIDGE_CONFIG": "/b.yaml"},
                             cwd) == "/b.yaml"
    assert cache.find_config({"BRIDGE_CONFIG": "rel.yaml"}, cwd) == f"{cwd}/rel.yaml"


def test_cache_store_load_and_staleness(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "c")}
    php = Route("php", ("php", "-d", "x=1"), workdir="/app", paths=(("/workspace", "/app"),),
                user="${PUID}:${PGID}", env=("APP_ENV",), tty="never", stdin="never",
                timeout=2.5)
    table = RouteTable("/p/bridge.yaml", (1, 2, 3), {"php": php}, {"db": "x-db-1"},
                       default="php", project="shop")
    written = cache.store(table, env)
    assert written is not None and written.startswith(str(tmp_path / "c" / "claude-sidecar"))
    loaded = cache.load("/p/bridge.yaml", (1, 2, 3), env)
    assert loaded is not None
    assert loaded.to_record() == table.to_record()
    assert loaded.route_for("php") == php
    assert loaded.route_for("other") == Route("php", ("other",))  # through default_container
    assert cache.load("/p/bridge.yaml", (1, 2, 4), env) is None  # edited
    assert cache.load("/q/bridge.yaml", (1, 2, 3), env) is None  # another config
    Path(written).write_bytes(b"\x00garbage")
    assert cache.load("/p/bridge.yaml", (1, 2, 3), env) is None


def test_cache_unwritable_location_is_not_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    env = {"XDG_CACHE_HOME": str(blocker)}  # a file: no directory can be made under it
    assert cache.store(RouteTable("/p", (1, 2, 3), {}, {}), env) is None
    assert cache.load("/p", (1, 2, 3), env) is None


# -- killer ------------------------------------------------------------------------------------


def test_kill_command_shape() -> None:
    token = "0123456789abcdef0123456789abcdef"
    assert killer.kill_command(token) == ["sh", "-c", killer.KILL_SCRIPT, "sh", token]
    assert len(token) == names.EXEC_TOKEN_HEX_DIGITS


def test_kill_script_refuses_a_non_hex_token(tmp_path: Path) -> None:
    for token in ("", "abc;reboot", "ABC", "*"):
        result = subprocess.run(["sh", "-c", killer.KILL_SCRIPT, "sh", token])
        assert result.returncode == 2


# -- hot path imports --------------------------------------------------------------------------

FORBIDDEN = {"json", "re", "http", "email", "subprocess", "socket", "logging", "typing",
             "collections", "enum", "urllib", "shlex", "signal", "sidecar_gen.errors"}


def test_hot_path_imports_only_stdlib_and_nothing_heavy() -> None:
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "import sidecar_gen.runtime.dispatch, sidecar_gen.runtime.cache\n"
        "import sidecar_gen.runtime.httpclient, sidecar_gen.runtime.frames\n"
        "import sidecar_gen.runtime.pathmap, sidecar_gen.runtime.contract\n"
        "import sidecar_gen.runtime.transport, sidecar_gen.runtime.jsonlite\n"
        "import sidecar_gen.runtime.killer, sidecar_gen.runtime.userspec\n"
        "import sidecar_gen.runtime.engine, sidecar_gen.runtime.terminal\n"
        "import sidecar_gen.runtime.plan, sidecar_gen.runtime.diagnose\n"
        "import sidecar_gen.runtime.native, sidecar_gen.runtime.audit\n"
        "for name, mod in sorted(sys.modules.items()):\n"
        "    print(name, getattr(mod, '__file__', None) or 'builtin')\n"
    )
    out = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True,
                         text=True, check=True).stdout
    modules = dict(line.split(" ", 1) for line in out.splitlines())
    top = {name.split(".")[0] for name in modules}
    assert not (FORBIDDEN & (top | set(modules))), sorted(FORBIDDEN & (top | set(modules)))
    stdlib = os.path.dirname(os.__file__)
    for name, where in modules.items():
        if name.startswith("sidecar_gen"):
            assert name in ("sidecar_gen", "sidecar_gen.runtime") or name.startswith(
                "sidecar_gen.runtime."), name
            continue
        assert where in ("builtin", "frozen", "None") or where.startswith(
            (stdlib, sys.base_prefix)), (name, where)


def test_tcp_connect_by_name_imports_nothing_heavy() -> None:
    """Resolving `tcp://localhost:PORT` must not pull the idna codec (re, unicodedata)."""
    script = (
        "import sys, _socket\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from sidecar_gen.runtime import transport\n"
        "srv = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)\n"
        "srv.bind(('127.0.0.1', 0)); srv.listen(1)\n"
        "port = srv.getsockname()[1]\n"
        "sock = transport.connect(transport.parse_host(f'tcp://localhost:{port}'), 5)\n"
        "sock.close(); srv.close()\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True,
                         text=True, check=True).stdout.split()
    heavy = {"re", "unicodedata", "encodings.idna", "stringprep", "enum"} & set(out)
    assert not heavy, sorted(heavy)


def test_user_placeholders() -> None:
    from sidecar_gen.runtime.userspec import expand_user

    env = {"PUID": "1234", "PGID": "99"}
    assert expand_user("${PUID}:${PGID}", env) == "1234:99"
    assert expand_user("${PUID}", env) == "1234"
    assert expand_user("www-data:${PGID}", env) == "www-data:99"
    assert expand_user("1000:1000", {}) == "1000:1000"
    # The dispatcher falls back to its own ids (the claude user is PUID:PGID after the remap).
    assert expand_user("${PUID}:${PGID}", {}) == f"{os.getuid()}:{os.getgid()}"
    # The gate does not: a placeholder it cannot fill allows nothing.
    assert expand_user("${PUID}:${PGID}", {}, own_ids=False) is None
    assert expand_user("${PUID}", {"PUID": "root"}) is None
