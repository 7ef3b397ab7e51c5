"""The hostile agent against the broker: every refusal, proven by the stand-in's record (nothing
arrived upstream), one readable line back, a closed connection, and a log line; and every way
to read the secret back (error bodies, headers, an upstream that echoes it)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from broker.client import Answer, closed_by_peer, connect, messages, read_answer, request, send
from broker.conftest import (
    API_KEY,
    API_PLACEHOLDER,
    GITHUB,
    RunningBroker,
    echo_script,
    write_secrets,
)
from broker.standin import Pause, Recorded, Reply, StandIn, TestCA, json_reply
from sidecar_gen.broker.http import MAX_HEAD

GOOD = (b"POST /v1/messages?beta=true HTTP/1.1\r\nHost: sidecar-broker:8080\r\n"
        b"x-api-key: " + API_PLACEHOLDER.encode() + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: 14\r\n\r\n{\"model\":\"m1\"}")
BODY = b"Content-Length: 2\r\n\r\n{}"


def _head(start: bytes, *headers: bytes, host: bytes = b"Host: sidecar-broker\r\n",
          body: bytes = BODY) -> bytes:
    return start + b"\r\n" + host + b"".join(h + b"\r\n" for h in headers) + body


HOSTILE: dict[str, tuple[bytes, int, str]] = {
    # another host
    "host header": (_head(b"POST /v1/messages HTTP/1.1", host=b"Host: api.anthropic.com\r\n"),
                    403, "another host"),
    "host header evil": (_head(b"POST /v1/messages HTTP/1.1", host=b"Host: evil.example\r\n"),
                         403, "another host"),
    "two hosts": (_head(b"POST /v1/messages HTTP/1.1", b"Host: evil.example"), 400,
                  "multiple Host"),
    "absolute-form": (_head(b"POST http://evil.example/v1/messages HTTP/1.1"), 403,
                      "naming a host"),
    "absolute-form https": (_head(b"POST https://api.anthropic.com/v1/messages HTTP/1.1"),
                            403, "naming a host"),
    "CONNECT": (b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", 403,
                "CONNECT"),
    "CONNECT upstream": (b"CONNECT api.anthropic.com:443 HTTP/1.1\r\nHost: sidecar-broker\r\n"
                         b"\r\n", 403, "CONNECT"),
    # path escapes
    "dot dot": (_head(b"POST /v1/../v1/messages HTTP/1.1"), 403, "dot segment"),
    "dot dot out": (_head(b"GET /v1/models/../../admin HTTP/1.1", body=b"\r\n"), 403,
                    "dot segment"),
    "dot": (_head(b"POST /v1/./messages HTTP/1.1"), 403, "dot segment"),
    "encoded dots": (_head(b"POST /v1/%2e%2e/v1/messages HTTP/1.1"), 403, "percent"),
    "encoded slash": (_head(b"GET /v1/models%2f..%2fadmin HTTP/1.1", body=b"\r\n"), 403,
                      "percent"),
    "doubled slash": (_head(b"POST /v1//messages HTTP/1.1"), 403, "doubled slash"),
    "leading doubled slash": (_head(b"POST //evil.example/v1/messages HTTP/1.1"), 403,
                              "doubled slash"),
    "backslash": (_head(b"POST /v1\\messages HTTP/1.1"), 403, "backslash"),
    "unknown path": (_head(b"POST /v1/files HTTP/1.1"), 403, "not an API path"),
    "organizations api": (_head(b"GET /v1/organizations/me HTTP/1.1", body=b"\r\n"), 403,
                          "not an API path"),
    # methods and upgrades
    "TRACE": (_head(b"TRACE /v1/messages HTTP/1.1", body=b"\r\n"), 403, "TRACE"),
    "OPTIONS": (_head(b"OPTIONS /v1/messages HTTP/1.1", body=b"\r\n"), 403, "method OPTIONS"),
    "PUT": (_head(b"PUT /v1/messages HTTP/1.1"), 403, "method PUT"),
    "DELETE model": (_head(b"DELETE /v1/models/claude-x HTTP/1.1", body=b"\r\n"), 403,
                     "method DELETE"),
    "lower-case post": (_head(b"post /v1/messages HTTP/1.1"), 403, "method post"),
    "websocket": (_head(b"GET /v1/models HTTP/1.1", b"Connection: Upgrade",
                        b"Upgrade: websocket", b"Sec-WebSocket-Version: 13",
                        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", body=b"\r\n"), 403,
                  "upgrades"),
    "h2c": (_head(b"GET /v1/models HTTP/1.1", b"Connection: Upgrade, HTTP2-Settings",
                  b"Upgrade: h2c", b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA", body=b"\r\n"),
            403, "upgrades"),
    "query not allowed": (_head(b"POST /v1/messages?beta=true&x=1 HTTP/1.1"), 403,
                          "query parameter x"),
    # smuggling and malformed HTTP
    "CL and TE": (_head(b"POST /v1/messages HTTP/1.1", b"Transfer-Encoding: chunked",
                        body=b"Content-Length: 5\r\n\r\n0\r\n\r\n"), 400,
                  "Content-Length and Transfer-Encoding"),
    "repeated CL": (_head(b"POST /v1/messages HTTP/1.1", b"Content-Length: 2", body=BODY),
                    400, "repeated"),
    "differing CL": (_head(b"POST /v1/messages HTTP/1.1", b"Content-Length: 40", body=BODY),
                     400, "repeated"),
    "TE gzip": (_head(b"POST /v1/messages HTTP/1.1", b"Transfer-Encoding: gzip, chunked",
                      body=b"\r\n0\r\n\r\n"), 400, "Transfer-Encoding"),
    "obs-fold": (_head(b"POST /v1/messages HTTP/1.1", b"X-A: 1", b" folded: yes"), 400,
                 "folding"),
    "bare LF": (b"POST /v1/messages HTTP/1.1\nHost: sidecar-broker\nContent-Length: 2\n\n{}",
                400, "bare"),
    "space before colon": (_head(b"POST /v1/messages HTTP/1.1", b"Content-Length : 2",
                                 body=b"\r\n{}"), 400, "bad HTTP"),
    "NUL in header": (_head(b"POST /v1/messages HTTP/1.1", b"X-A: a\x00b"), 400, "bad HTTP"),
    "garbage": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, "bad HTTP"),
    "HTTP/0.9": (b"GET /v1/models\r\n\r\n", 400, "bad HTTP"),
    # sizes
    "huge head": (_head(b"POST /v1/messages HTTP/1.1", b"X-Pad: " + b"a" * MAX_HEAD), 431,
                  "head larger"),
    "huge announced body": (_head(b"POST /v1/messages HTTP/1.1",
                                  body=b"Content-Length: 33554433\r\n\r\n{}"), 413, "larger"),
    "body on GET": (_head(b"GET /v1/models HTTP/1.1"), 413, "takes no body"),
    # someone else's credential, or a credential that is not a placeholder
    "own api key": (_head(b"POST /v1/messages HTTP/1.1", b"x-api-key: sk-ant-api03-mine"),
                    401, "not the broker's placeholder"),
    "basic auth": (_head(b"POST /v1/messages HTTP/1.1", b"Authorization: Basic eDp5"), 401,
                   "Bearer"),
    "other bearer": (_head(b"POST /v1/messages HTTP/1.1", b"Authorization: Bearer abc"), 401,
                     "not the broker's placeholder"),
    "unknown expectation": (_head(b"POST /v1/messages HTTP/1.1", b"Expect: 200-ok"), 417,
                            "Expect"),
}


def _method(raw: bytes) -> bytes:
    """The method a client would think it sent (for reading the answer to HEAD right)."""
    word = raw.split(b" ", 1)[0]
    return word if word.isalpha() and word.isupper() else b"GET"


def _refused(broker: RunningBroker, standin: StandIn, raw: bytes, status: int,
             why: str) -> Answer:
    with connect(broker.port) as sock:
        sock.sendall(raw)
        answer = read_answer(sock, _method(raw))
        closed = closed_by_peer(sock)
    assert answer.status == status, answer.body
    assert why in answer.message, answer.message
    assert "\n" not in answer.message.strip() and answer.message.startswith("sidecar broker: ")
    assert closed, "the connection must close after a refusal"
    assert standin.requests == []
    return answer


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_refused_and_nothing_arrives_upstream(broker: RunningBroker, standin: StandIn,
                                              name: str) -> None:
    raw, status, why = HOSTILE[name]
    _refused(broker, standin, raw, status, why)
    line = broker.log_lines()[-1]
    assert line["decision"] == "deny" and line["status"] == status
    assert why in line["reason"]


def test_nothing_pipelined_behind_a_refused_request_is_read(broker: RunningBroker,
                                                            standin: StandIn) -> None:
    refused = _head(b"POST /v1/files HTTP/1.1")
    _refused(broker, standin, refused + GOOD + GOOD, 403, "not an API path")
    # Behind an allowed request, the next one is decided on its own, and a refused one ends
    # the connection: what follows it never reaches the upstream.
    smuggled = _head(b"POST http://evil.example/v1/messages HTTP/1.1")
    with connect(broker.port) as sock:
        sock.sendall(GOOD + smuggled + GOOD)
        first = read_answer(sock)
        second = read_answer(sock)
        assert closed_by_peer(sock)
    assert (first.status, second.status) == (200, 403)
    assert "naming a host" in second.message
    assert [line["method"] for line in broker.log_lines(3)] == ["POST", "POST", "POST"]
    assert [r.target for r in standin.requests] == ["/v1/messages?beta=true"]


def test_a_body_that_hides_a_request_is_only_a_body(broker: RunningBroker,
                                                    standin: StandIn) -> None:
    inner = b"GET /v1/models HTTP/1.1\r\nHost: sidecar-broker\r\n\r\n"
    raw = (b"POST /v1/messages HTTP/1.1\r\nHost: sidecar-broker\r\nContent-Length: %d\r\n\r\n"
           % len(inner)) + inner
    with connect(broker.port) as sock:
        sock.sendall(raw)
        assert read_answer(sock).status == 200
    (got,) = standin.requests
    assert got.body == inner and got.method == "POST"


def test_a_body_over_the_limit_is_cut_before_the_upstream_acts(
        broker: RunningBroker, standin: StandIn) -> None:
    chunk = b"x" * (1 << 20)
    with connect(broker.port) as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: sidecar-broker\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(34):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the broker stops reading once over the limit
        answer = read_answer(sock)
    assert answer.status == 413 and "larger than 33554432" in answer.message
    time.sleep(0.5)
    assert standin.requests == []  # the upstream got a cut request: it never completed


def test_a_slow_head_is_cut(broker_factory: Callable[..., RunningBroker],
                            standin: StandIn) -> None:
    from sidecar_gen.broker.server import BrokerLimits

    broker = broker_factory(limits=BrokerLimits(head=0.5))
    with connect(broker.port) as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: sid")
        answer = read_answer(sock)
    assert answer.status == 408
    assert standin.requests == []


def test_the_connection_cap(broker_factory: Callable[..., RunningBroker],
                            standin: StandIn) -> None:
    from sidecar_gen.broker.server import BrokerLimits

    broker = broker_factory(limits=BrokerLimits(max_connections=2))
    held = [connect(broker.port) for _ in range(2)]
    for sock in held:
        sock.sendall(b"P")
    deadline = time.monotonic() + 10
    while broker.broker.server.active < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    answer = send(broker.port, GOOD)
    assert answer.status == 503
    for sock in held:
        sock.close()
    assert standin.requests == []
    assert any(line.get("notice") == "connection cap" for line in broker.log_lines())


# -- reading the secret back ------------------------------------------------------------------

def _no_secret(answer: Answer, *secrets: str) -> None:
    everything = answer.body + "".join(f"{k}: {v}" for k, v in answer.headers).encode()
    for secret in secrets:
        assert secret.encode() not in everything
        # not its halves either (a masked key leaves no readable piece)
        assert secret[len(secret) // 2:].encode() not in everything


def test_an_upstream_that_echoes_the_key_gives_nothing_back(broker: RunningBroker,
                                                            standin: StandIn) -> None:
    standin.script(echo_script)
    answer = messages(broker.port)
    assert answer.status == 400
    assert (standin.requests[0].header("x-api-key")) == API_KEY  # it was echoed...
    _no_secret(answer, API_KEY)  # ...and masked, in headers and body
    assert b"x-api-key: " + b"*" * len(API_KEY) in answer.body
    line = broker.log_lines()[-1]
    assert line["redacted"] >= 2
    assert API_KEY not in broker.log_text()


def test_an_echo_split_across_chunks_is_masked(broker: RunningBroker, standin: StandIn) -> None:
    text = f"event: error\ndata: your key is {API_KEY}, see\n\n".encode()
    pieces: list[bytes | Pause] = []
    for i in range(0, len(text), 7):  # every 7 bytes, sent and flushed apart
        pieces += [text[i:i + 7], Pause(0.01)]
    standin.script(lambda _r: Reply(200, [("Content-Type", "text/event-stream")], pieces))
    answer = messages(broker.port)
    assert len(answer.pieces) > 3  # it did arrive in pieces
    _no_secret(answer, API_KEY)
    assert answer.body == text.replace(API_KEY.encode(), b"*" * len(API_KEY))


def test_an_echoed_github_credential_is_masked(broker_factory: Callable[..., RunningBroker],
                                               standin: StandIn) -> None:
    import base64

    broker = broker_factory(secrets={"api_key": API_KEY, "github_token": GITHUB},
                            github_upstream=standin.url("localhost"),
                            repositories=("octo/app",))
    standin.script(echo_script)
    answer = request(broker.port, "GET",
                     "/git/github.com/octo/app.git/info/refs?service=git-upload-pack")
    basic = base64.b64encode(f"x-access-token:{GITHUB}".encode()).decode()
    assert standin.requests[0].header("authorization") == f"Basic {basic}"
    _no_secret(answer, basic, GITHUB, API_KEY)


def test_refusals_never_carry_the_secret(broker: RunningBroker, standin: StandIn) -> None:
    for raw, _status, _why in HOSTILE.values():
        answer = send(broker.port, raw, method=_method(raw))
        _no_secret(answer, API_KEY)
    standin.script(lambda _r: json_reply(401, {"error": {"message": "invalid x-api-key"}}))
    _no_secret(messages(broker.port), API_KEY)
    assert API_KEY not in broker.log_text()


def test_the_broker_process_cannot_be_read_or_dumped(tmp_path: Path, test_ca: TestCA,
                                                     standin: StandIn,
                                                     sidecar_cli: list[str]) -> None:
    # The broker as it runs in its container: `sidecar broker`, an unprivileged user. Another
    # process of that same user must not read its memory or environment, and it dumps no core.
    from broker.standin import free_port

    nobody = 65534
    # Not under pytest's 0700 temporary folder: the broker's user must reach its secrets.
    folder = write_secrets(Path(tempfile.mkdtemp(prefix="sidecar-broker-")) / "secrets",
                           api_key=API_KEY)
    folder.parent.chmod(0o755)
    os.chown(folder, nobody, nobody)
    os.chown(folder / "api-key", nobody, nobody)
    ca_file = folder.parent / "ca.pem"
    shutil.copy(test_ca.ca_cert, ca_file)
    ca_file.chmod(0o644)
    port = free_port()
    as_nobody = ["setpriv", f"--reuid={nobody}", f"--regid={nobody}", "--clear-groups"]
    broker = subprocess.Popen(
        [*as_nobody, *sidecar_cli, "broker", f"--listen=tcp://127.0.0.1:{port}",
         f"--upstream={standin.url('localhost')}", f"--ca-file={ca_file}",
         f"--secrets={folder}"], stderr=subprocess.PIPE, text=True,
        env={**os.environ, "SIDECAR_BROKER_MARKER": "visible-in-environ"})
    # The control: a plain process of the same user, whose environment its peers can read.
    control = subprocess.Popen([*as_nobody, sys.executable, "-c", "import time; time.sleep(60)"],
                               env={**os.environ, "SIDECAR_BROKER_MARKER": "visible-in-environ"})
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if messages(port).status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        limits = Path(f"/proc/{broker.pid}/limits").read_text()
        assert any(line.startswith("Max core file size") and line.split()[4:6] == ["0", "0"]
                   for line in limits.splitlines()), limits

        def peek(pid: int) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*as_nobody, "cat", f"/proc/{pid}/environ"],
                                  capture_output=True, text=True)

        seen = peek(control.pid)
        assert seen.returncode == 0 and "visible-in-environ" in seen.stdout  # control
        denied = peek(broker.pid)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr
        assert os.stat(f"/proc/{broker.pid}/mem").st_uid == 0  # not dumpable: root's
        assert Path(f"/proc/{broker.pid}/status").read_text().count(f"\t{nobody}\t") >= 1
    finally:
        control.kill()
        broker.send_signal(signal.SIGTERM)
        _out, err = broker.communicate(timeout=10)
    assert broker.returncode == 0, err
    assert "credentials: api-key" in err and API_KEY not in err
    assert "warning" not in err
    shutil.rmtree(folder.parent)


def test_start_up_failures_are_one_line(tmp_path: Path, sidecar_cli: list[str]) -> None:
    folder = write_secrets(tmp_path / "s", api_key="has a space")
    cases = [
        ([f"--secrets={folder}"], "not visible ASCII"),
        ([f"--secrets={tmp_path / 'missing'}"], "does not exist"),
        (["--upstream=http://api.anthropic.com"], "must be https://"),
        (["--github-repo=octo"], "OWNER/REPO"),
        ([f"--ca-file={tmp_path / 'nope.pem'}"], "no such file"),
        (["--listen=tcp://256.0.0.1:1"], "cannot listen"),
    ]
    # A folder its user cannot read (under pytest's 0700 folder, for user nobody).
    unreadable = write_secrets(tmp_path / "u", api_key=API_KEY)
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    cases.append(([f"--secrets={unreadable}"], "cannot read the secrets folder"))
    for args, why in cases:
        prefix = as_nobody if "cannot read" in why else []
        result = subprocess.run([*prefix, *sidecar_cli, "broker",
                                 "--listen=tcp://127.0.0.1:0", *args],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and why in lines[0], (args, result.stderr)
        assert "has a space" not in result.stderr


def test_recorded_requests_show_only_what_the_broker_sent(broker: RunningBroker,
                                                          standin: StandIn) -> None:
    # Whatever the agent puts in the request, the upstream sees the broker's own credential
    # header once, and none of the client's forwarding headers.
    answer = messages(broker.port, headers={"Forwarded": "for=evil", "Via": "1.1 evil",
                                            "Proxy-Authorization": "Basic eDp5",
                                            "X-Real-IP": "6.6.6.6"})
    assert answer.status == 200
    got: Recorded = standin.requests[0]
    names = {k.lower() for k, _ in got.headers}
    assert names.isdisjoint({"forwarded", "via", "proxy-authorization", "x-real-ip",
                             "authorization"})
    assert got.header_all("x-api-key") == [API_KEY]
