"""Streamed completions in-process: exact event sequences, SSE framing styles, failures, disconnects."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tollway.mock_upstream import MockUpstream
from tollway.mock_upstream.stream import ConnectionCut

from .conftest import drive, parse_sse
from .test_mock_app import usage

CHUNK = {"id": "chatcmpl-mock-1", "object": "chat.completion.chunk", "created": 1700000000, "model": "m"}


def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0, **extra: Any) -> dict[str, Any]:
    choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {**CHUNK, "choices": [choice], **extra}


def stream_request(knobs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "mock": knobs,
        **extra,
    }


ROLE = {"role": "assistant", "content": ""}


async def test_stream_without_include_usage(app: MockUpstream) -> None:
    exchange = await drive(app, stream_request({"chunks": 2}))
    assert exchange.status == 200
    assert exchange.headers["content-type"] == "text/event-stream"
    assert exchange.complete
    assert exchange.events() == [
        chunk(ROLE),
        chunk({"content": " the"}),
        chunk({"content": " of"}),
        chunk({}, "stop"),
        "[DONE]",
    ]
    assert exchange.raw.endswith(b"\n\ndata: [DONE]\n\n")


async def test_stream_with_include_usage(app: MockUpstream) -> None:
    exchange = await drive(app, stream_request({"chunks": 2}, stream_options={"include_usage": True}))
    assert exchange.events() == [
        chunk(ROLE, usage=None),
        chunk({"content": " the"}, usage=None),
        chunk({"content": " of"}, usage=None),
        chunk({}, "stop", usage=None),
        {**CHUNK, "choices": [], "usage": usage(5, 2)},
        "[DONE]",
    ]


async def test_stream_usage_absent_ignores_include_usage(app: MockUpstream) -> None:
    exchange = await drive(
        app, stream_request({"chunks": 1, "usage": "absent"}, stream_options={"include_usage": True})
    )
    assert exchange.events() == [chunk(ROLE), chunk({"content": " the"}), chunk({}, "stop"), "[DONE]"]


@pytest.mark.parametrize("include_usage", [False, True])
async def test_stream_usage_with_choices(app: MockUpstream, include_usage: bool) -> None:
    request = stream_request(
        {"chunks": 1, "usage": "with_choices"}, stream_options={"include_usage": include_usage}
    )
    extra: dict[str, Any] = {"usage": None} if include_usage else {}
    assert (await drive(app, request)).events() == [
        chunk(ROLE, **extra),
        chunk({"content": " the"}, **extra),
        chunk({}, "stop", usage=usage(5, 1)),
        "[DONE]",
    ]


async def test_stream_n_interleaves_choices(app: MockUpstream) -> None:
    events = (await drive(app, stream_request({"chunks": 1}, n=2))).events()
    assert events == [
        chunk(ROLE, index=0),
        chunk(ROLE, index=1),
        chunk({"content": " the"}, index=0),
        chunk({"content": " the"}, index=1),
        chunk({}, "stop", index=0),
        chunk({}, "stop", index=1),
        "[DONE]",
    ]


async def test_stream_tool_call(app: MockUpstream) -> None:
    events = (await drive(app, stream_request({"tool_call": True}))).events()
    start = {
        "index": 0,
        "id": "call_mock_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert events[0] == chunk({"role": "assistant", "content": None, "tool_calls": [start]})
    pieces = [e["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for e in events[1:4]]
    assert len(pieces) == 3
    assert "".join(pieces) == '{"city": "Paris"}'
    assert events[4:] == [chunk({}, "tool_calls"), "[DONE]"]


async def test_stream_reasoning_then_content(app: MockUpstream) -> None:
    events = (await drive(app, stream_request({"chunks": 1, "reasoning_text": True}))).events()
    deltas = [e["choices"][0]["delta"] for e in events[:-1]]
    assert deltas == [
        ROLE,
        {"reasoning_content": " on"},
        {"reasoning_content": " that"},
        {"reasoning_content": " with"},
        {"content": " the"},
        {},
    ]


async def test_stream_echo_is_one_chunk(app: MockUpstream) -> None:
    request = stream_request({"echo": True})
    events = (await drive(app, request)).events()
    assert len(events) == 4
    assert events[1]["choices"][0]["delta"]["content"].startswith('{"model":"m","messages":')


async def test_crlf_style(app: MockUpstream) -> None:
    raw = (await drive(app, stream_request({"chunks": 1, "sse_style": "crlf"}))).raw
    assert raw.count(b"\r\n\r\n") == 4
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert raw.endswith(b"data: [DONE]\r\n\r\n")


@pytest.mark.parametrize("style", ["multiline", "comments", "crlf+multiline+comments"])
async def test_styles_parse_to_the_same_events(app: MockUpstream, style: str) -> None:
    plain = (await drive(app, stream_request({"chunks": 2}))).events()
    exchange = await drive(app, stream_request({"chunks": 2, "sse_style": style}))
    events = exchange.events()
    for event in events[:-1]:
        event["id"] = "chatcmpl-mock-1"
    assert events == plain
    if "multiline" in style:
        assert exchange.raw.count(b"data: ") == 2 * 4 + 1
    if "comments" in style:
        assert exchange.raw.startswith(b": ok")
        assert exchange.raw.count(b": keep-alive") == 4


async def test_no_trailing_blank_and_no_done(app: MockUpstream) -> None:
    raw = (await drive(app, stream_request({"chunks": 1, "sse_style": "no_trailing_blank"}))).raw
    assert raw.endswith(b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n')
    exchange = await drive(app, stream_request({"chunks": 1, "sse_style": "no_done+no_trailing_blank"}))
    events, pending = parse_sse(exchange.raw)
    assert len(events) == 2
    assert pending is not None
    assert '"finish_reason":"stop"' in pending
    assert exchange.raw.endswith(b"}\n")
    assert b"[DONE]" not in exchange.raw


async def test_split_style_cuts_between_cr_and_lf(app: MockUpstream) -> None:
    whole = (await drive(app, stream_request({"chunks": 2, "sse_style": "crlf"}))).raw
    exchange = await drive(app, stream_request({"chunks": 2, "sse_style": "crlf+split"}))
    assert exchange.raw.replace(b"chatcmpl-mock-2", b"chatcmpl-mock-1") == whole
    assert len(exchange.bodies) > 5 * 3
    assert any(part.endswith(b"\r") for part in exchange.bodies)


async def test_error_after(app: MockUpstream) -> None:
    exchange = await drive(app, stream_request({"chunks": 4, "error_after": 1}))
    assert exchange.complete
    error = {"message": "mock upstream failure", "type": "server_error", "param": None, "code": "mock_error"}
    assert exchange.events() == [chunk(ROLE), chunk({"content": " the"}), {"error": error}]
    assert exchange.raw.endswith(b'"code":"mock_error"}}\n\n')


async def test_cut_after_leaves_the_body_unfinished(app: MockUpstream) -> None:
    sent: list[bytes] = []

    async def receive() -> dict[str, Any]:
        if not sent:
            sent.append(b"")
            return {"type": "http.request", "body": b'{"model":"demo:cut_after=2","stream":true}'}
        await asyncio.sleep(10)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body":
            assert message["more_body"] is True
            sent.append(message["body"])

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}
    with pytest.raises(ConnectionCut):
        await app(scope, receive, send)
    events, pending = parse_sse(b"".join(sent))
    assert pending is None
    assert len(events) == 3  # role chunk + 2 content chunks
    stats = (await drive(app, b"", method="GET", path="/mock/stats")).json()
    assert (stats["streams_started"], stats["active_streams"]) == (1, 0)


async def test_disconnect_stops_a_slow_stream_promptly(app: MockUpstream) -> None:
    gone = asyncio.Event()
    request = stream_request({"chunks": 50, "chunk_delay_ms": 2000})
    task = asyncio.ensure_future(drive(app, request, disconnect=gone))
    await asyncio.sleep(0.05)
    stats = (await drive(app, b"", method="GET", path="/mock/stats")).json()
    assert stats["active_streams"] == 1
    started = time.monotonic()
    gone.set()
    exchange = await asyncio.wait_for(task, 1)
    assert time.monotonic() - started < 0.1
    assert not exchange.complete
    stats = (await drive(app, b"", method="GET", path="/mock/stats")).json()
    assert stats == {
        "requests": 1,
        "streams_started": 1,
        "streams_completed": 0,
        "streams_cancelled": 1,
        "active_streams": 0,
    }


async def test_completed_stream_counts_and_delays_apply(app: MockUpstream) -> None:
    started = time.monotonic()
    request = stream_request({"chunks": 3, "headers_delay_ms": 20, "ttft_ms": 20, "chunk_delay_ms": 10})
    assert (await drive(app, request)).complete
    assert time.monotonic() - started >= 0.06
    stats = (await drive(app, b"", method="GET", path="/mock/stats")).json()
    assert (stats["streams_started"], stats["streams_completed"], stats["active_streams"]) == (1, 1, 0)
