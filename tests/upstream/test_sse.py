from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.upstream.sse import SSEEvent, SSEParser


def parse(*chunks: bytes, close: bool = True) -> list[SSEEvent]:
    parser = SSEParser()
    events = [e for chunk in chunks for e in parser.feed(chunk)]
    if close:
        events += parser.close()
    return events


def datas(events: list[SSEEvent]) -> list[bytes]:
    return [e.data for e in events]


STREAM = b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n'


def test_plain_lf_stream() -> None:
    assert datas(parse(STREAM)) == [b'{"a":1}', b'{"b":2}', b"[DONE]"]


def test_crlf_and_lone_cr_line_endings() -> None:
    assert datas(parse(STREAM.replace(b"\n", b"\r\n"))) == [b'{"a":1}', b'{"b":2}', b"[DONE]"]
    assert datas(parse(STREAM.replace(b"\n", b"\r"))) == [b'{"a":1}', b'{"b":2}', b"[DONE]"]


def test_crlf_split_between_reads_is_one_line_ending() -> None:
    # "\r" ends one read and "\n" starts the next: still one line break, not an empty line.
    events = parse(b"data: x\r", b"\ndata: y\r\n\r\n")
    assert datas(events) == [b"x\ny"]


def test_comments_are_ignored() -> None:
    events = parse(b": ok\n\n: keep-alive\ndata: 1\n: between\n\n")
    assert datas(events) == [b"1"]


def test_several_data_lines_join_with_newline() -> None:
    events = parse(b'data: {"a":\ndata: 1}\n\n')
    assert datas(events) == [b'{"a":\n1}']


def test_missing_trailing_blank_line_is_flushed_on_close() -> None:
    assert datas(parse(b"data: 1\n\ndata: 2")) == [b"1", b"2"]
    assert datas(parse(b"data: 1\n\ndata: 2\n")) == [b"1", b"2"]
    assert datas(parse(b"data: 1\n\ndata: 2", close=False)) == [b"1"]


def test_field_parsing_rules() -> None:
    events = parse(b"event: error\nid: 7\ndata:no-space\ndata:  two spaces\nretry: 5\nbogus: x\n\n")
    assert events == [SSEEvent(b"no-space\n two spaces", b"error", b"7")]
    assert parse(b"data\n\n") == [SSEEvent(b"")]  # a bare field name is a field with an empty value


def test_byte_order_mark_is_dropped() -> None:
    assert datas(parse(b"\xef\xbb\xbfdata: 1\n\n")) == [b"1"]


def test_empty_event_without_data_is_not_dispatched() -> None:
    assert parse(b"event: ping\n\n\n\n") == []


@pytest.mark.parametrize("seed", range(30))
def test_any_split_of_the_bytes_gives_the_same_events(seed: int) -> None:
    rng = random.Random(seed)
    print(f"seed={seed}")
    body = (
        b": hello\r\n"
        + b'data: {"x":"a\\nb"}\r\n\r\n'
        + b"data: line1\r\ndata: line2\r\n\r\n"
        + b"event: e\ndata: 3\n\n"
        + b"data: [DONE]"
    )
    expected = datas(parse(body))
    cuts = sorted(rng.sample(range(1, len(body)), k=rng.randint(1, 20)))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    assert datas(parse(*pieces)) == expected == [b'{"x":"a\\nb"}', b"line1\nline2", b"3", b"[DONE]"]


_text = st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b""))
_field = st.sampled_from([b"data: ", b"data:", b"event: ", b"id: ", b": ", b"retry: "])
_line_end = st.sampled_from([b"\n", b"\r\n", b"\r"])


@st.composite
def _streams(draw: st.DrawFn) -> list[bytes]:
    """A stream as reads: usually one whole single-line event per read (the parser's fast path),
    with other fields, line endings and reads split anywhere mixed in."""
    reads: list[bytes] = []
    for _ in range(draw(st.integers(0, 8))):
        if draw(st.booleans()):
            reads.append(b"data: " + draw(_text) + b"\n\n")
            continue
        lines = [draw(_field) + draw(_text) for _ in range(draw(st.integers(1, 3)))]
        end = draw(_line_end)
        event = end.join(lines) + end + end
        cut = draw(st.integers(0, len(event)))
        reads += [event[:cut], event[cut:]]
    return reads


@settings(max_examples=400)
@given(reads=_streams())
def test_whole_event_reads_parse_as_byte_by_byte(reads: list[bytes]) -> None:
    """The one-event-per-read fast path gives exactly the events of the general parser (fed a byte
    at a time, which never takes it)."""
    fast = parse(*reads)
    whole = b"".join(reads)
    slow = parse(*(whole[i : i + 1] for i in range(len(whole))))
    assert fast == slow
