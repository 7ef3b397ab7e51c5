"""`runtime/httpclient`: HTTP/1.1 framing on a real socket pair."""

from __future__ import annotations

import pytest

from runtime.helpers import serve
from sidecar_gen.runtime import (
    frames,
    httpclient,
)


def test_http_content_length_and_keepalive_framing() -> None:
    conn, thread, seen = serve(
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
    conn, thread, _ = serve(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\n[1,2\r\n3;ext=1\r\n,3]\r\n0\r\nX-Trailer: 1\r\n\r\n")
    response = conn.request("GET", "/containers/json")
    thread.join()
    assert response.json() == [1, 2, 3]


def test_http_close_delimited_body_and_error_message() -> None:
    conn, thread, _ = serve(
        b'HTTP/1.1 403 Forbidden\r\n\r\n{"message": "sidecar gate: POST /x is not allowed"}')
    response = conn.request("POST", "/x")
    thread.join()
    assert response.status == 403
    assert response.message() == "sidecar gate: POST /x is not allowed"


def test_http_upgrade_keeps_stream_bytes() -> None:
    conn, thread, seen = serve(
        b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        + frames.encode_header(1, 2) + b"hi")
    response = conn.upgrade("/exec/abc/start", {"Detach": False, "Tty": False})
    thread.join()
    assert response.status == 101
    assert bytes(conn.buf) == frames.encode_header(1, 2) + b"hi"
    assert b"Upgrade: tcp" in seen[0] and b"Connection: Upgrade" in seen[0]


@pytest.mark.parametrize("answer", [b"", b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Le"])
def test_http_protocol_errors_are_dispatch_errors(answer: bytes) -> None:
    conn, thread, _ = serve(answer)
    with pytest.raises(httpclient.ProtocolError) as info:
        conn.request("GET", "/_ping")
    thread.join()
    assert info.value.exit_code == 125


def test_quote_is_percent_encoding() -> None:
    expected = "%7B%22label%22%3A%5B%22a%3Db%20c%2F%C3%A9%22%5D%7D"
    assert httpclient.quote('{"label":["a=b c/é"]}') == expected
