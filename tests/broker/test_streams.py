"""Masking and usage reading over a stream cut anywhere (pure, property-based)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from broker.standin import sse, text_reply, tool_use_reply
from sidecar_gen.broker.redact import Redactor
from sidecar_gen.broker.usage import UsageReader, request_model

SECRET = b"sk-ant-api03-REAL-secret-value"
OTHER = b"Z2hwX3Rva2Vu"  # a second secret (a Basic credential's base64)


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    out, last = [], 0
    for point in [*points, len(data)]:
        out.append(data[last:point])
        last = point
    return out


def _through(redactor: Redactor, pieces: list[bytes]) -> bytes:
    return b"".join(redactor.feed(p) for p in pieces) + redactor.flush()


@given(st.binary(max_size=200), st.binary(max_size=200), st.lists(st.integers(0, 500),
                                                                  max_size=20))
def test_a_secret_is_masked_wherever_the_chunks_split_it(before: bytes, after: bytes,
                                                         cuts: list[int]) -> None:
    stream = before + SECRET + after + OTHER + SECRET[:10] + b"\n\n"
    out = _through(Redactor([SECRET, OTHER]), _cut(stream, cuts))
    assert SECRET not in out and OTHER not in out
    assert len(out) == len(stream)  # Content-Length stays true
    assert out.endswith(SECRET[:10] + b"\n\n")  # a mere start of a secret is not masked


@given(st.lists(st.integers(0, 3000), max_size=30))
def test_masking_changes_nothing_else(cuts: list[int]) -> None:
    stream = b"".join(text_reply("a" * 500, pieces=5).body)  # type: ignore[arg-type]
    assert _through(Redactor([SECRET]), _cut(stream, cuts)) == stream


def test_only_a_possible_start_of_a_secret_is_held_back() -> None:
    redactor = Redactor([SECRET])
    event = sse("ping", {"type": "ping"})
    assert redactor.feed(event) == event  # an SSE event leaves at once
    assert redactor.feed(b"data: sk-ant") == b"data: "  # this could be the key's start
    assert redactor.feed(b"-api03-REAL-secret-value!") == b"*" * len(SECRET) + b"!"
    assert redactor.count == 1
    assert redactor.feed(b"sk-ant-x") == b"sk-ant-x"


def test_headers_are_masked_whole() -> None:
    redactor = Redactor([SECRET])
    assert redactor.mask(b"key " + SECRET) == b"key " + b"*" * len(SECRET)


def _usage(body: bytes, ctype: bytes, cuts: list[int]) -> UsageReader:
    reader = UsageReader(ctype)
    for piece in _cut(body, cuts):
        reader.feed(piece)
    reader.finish()
    return reader


@given(st.lists(st.integers(0, 2000), max_size=30))
def test_usage_from_sse_cut_anywhere(cuts: list[int]) -> None:
    body = b"".join(tool_use_reply("Bash", {"command": "ls"}, model="claude-x",
                                   input_tokens=1234, output_tokens=56).body)  # type: ignore[arg-type]
    reader = _usage(body, b"text/event-stream; charset=utf-8", cuts)
    assert reader.model == "claude-x"
    assert reader.tokens["input_tokens"] == 1234
    assert reader.tokens["output_tokens"] == 56


def test_usage_skips_huge_lines_without_keeping_them() -> None:
    huge = sse("content_block_delta", {"delta": {"text": "x" * 200_000}})
    reader = _usage(huge + b"".join(text_reply("ok").body), b"text/event-stream",  # type: ignore[arg-type]
                    [100, 70_000, 150_000])
    assert reader.model == "claude-test-1" and reader.tokens["output_tokens"] == 7
    assert len(reader._line) == 0


def test_usage_from_json_answers() -> None:
    count = _usage(json.dumps({"input_tokens": 42}).encode(), b"application/json", [3])
    assert count.tokens == {"input_tokens": 42}
    message = _usage(json.dumps({"model": "m", "usage": {"input_tokens": 1,
                                                         "output_tokens": 2}}).encode(),
                     b"application/json", [])
    assert (message.model, message.tokens) == ("m", {"input_tokens": 1, "output_tokens": 2})
    big = _usage(b'{"model": "m", "pad": "' + b"x" * 300_000 + b'"}', b"application/json", [])
    assert big.model is None  # too large to parse: not kept


def test_request_model_only_when_named_first() -> None:
    assert request_model(b'{"model":"claude-opus-4","messages":[]}') == "claude-opus-4"
    assert request_model(b' { "model" : "a\\"b" ,') == 'a"b'
    # Anywhere else it could be prompt text: not read.
    assert request_model(b'{"messages":[{"content":"{\\"model\\":\\"x\\"}"}],"model":"m"}') \
        is None
    assert request_model(b'{"model": 5}') is None
