"""More hostile requests, each proven refused by its effect on the engine (see test_corpus).

The cases test_corpus lacks: request-target spellings (authority and asterisk form, version
prefixes at and past the edges, case, `;`, `%00`), framing the parsers may disagree on (chunk
extensions, odd Content-Length spellings, whitespace before the colon, HTTP/1.0 keep-alive,
pipelining a hostile request behind an allowed one), exec bodies that smuggle a second meaning
(repeated or escaped keys, a BOM, comments, huge numbers, users and variables that are not
configured), other people's execs (their start, inspect and resize: the inspect would leak their
command line), and endpoints the first corpus does not name.
"""

# ruff: noqa: F811  (the module fixtures `env` and `baseline` are imported from test_corpus)
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from images import BUSYBOX_IMAGE

from gate.helpers import connect, read_reply, request
from gate.test_corpus import (  # noqa: F401
    EXEC_OK,
    TOK,
    Env,
    _assert_refused,
    _fill,
    _post,
    assert_raw_refused,
    baseline,
    env,
    snapshot,
)

pytestmark = pytest.mark.docker

EXEC = "/v1.41/containers/{tgt}/exec"


def _exec(**extra: Any) -> dict[str, Any]:
    return {**EXEC_OK, **extra}


# (id, method, target, body): well-formed requests the gate must answer 403.
REQUESTS: list[tuple[str, str, str, Any]] = [
    # Request-target spellings.
    ("no-version-double-slash", "POST", "//containers/{foreign}/kill", None),
    ("version-too-old", "POST", "/v1.23/containers/{tgt}/exec", EXEC_OK),
    ("version-major-two", "POST", "/v2.0/containers/{tgt}/exec", EXEC_OK),
    ("version-three-digits", "POST", "/v1.100/containers/{tgt}/exec", EXEC_OK),
    ("version-only", "GET", "/v1.41", None),
    ("version-trailing-slash", "GET", "/v1.41/", None),
    ("uppercase-segment", "POST", "/v1.41/CONTAINERS/{foreign}/kill", None),
    ("uppercase-exec", "POST", "/v1.41/containers/{tgt}/EXEC", EXEC_OK),
    ("semicolon-param-on-exec", "POST", "/v1.41/containers/{tgt}/exec;x=1", EXEC_OK),
    ("semicolon-param-on-ref", "POST", "/v1.41/containers/{foreign};{tgt}/exec", EXEC_OK),
    ("percent-nul", "POST", "/v1.41/containers/{tgt}%00/exec", EXEC_OK),
    ("percent-encoded-name", "POST", "/v1.41/containers/%63orpus-foreign-__TOK__/exec", EXEC_OK),
    ("dotdot-after-target", "POST", "/v1.41/containers/{tgt}/../{foreign}/exec", EXEC_OK),
    ("trailing-slash-inspect", "GET", "/v1.41/containers/{foreign}/json/", None),
    ("trailing-dot-segment", "POST", "/v1.41/containers/{tgt}/exec/.", EXEC_OK),
    ("fragment", "POST", "/v1.41/containers/{tgt}/exec#x", EXEC_OK),
    ("list-duplicate-query-key", "GET", "/v1.41/containers/json?all=0&all=1", None),
    ("list-unknown-query-key", "GET", "/v1.41/containers/json?all=1&x=1", None),
    ("ping-with-query", "GET", "/_ping?x=1", None),
    ("exec-json-short-id", "GET", "/v1.41/exec/{exec.short}/json", None),
    ("exec-json-uppercase-id", "GET", "/v1.41/exec/{exec.upper}/json", None),
    # Methods that are not the endpoint's.
    ("head-inspect", "HEAD", "/v1.41/containers/{tgt}/json", None),
    ("options-ping", "OPTIONS", "/_ping", None),
    ("trace-ping", "TRACE", "/_ping", None),
    ("patch-exec", "PATCH", EXEC, EXEC_OK),
    ("delete-container-by-exec-path", "DELETE", "/v1.41/containers/{tgt}", None),
    # Exec-create bodies.
    ("exec-user-app-group-root", "POST", EXEC, _exec(User="app:0")),
    ("exec-user-app-group-root-name", "POST", EXEC, _exec(User="app:root")),
    ("exec-user-case", "POST", EXEC, _exec(User="APP")),
    ("exec-user-space", "POST", EXEC, _exec(User=" app")),
    ("exec-user-number-type", "POST", EXEC, _exec(User=0)),
    ("exec-env-ld-preload", "POST", EXEC, _exec(Env=["LD_PRELOAD=/tmp/x.so"])),
    ("exec-env-path", "POST", EXEC, _exec(Env=["FOO=1", "PATH=/tmp"])),
    ("exec-env-bash-env", "POST", EXEC, _exec(Env=["BASH_ENV=/tmp/x"])),
    ("exec-env-name-with-space", "POST", EXEC, _exec(Env=["FOO =1"])),
    ("exec-env-lowercase-of-configured", "POST", EXEC, _exec(Env=["foo=1"])),
    ("exec-env-not-a-list", "POST", EXEC, _exec(Env="FOO=1")),
    ("exec-privileged-null-then-set", "POST", EXEC, _exec(Privileged=None, privileged=True)),
    ("exec-tty-string", "POST", EXEC, _exec(Tty="true")),
    ("exec-console-size-negative", "POST", EXEC, _exec(ConsoleSize=[-1, 80])),
    ("exec-console-size-float", "POST", EXEC, _exec(ConsoleSize=[1.5, 80])),
    ("exec-console-size-huge", "POST", EXEC, _exec(ConsoleSize=[10**30, 80])),
    ("exec-workdir-not-string", "POST", EXEC, _exec(WorkingDir=["/"])),
    ("exec-cmd-nested", "POST", EXEC, _exec(Cmd=[["sh"]])),
    ("exec-cmd-nul", "POST", EXEC, _exec(Cmd=["sh", "-c", "true\u0000"])),
    ("exec-hostconfig", "POST", EXEC, _exec(HostConfig={"Privileged": True})),
    ("exec-capadd", "POST", EXEC, _exec(CapAdd=["ALL"])),
    ("exec-into-stopped", "POST", "/v1.41/containers/{stopped}/exec", EXEC_OK),
    # Other people's execs (on the target, and in another container).
    ("exec-start-foreign-other-container", "POST", "/v1.41/exec/{fexec}/start",
     {"Detach": False}),
    ("exec-json-foreign-other-container", "GET", "/v1.41/exec/{fexec}/json", None),
    ("exec-resize-foreign-other-container", "POST", "/v1.41/exec/{fexec}/resize?h=1&w=1", None),
    ("exec-json-foreign-unversioned", "GET", "/exec/{fexec}/json", None),
    # Endpoints the first corpus does not name.
    ("events-streaming", "GET", "/v1.41/events", None),
    ("events-unversioned", "GET", "/events?until=0", None),
    ("info-unversioned", "GET", "/info", None),
    ("system-df-unversioned", "GET", "/system/df", None),
    ("attach-get", "GET", "/v1.41/containers/{tgt}/attach?stream=1&stdout=1", None),
    ("logs-follow-foreign", "GET", "/v1.41/containers/{foreign}/logs?follow=1&stdout=1", None),
    ("top-foreign", "GET", "/v1.41/containers/{foreign}/top", None),
    ("stats-foreign", "GET", "/v1.41/containers/{foreign}/stats?stream=0", None),
    ("export-foreign", "GET", "/v1.41/containers/{foreign}/export", None),
    ("changes-foreign", "GET", "/v1.41/containers/{foreign}/changes", None),
    ("archive-foreign-etc", "GET", "/v1.41/containers/{foreign}/archive?path=/etc/passwd", None),
    ("unpause-target", "POST", "/v1.41/containers/{tgt}/unpause", None),
    ("start-target", "POST", "/v1.41/containers/{tgt}/start", None),
    ("network-inspect", "GET", f"/v1.41/networks/corpus-net-{TOK}", None),
    ("network-disconnect", "POST", f"/v1.41/networks/corpus-net-{TOK}/disconnect",
     {"Container": "{tgt}", "Force": True}),
    ("networks-prune", "POST", "/v1.41/networks/prune", None),
    ("volume-inspect", "GET", f"/v1.41/volumes/corpus-vol-{TOK}", None),
    ("image-inspect", "GET", f"/v1.41/images/{BUSYBOX_IMAGE}/json", None),
    ("image-history", "GET", f"/v1.41/images/{BUSYBOX_IMAGE}/history", None),
    ("image-get", "GET", f"/v1.41/images/{BUSYBOX_IMAGE}/get", None),
    ("images-get-all", "GET", "/v1.41/images/get?names=busybox", None),
    ("image-push", "POST", f"/v1.41/images/{BUSYBOX_IMAGE}/push", None),
    ("images-search", "GET", "/v1.41/images/search?term=x", None),
    ("images-load", "POST", "/v1.41/images/load", b""),
    ("build-prune", "POST", "/v1.41/build/prune", None),
    ("build-cancel", "POST", "/v1.41/build/cancel?id=x", None),
    ("grpc", "POST", "/grpc", None),
    ("swarm-inspect", "GET", "/v1.41/swarm", None),
    ("swarm-join", "POST", "/v1.41/swarm/join", {"RemoteAddrs": ["127.0.0.1:2377"]}),
    ("swarm-leave", "POST", "/v1.41/swarm/leave?force=1", None),
    ("nodes", "GET", "/v1.41/nodes", None),
    ("tasks", "GET", "/v1.41/tasks", None),
    ("services-create", "POST", "/v1.41/services/create", {"Name": "corpus-evil-__TOK__"}),
    ("plugins-privileges", "GET", "/v1.41/plugins/privileges?remote=x", None),
    ("plugin-enable", "POST", "/v1.41/plugins/x/enable", None),
    ("distribution-unversioned", "GET", "/distribution/busybox/json", None),
    ("configs-create", "POST", "/v1.41/configs/create", {"Name": "c", "Data": "eA=="}),
    ("exec-bare", "GET", "/v1.41/exec", None),
    ("exec-two-segments", "GET", "/v1.41/exec/{exec}", None),
    ("containers-bare", "GET", "/v1.41/containers", None),
    ("container-create-v124", "POST", "/v1.24/containers/create?name=corpus-evil-__TOK__",
     {"Image": BUSYBOX_IMAGE, "Labels": {"corpus": "__TOK__"}}),
]


