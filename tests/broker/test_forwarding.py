"""The broker forwarding for real: a broker in front of the scripted Messages API over TLS,
asserted on what the stand-in recorded and on what the client received, when."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import REPO
from jsonschema import Draft202012Validator

from broker.client import connect, messages, read_answer, request
from broker.conftest import API_KEY, OAUTH, OAUTH_PLACEHOLDER, RunningBroker
from broker.standin import (
    Pause,
    Recorded,
    Reply,
    StandIn,
    TestCA,
    json_reply,
    text_reply,
)

SCHEMA = json.loads((REPO / "schemas" / "broker-request.schema.json").read_text())


def test_the_placeholder_becomes_the_real_key(broker: RunningBroker, standin: StandIn) -> None:
    answer = messages(broker.port, headers={"Cookie": "a=b", "X-Forwarded-For": "1.2.3.4",
                                            "Accept-Encoding": "gzip, br",
                                            "anthropic-beta": "claude-code-20250219"})
    assert answer.status == 200, answer.body
    assert b"hello from the stand-in" in answer.body
    (got,) = standin.requests
    assert (got.method, got.target) == ("POST", "/v1/messages?beta=true")
    assert got.header_all("x-api-key") == [API_KEY]
    assert got.header("authorization") is None
    assert got.header("host") == f"localhost:{standin.port}"
    # Claude Code's own headers pass; proxy, cookie and encoding headers do not.
    assert got.header("anthropic-beta") == "claude-code-20250219"
    assert got.header("anthropic-version") == "2023-06-01"
    assert got.header("cookie") is None and got.header("x-forwarded-for") is None
    assert got.header("accept-encoding") == "identity"
    assert got.json()["model"] == "claude-test-1"


def test_an_oauth_token_goes_as_bearer(broker_factory: Callable[..., RunningBroker],
                                       standin: StandIn) -> None:
    broker = broker_factory(secrets={"oauth_token": OAUTH})
    answer = request(broker.port, "POST", "/v1/messages?beta=true", {"model": "m"},
                     headers={"Authorization": f"Bearer {OAUTH_PLACEHOLDER}",
                              "anthropic-beta": "oauth-2025-04-20"})
    assert answer.status == 200
    (got,) = standin.requests
    assert got.header_all("authorization") == [f"Bearer {OAUTH}"]
    assert got.header("x-api-key") is None


def test_the_answer_streams_as_it_arrives(broker: RunningBroker, standin: StandIn) -> None:
    # The stand-in sends the start of the answer, then waits 1.5 s before the rest: the first
    # events must reach the client before the wait ends (no whole-body buffering).
    standin.script(lambda _r: text_reply("first second", pieces=2, pause=1.5))
    answer = messages(broker.port)
    assert answer.status == 200
    first_at = answer.pieces[0][0] - answer.sent_at
    last_at = answer.pieces[-1][0] - answer.sent_at
    assert first_at < 1.0 < last_at, (first_at, last_at)
    assert b"message_start" in answer.pieces[0][1]
    events = [p for _, p in answer.pieces]
    assert b"first" in b"".join(events[:-1]) or b"first" in events[0]


def test_a_long_stream_is_not_cut_by_the_idle_limit(
        broker_factory: Callable[..., RunningBroker], standin: StandIn) -> None:
    from sidecar_gen.broker.exchange import Timeouts
    from sidecar_gen.broker.server import BrokerLimits

    broker = broker_factory(limits=BrokerLimits(timeouts=Timeouts(upstream=1.0)))
    # 4 pauses of 0.6 s: 2.4 s in all, more than the 1 s idle limit, never idle 1 s.
    standin.script(lambda _r: text_reply("abcde", pieces=5, pause=0.6))
    answer = messages(broker.port)
    assert answer.status == 200
    assert b'"message_stop"' in answer.body
    assert answer.pieces[-1][0] - answer.sent_at > 2.0
    # Silent for longer than the limit: cut, and the client learns it (the stream ends early).
    standin.script(lambda _r: Reply(200, [("Content-Type", "text/event-stream")],
                                    [b"event: ping\ndata: {}\n\n", Pause(2.5), b"late\n\n"]))
    with connect(broker.port) as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Length: 2\r\n\r\n{}")
        with pytest.raises(h11_errors()):
            read_answer(sock)
    line = broker.log_lines(2)[-1]
    assert line["decision"] == "error" and "sent nothing for 1 s" in line["reason"]


def h11_errors() -> tuple[type[Exception], ...]:
    import h11

    return (h11.RemoteProtocolError, ConnectionError)


@pytest.mark.parametrize("status", [400, 401, 429, 500, 529])
def test_upstream_errors_pass_through_once(broker: RunningBroker, standin: StandIn,
                                          status: int) -> None:
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    standin.script(lambda _r: json_reply(status, body, [("retry-after", "3"),
                                                        ("www-authenticate", "x")]))
    answer = messages(broker.port)
    assert answer.status == status
    assert answer.json() == body
    assert answer.header("retry-after") == "3"
    assert answer.header("www-authenticate") is None
    assert len(standin.requests) == 1  # no retry: that is the client's call


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_bulk_bodies_arrive_intact_in_every_framing(broker: RunningBroker, standin: StandIn,
                                                    framing: str) -> None:
    # Large reads are batched (several TLS records per round): the bytes, their order and the
    # end of the body (a close-delimited one ends with the connection) must survive that.
    blocks = [bytes([i % 251]) * 65536 + i.to_bytes(4, "big") for i in range(48)]
    standin.script(lambda _r: Reply(200, [("Content-Type", "application/octet-stream")],
                                    blocks, framing=framing))
    answer = request(broker.port, "GET", "/v1/models")
    assert answer.status == 200
    assert hashlib.sha256(answer.body).digest() == hashlib.sha256(b"".join(blocks)).digest()
    line = broker.log_lines()[-1]
    assert line["decision"] == "allow" and line["response_bytes"] == len(answer.body)


def test_kept_alive_connections_reuse_the_upstream(broker: RunningBroker,
                                                   standin: StandIn) -> None:
    with connect(broker.port) as sock:
        for _ in range(3):
            sock.sendall(b'POST /v1/messages HTTP/1.1\r\nHost: sidecar-broker\r\n'
                         b'Content-Type: application/json\r\nContent-Length: 17\r\n\r\n'
                         b'{"model":"m1234"}')
            answer = read_answer(sock)
            assert answer.status == 200 and not answer.closed_after
    peers = {r.peer for r in standin.requests}
    assert len(standin.requests) == 3 and len(peers) == 1  # one upstream connection


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_body_sent_after_its_head_is_forwarded(broker: RunningBroker, standin: StandIn,
                                                 framing: str) -> None:
    # Claude Code's client may send the head and the body apart: the broker must wait for the
    # body, not take the pause for the end of the connection.
    body = b'{"model":"claude-x","messages":[]}'
    head = b"POST /v1/messages HTTP/1.1\r\nHost: sidecar-broker\r\n"
    if framing == "length":
        head += b"Content-Length: %d\r\n\r\n" % len(body)
        rest = body
    else:
        head += b"Transfer-Encoding: chunked\r\n\r\n"
        rest = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    with connect(broker.port) as sock:
        sock.sendall(head)
        time.sleep(0.3)
        sock.sendall(rest)
        answer = read_answer(sock)
    assert answer.status == 200, answer.body
    assert [r.body for r in standin.requests] == [body]


def test_chunked_request_bodies_are_forwarded(broker: RunningBroker, standin: StandIn) -> None:
    with connect(broker.port) as sock:
        sock.sendall(b"POST /v1/messages/count_tokens?beta=true HTTP/1.1\r\nHost: localhost\r\n"
                     b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
                     b"5\r\n{\"mod\r\nf\r\nel\":\"claude-x\"}\r\n0\r\n\r\n")
        standin.script(lambda _r: json_reply(200, {"input_tokens": 9}))
        answer = read_answer(sock)
    assert answer.status == 200 and answer.json() == {"input_tokens": 9}
    (got,) = standin.requests
    assert got.body == b'{"model":"claude-x"}'
    line = broker.log_lines()[-1]
    assert (line["model"], line["input_tokens"]) == ("claude-x", 9)


def test_an_untrusted_upstream_certificate_is_refused(
        broker_factory: Callable[..., RunningBroker], standin: StandIn, tmp_path: Path) -> None:
    other = TestCA(tmp_path / "other-ca")  # signs nothing the stand-in uses
    broker = broker_factory(ca_file=other.ca_cert)
    answer = messages(broker.port)
    assert answer.status == 502
    assert "certificate is not trusted" in answer.message
    assert standin.requests == []


def test_a_certificate_for_another_name_is_refused(
        broker_factory: Callable[..., RunningBroker], standin: StandIn) -> None:
    # The stand-in's certificate names localhost and upstream.test, not 127.0.0.1's reverse.
    broker = broker_factory(upstream=f"https://127.0.0.2:{standin.port}")
    answer = messages(broker.port)
    assert answer.status == 502
    assert standin.requests == []


def test_redirects(broker: RunningBroker, standin: StandIn) -> None:
    def script(record: Recorded) -> Reply:
        if record.path == "/v1/models":
            # Same upstream: handed to the client as a path on the broker, which decides again.
            location = f"https://localhost:{standin.port}/v1/models/claude-x?beta=true"
            return json_reply(301, {}, [("Location", location)])
        if record.path == "/v1/models/claude-x":
            return json_reply(302, {}, [("Location", "https://evil.example/steal")])
        return json_reply(200, {})

    standin.script(script)
    same = request(broker.port, "GET", "/v1/models", headers={"x-api-key": ""})
    assert same.status == 301
    assert [v for k, v in same.headers if k == "location"] == ["/v1/models/claude-x?beta=true"]
    away = request(broker.port, "GET", "/v1/models/claude-x")
    assert away.status == 502 and "redirected" in away.message
    assert away.header("location") is None and b"evil" not in away.body


def test_a_silent_upstream_gets_a_504(broker_factory: Callable[..., RunningBroker],
                                      standin: StandIn) -> None:
    from sidecar_gen.broker.exchange import Timeouts
    from sidecar_gen.broker.server import BrokerLimits

    broker = broker_factory(limits=BrokerLimits(timeouts=Timeouts(upstream=0.5)))
    standin.script(lambda _r: (time.sleep(1.5), json_reply(200, {}))[1])
    answer = messages(broker.port)
    assert answer.status == 504 and "sent nothing" in answer.message


def test_health_is_answered_by_the_broker(broker: RunningBroker, standin: StandIn) -> None:
    answer = request(broker.port, "GET", "/sidecar-broker/health")
    assert answer.status == 200
    assert answer.json()["credentials"] == ["api-key"]
    assert API_KEY.encode() not in answer.body
    assert standin.requests == []


def test_the_healthcheck(broker_factory: Callable[..., RunningBroker]) -> None:
    from broker.standin import free_port
    from sidecar_gen.broker.health import check, main

    healthy = broker_factory()
    assert check(f"tcp://127.0.0.1:{healthy.port}") is None
    assert main([f"tcp://127.0.0.1:{healthy.port}"]) == 0
    git_only = broker_factory(secrets={"github_token": "ghp_x0123456789"})
    assert "no Anthropic credential" in (check(f"tcp://127.0.0.1:{git_only.port}") or "")
    assert main([f"tcp://127.0.0.1:{git_only.port}"]) == 1
    assert main(["--listening", f"tcp://127.0.0.1:{git_only.port}"]) == 0
    assert "not listening" in (check(f"tcp://127.0.0.1:{free_port()}") or "")


def test_every_audit_line_follows_the_schema(broker: RunningBroker, standin: StandIn) -> None:
    Draft202012Validator.check_schema(SCHEMA)
    messages(broker.port)
    request(broker.port, "GET", "/v1/files")
    request(broker.port, "GET", "/sidecar-broker/health")
    with connect(broker.port) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\nHost: x\n\n")
        assert read_answer(sock, b"GET").status == 400
    lines = broker.log_lines(4)
    assert len(lines) == 4
    for line in lines:
        Draft202012Validator(SCHEMA).validate(line)
    # (by path: a line is written once its response is sent, so their order may vary)
    by_path = {line["path"]: line for line in lines}
    forwarded = by_path["/v1/messages?beta=true"]
    assert forwarded["decision"] == "allow" and forwarded["status"] == 200
    assert (forwarded["model"], forwarded["input_tokens"], forwarded["output_tokens"]) == \
        ("claude-test-1", 11, 7)
    assert forwarded["request_bytes"] > 0 and forwarded["response_bytes"] > 0
    assert (by_path["/v1/files"]["decision"], by_path["/v1/files"]["status"]) == ("deny", 403)
    assert by_path["-"]["status"] == 400  # malformed: no request line was taken
    assert "hi" not in json.dumps(lines)  # the prompt's content
    assert API_KEY not in broker.log_text()
