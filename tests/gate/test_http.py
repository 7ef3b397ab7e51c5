"""Client-side HTTP on its own (no sockets): requests assembled from bytes however they arrive,
answers rendered."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar_gen.gate.http import (
    MAX_BODY,
    MAX_HEAD,
    MalformedError,
    Request,
    RequestReader,
    raw_response,
    render,
)

EXEC = (b"POST /v1.41/containers/app/exec HTTP/1.1\r\nHost: docker\r\n"
        b"Content-Type: application/json\r\nContent-Length: 14\r\n\r\n{\"Cmd\":[\"id\"]}")
PING = b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n"


def _feed(data: bytes, cuts: list[int]) -> tuple[Request | None, RequestReader]:
    reader = RequestReader()
    pos = 0
    for cut in [*sorted(cuts), len(data)]:
        reader.feed(data[pos:cut])
        pos = cut
        request = reader.poll()
        if request is not None:
            return request, reader
    return None, reader


@given(st.lists(st.integers(min_value=0, max_value=len(EXEC + PING)), max_size=12))
def test_a_request_cut_anywhere_reads_the_same(cuts: list[int]) -> None:
    request, _ = _feed(EXEC + PING, cuts)
    assert request is not None
    assert (request.method, request.target, request.body) == \
        ("POST", "/v1.41/containers/app/exec", b'{"Cmd":["id"]}')
    assert request.headers[b"content-type"] == b"application/json"
    # The next request arrived in the same bytes: kept for the next round, not lost.
    leftover = request.leftover()
    assert leftover is not None and PING.startswith(leftover)


def test_chunked_body_and_100_continue() -> None:
    reader = RequestReader(b"POST /containers/app/exec HTTP/1.1\r\nHost: d\r\n"
                           b"Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert reader.poll() is None
    assert reader.reply_now.startswith(b"HTTP/1.1 100 ")
    reader.feed(b"4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n")
    request = reader.poll()
    assert request is not None and request.body == b'{"a":1}'


@pytest.mark.parametrize("data", [
    b"GET /_ping HTTP/1.1\r\nHost: d\r\nX: " + b"a" * MAX_HEAD + b"\r\n\r\n",
    b"GET /_ping HTTP/1.1\r\nHost: d\r\nX: " + b"a" * (MAX_HEAD + 10),  # never ends
    b"POST /x HTTP/1.1\r\nHost: d\r\nContent-Length: " + str(MAX_BODY + 1).encode()
    + b"\r\n\r\n" + b" " * (MAX_BODY + 1),
    b"GET / HTTP/1.1\nHost: d\n\n",
    b"POST / HTTP/1.1\r\nHost: d\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GARBAGE\r\n\r\n",
])
def test_malformed_or_oversized(data: bytes) -> None:
    reader = RequestReader()
    reader.feed(data)
    with pytest.raises(MalformedError):
        reader.poll()


def test_answers() -> None:
    request, _ = _feed(b"HEAD /_ping HTTP/1.1\r\nHost: d\r\n\r\n", [])
    assert request is not None
    head = render(200, b"", head_only=True, length=b"2", headers=[(b"Api-Version", b"1.41")])
    assert head.endswith(b"\r\n\r\n") and b"content-length: 2\r\n" in head.lower()
    assert raw_response(408, b"{}") == (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: "
                                        b"application/json\r\nContent-Length: 2\r\n"
                                        b"Connection: close\r\n\r\n{}")
    assert render(204, b"x") == b"HTTP/1.1 204 No Content\r\nContent-Type: application/json\r\n\r\n"
    with pytest.raises(ValueError):
        render(200, b"", headers=[(b"X", b"a\r\nSet-Cookie: evil")])


def test_a_malformed_request_stays_malformed() -> None:
    """A request refused after h11 read its head: asking again (the loop does, after a worker
    handed the connection back) gives the same answer, never a half-read state."""
    reader = RequestReader(b"GET /_ping HTTP/1.0\r\n\r\n")
    with pytest.raises(MalformedError, match=r"HTTP/1\.0 request without Host") as first:
        reader.poll()
    reader.feed(b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n")
    with pytest.raises(MalformedError) as again:
        reader.poll()
    assert again.value is first.value

