"""`runtime/frames`: the multiplexed stream, reassembled however it is split."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sidecar_gen.runtime import (
    frames,
)


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