def _raw(method: str, target: str, body: bytes = b"", headers: str = "") -> bytes:
    return (f"{method} {target} HTTP/1.1\r\nHost: d\r\n{headers}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _chunked(target: str, chunks: list[bytes], headers: str = "") -> bytes:
    return (f"POST {target} HTTP/1.1\r\nHost: d\r\n{headers}"
            "Transfer-Encoding: chunked\r\n\r\n").encode() + b"".join(chunks) + b"0\r\n\r\n"


_PRIV = b'{"Privileged":true,"Cmd":["sh","-c","echo x > /canary"]}'
_CREATE = (b'{"Image":"' + BUSYBOX_IMAGE.encode() + b'","Labels":{"corpus":"__TOK__"},'
           b'"HostConfig":{"Privileged":true,"Binds":["/:/host"]}}')

# (id, raw bytes): framing and body tricks; refused with 400 or 403.
RAW: list[tuple[str, bytes]] = [
    ("authority-form-connect", b"CONNECT docker:2375 HTTP/1.1\r\nHost: docker:2375\r\n\r\n"),
    ("asterisk-form-options", b"OPTIONS * HTTP/1.1\r\nHost: d\r\n\r\n"),
    ("absolute-form-create", _raw("POST", "http://d/v1.41/containers/create?name=corpus-evil-"
                                  "__TOK__", _CREATE, "Content-Type: application/json\r\n")),
    ("absolute-form-exec", _raw("POST", "http://d/v1.41/containers/{tgt}/exec", _PRIV)),
    ("chunk-extension-privileged", _chunked(EXEC, [
        b"%x;ext=1\r\n" % len(_PRIV) + _PRIV + b"\r\n"])),
    ("chunk-extension-quoted", _chunked(EXEC, [
        b'%x;a="b\r\n' % len(_PRIV) + _PRIV + b"\r\n"])),
    ("chunk-size-overflow", _chunked(EXEC, [b"ffffffffffffffffff1\r\n" + _PRIV + b"\r\n"])),
    ("chunk-size-negative", _chunked(EXEC, [b"-1\r\n" + _PRIV + b"\r\n"])),
    ("te-chunked-identity", b"POST " + EXEC.encode() + b" HTTP/1.1\r\nHost: d\r\n"
     b"Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("te-xchunked", b"POST " + EXEC.encode() + b" HTTP/1.1\r\nHost: d\r\n"
     b"Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("te-space-before-colon", b"POST /_ping HTTP/1.1\r\nHost: d\r\nContent-Length: 4\r\n"
     b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\nPOST /v1.41/containers/{foreign}/kill "
     b"HTTP/1.1\r\nHost: d\r\n\r\n"),
    ("cl-space-before-colon", b"POST /v1.41/containers/{foreign}/kill HTTP/1.1\r\nHost: d\r\n"
     b"Content-Length : 0\r\n\r\n"),
    ("cl-plus-sign", _raw("POST", EXEC, b"", "").replace(b"Content-Length: 0",
                                                         b"Content-Length: +56") + _PRIV),
    ("cl-comma-list", b"POST " + EXEC.encode() + b" HTTP/1.1\r\nHost: d\r\n"
     b"Content-Length: 56, 0\r\n\r\n" + _PRIV),
    ("cl-hex", b"POST " + EXEC.encode() + b" HTTP/1.1\r\nHost: d\r\n"
     b"Content-Length: 0x38\r\n\r\n" + _PRIV),
    ("header-name-nul", b"GET /_ping HTTP/1.1\r\nHost: d\r\nX\x00A: 1\r\n\r\n"),
    ("header-value-bare-cr", b"GET /_ping HTTP/1.1\r\nHost: d\r\nX-A: 1\rX-B: 2\r\n\r\n"),
    ("request-line-tab", b"GET\t/_ping\tHTTP/1.1\r\nHost: d\r\n\r\n"),
    ("request-line-double-space", b"POST  /v1.41/containers/{foreign}/kill HTTP/1.1\r\n"
     b"Host: d\r\n\r\n"),
    ("http-09", b"POST /v1.41/containers/{foreign}/kill\r\n\r\n"),
    ("http-version-1-2", b"POST /v1.41/containers/{foreign}/kill HTTP/1.2\r\nHost: d\r\n\r\n"),
    ("host-twice", b"POST /v1.41/containers/{foreign}/kill HTTP/1.1\r\nHost: d\r\nHost: e\r\n"
     b"\r\n"),
    ("lf-only-terminator", b"GET /_ping HTTP/1.1\r\nHost: d\r\n\n"
     b"POST /v1.41/containers/{foreign}/kill HTTP/1.1\r\nHost: d\r\n\r\n"),
    ("exec-dup-cmd", _post(EXEC, b'{"Cmd":["true"],"Cmd":["sh","-c","echo x > /canary"]}')),
    ("exec-escaped-key", _post(EXEC, b'{"\\u0050rivileged":true,"Cmd":["sh"]}')),
    ("exec-case-dup", _post(EXEC, b'{"Privileged":false,"PRIVILEGED":true,"Cmd":["sh"]}')),
    ("exec-long-s-key", _post(EXEC, b'{"U\\u017fer":"root","Cmd":["sh"]}')),
    ("exec-kelvin-key", _post(EXEC, b'{"DetachKeys":"","Detach\\u212aeys":"x","Cmd":["sh"]}')),
    ("exec-body-is-list", _post(EXEC, json.dumps([EXEC_OK]).encode())),
    ("exec-body-is-null", _post(EXEC, b"null")),
    ("exec-bom", _post(EXEC, b"\xef\xbb\xbf" + _PRIV)),
    ("exec-comment", _post(EXEC, b'{"Cmd":["sh"] /*,"Privileged":true*/}')),
    ("exec-trailing-garbage", _post(EXEC, b'{"Cmd":["sh"]}{"Privileged":true}')),
    ("exec-huge-int", _post(EXEC, b'{"Cmd":["sh"],"ConsoleSize":[' + b"9" * 5000 + b",1]}")),
    ("exec-infinity", _post(EXEC, b'{"Cmd":["sh"],"ConsoleSize":[Infinity,1]}')),
    ("exec-utf16", _post(EXEC, json.dumps({"Cmd": ["sh"], "Privileged": True})
                         .encode("utf-16"))),
    ("exec-lone-surrogate", _post(EXEC, b'{"Cmd":["sh"],"User":"\\ud800"}')),
    ("exec-deep-object", _post(EXEC, b'{"Cmd":["sh"],"Env":' + b'{"a":' * 3000 + b"1"
                               + b"}" * 3000 + b"}")),
    ("start-foreign-with-upgrade", _raw("POST", "/v1.41/exec/{exec}/start",
                                        b'{"Detach":false}',
                                        "Connection: Upgrade\r\nUpgrade: tcp\r\n")),
    ("start-foreign-h2c", _raw("POST", "/v1.41/exec/{exec}/start", b'{"Detach":false}',
                               "Connection: Upgrade\r\nUpgrade: h2c\r\n")),
    ("session-upgrade", _raw("POST", "/session", b"",
                             "Connection: Upgrade\r\nUpgrade: h2c\r\n")),
    ("grpc-h2c", _raw("POST", "/grpc", b"", "Connection: Upgrade\r\nUpgrade: h2c\r\n")),
]


@pytest.fixture(scope="module")
def other_exec(env: Env) -> Iterator[str]:
    """Someone else's exec in a container that is not a target, with a secret in its argv and
    environment (the user's own `docker exec` in another container)."""
    exec_id = env.client.api.exec_create(env.objs["foreign"].id,
                                         ["sh", "-c", f"echo secret-{TOK}"],
                                         environment=[f"SECRET=s3cr3t-{TOK}"])["Id"]
    yield str(exec_id)


def _fill_more(value: Any, env: Env, fexec: str) -> Any:
    if isinstance(value, str):
        value = (value.replace("{fexec}", fexec)
                 .replace("{exec.short}", env.foreign_exec[:12])
                 .replace("{exec.upper}", env.foreign_exec.upper()))
    elif isinstance(value, dict):
        return {k: _fill_more(v, env, fexec) for k, v in value.items()}
    return _fill(value, env)


def _effect(env: Env, fexec: str) -> dict[str, Any]:
    state = env.client.api.exec_inspect(fexec)
    return {k: state[k] for k in ("Running", "ExitCode", "Pid")}


@pytest.mark.parametrize(("method", "target", "body"), [r[1:] for r in REQUESTS],
                         ids=[r[0] for r in REQUESTS])
def test_extra_hostile_request_refused_without_effect(  # noqa: PLR0917
        env: Env, baseline: dict[str, Any], other_exec: str,
        method: str, target: str, body: Any) -> None:
    before = _effect(env, other_exec)
    filled = _fill_more(body, env, other_exec)
    reply = request(env.gate.address, method, _fill_more(target, env, other_exec),
                    filled if body is not None or method in ("POST", "PUT", "PATCH") else None)
    _assert_refused(reply, {403})
    assert f"secret-{TOK}".encode() not in reply.body  # nothing of a foreign exec leaks
    assert f"s3cr3t-{TOK}".encode() not in reply.body
    assert snapshot(env) == baseline
    assert _effect(env, other_exec) == before


@pytest.mark.parametrize("raw", [r[1] for r in RAW], ids=[r[0] for r in RAW])
def test_extra_malformed_refused_without_effect(env: Env, baseline: dict[str, Any],
                                                raw: bytes) -> None:
    # 408: a chunk size beyond any body limit leaves the gate waiting for bytes that never
    # come, until the request deadline closes the connection.
    assert_raw_refused(env, baseline, raw, {400, 403, 408})


def _pipeline(env: Env, raw: bytes, count: int) -> list[int]:
    """Send `raw` at once; the statuses of the answers the gate gives before it closes."""
    sock = connect(env.gate.address)
    statuses = []
    try:
        sock.sendall(_fill(raw.decode("latin-1"), env).encode("latin-1"))
        rest = b""
        for _ in range(count):
            try:
                reply = read_reply(sock, rest)
            except (TimeoutError, ConnectionError):
                break
            statuses.append(reply.status)
            rest = reply.rest
    finally:
        sock.close()
    return statuses


HOSTILE_SECOND = [
    ("kill-foreign", _raw("POST", "/v1.41/containers/{foreign}/kill")),
    ("create", _raw("POST", "/v1.41/containers/create?name=corpus-evil-__TOK__", _CREATE,
                    "Content-Type: application/json\r\n")),
    ("exec-privileged", _raw("POST", EXEC, _PRIV, "Content-Type: application/json\r\n")),
    ("start-foreign-exec", _raw("POST", "/v1.41/exec/{exec}/start", b'{"Detach":false}',
                                "Connection: Upgrade\r\nUpgrade: tcp\r\n")),
]


@pytest.mark.parametrize("second", [h[1] for h in HOSTILE_SECOND],
                         ids=[h[0] for h in HOSTILE_SECOND])
def test_pipelined_hostile_after_allowed(env: Env, baseline: dict[str, Any],
                                         second: bytes) -> None:
    allowed = b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n"
    statuses = _pipeline(env, allowed + second + allowed, 3)
    # The allowed request is answered, the hostile one refused, and the connection goes on.
    assert statuses[:2] == [200, 403], statuses
    assert snapshot(env) == baseline


@pytest.mark.parametrize("second", [h[1] for h in HOSTILE_SECOND],
                         ids=[h[0] for h in HOSTILE_SECOND])
def test_http10_keepalive_then_hostile(env: Env, baseline: dict[str, Any],
                                       second: bytes) -> None:
    first = b"GET /_ping HTTP/1.0\r\nHost: d\r\nConnection: keep-alive\r\n\r\n"
    statuses = _pipeline(env, first + second.replace(b"HTTP/1.1", b"HTTP/1.0"), 2)
    # HTTP/1.0: the connection closes after the first answer; the second is never read.
    assert statuses == [200], statuses
    assert snapshot(env) == baseline


def test_upgrade_on_inspect_is_not_a_stream(env: Env, baseline: dict[str, Any]) -> None:
    """An upgrade asked on an endpoint that does not upgrade gets a plain answer, and the bytes
    after it are never taken as a request or relayed to the engine."""
    raw = _raw("GET", "/v1.41/containers/{tgt}/json", b"",
               "Connection: Upgrade\r\nUpgrade: tcp\r\n")
    statuses = _pipeline(env, raw + _raw("POST", "/v1.41/containers/{foreign}/kill"), 2)
    assert statuses == [200], statuses
    assert snapshot(env) == baseline


def test_foreign_exec_json_leaks_nothing(env: Env, other_exec: str) -> None:
    """The engine would tell its command line and the gate does not (the test's own control:
    the engine does know it)."""
    assert f"secret-{TOK}" in json.dumps(env.client.api.exec_inspect(other_exec))
    for target in (f"/v1.41/exec/{other_exec}/json", f"/exec/{other_exec}/json",
                   f"/v1.24/exec/{other_exec}/json"):
        reply = request(env.gate.address, "GET", target)
        assert reply.status == 403
        assert f"secret-{TOK}".encode() not in reply.body


def test_extra_corpus_size() -> None:
    assert len(REQUESTS) + len(RAW) + 2 * len(HOSTILE_SECOND) >= 120
