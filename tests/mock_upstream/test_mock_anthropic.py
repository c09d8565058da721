"""The mock's Anthropic Messages API in-process: bodies, usage with cache fields, thinking and tool_use
blocks, every stream event sequence, auth, validation and error shapes, count_tokens, the fault knobs,
and the official `anthropic` SDK parsing all of it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib
import re
import time
from typing import Any

import httpx
import pytest

from tollway.mock_upstream import MockUpstream, create_app
from tollway.mock_upstream.stream import ConnectionCut

from .conftest import Exchange, drive
from .test_mock_responses import named_events

PATH = "/v1/messages"
COUNT_PATH = "/v1/messages/count_tokens"
VERSION = {"anthropic-version": "2023-06-01"}
KEY = "sk-ant-mock-0123456789abcdef"
WORDS = [" the", " of", " and", " to", " in", " is", " it", " for"]
THINKING = [" on", " that", " with"]
SIGNATURE = base64.b64encode(hashlib.sha256("".join(THINKING).encode()).digest()).decode()
# "Say hi": 5 per message + 6 characters // 4.
PROMPT = 6


def request(knobs: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-mock",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Say hi"}],
    }
    if knobs is not None:
        body["mock"] = knobs
    body.update(extra)
    return body


async def respond(
    app: MockUpstream,
    body: bytes | dict[str, Any],
    *,
    path: str = PATH,
    headers: dict[str, str] | None = None,
    disconnect: asyncio.Event | None = None,
) -> Exchange:
    return await drive(
        app, body, path=path, headers=headers if headers is not None else VERSION, disconnect=disconnect
    )


def usage(
    input_tokens: int = PROMPT,
    output: int | None = None,
    *,
    read: int = 0,
    written: int = 0,
    one_hour: int = 0,
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": written - one_hour,
            "ephemeral_1h_input_tokens": one_hour,
        },
    }
    if output is not None:
        found["output_tokens"] = output
    return found


def error(type_: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}}


def start(usage_: Any, serial: int = 1, model: str = "claude-mock") -> tuple[str, Any]:
    message = {
        "id": f"msg_mock_{serial}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage_,
    }
    return ("message_start", {"type": "message_start", "message": message})


def block_start(index: int, block: dict[str, Any]) -> tuple[str, Any]:
    return ("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})


def delta(index: int, **fields: Any) -> tuple[str, Any]:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": fields})


def text_delta(index: int, text: str) -> tuple[str, Any]:
    return delta(index, type="text_delta", text=text)


def block_stop(index: int) -> tuple[str, Any]:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


def closing(stop_reason: str, usage_: Any) -> list[tuple[str, Any]]:
    message_delta = {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": usage_,
    }
    return [("message_delta", message_delta), ("message_stop", {"type": "message_stop"})]


PING = ("ping", {"type": "ping"})
THINKING_EVENTS = [
    block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
    PING,
    *[delta(0, type="thinking_delta", thinking=word) for word in THINKING],
    delta(0, type="signature_delta", signature=SIGNATURE),
    block_stop(0),
]
TOOL_PIECES = ['{"city"', ': "Par', 'is"}']


def tool_events(index: int, serial: int) -> list[tuple[str, Any]]:
    opening = {"type": "tool_use", "id": f"toolu_mock_{serial}", "name": "get_weather", "input": {}}
    pieces = [delta(index, type="input_json_delta", partial_json=piece) for piece in TOOL_PIECES]
    return [block_start(index, opening), *([] if index else [PING]), *pieces, block_stop(index)]


async def stats(app: MockUpstream) -> dict[str, int]:
    result: dict[str, int] = (await drive(app, b"", method="GET", path="/mock/stats")).json()
    return result


# -- non-stream -------------------------------------------------------------------------------------


async def test_default_body_exactly(app: MockUpstream) -> None:
    exchange = await respond(app, request())
    assert exchange.status == 200
    assert exchange.headers["content-type"] == "application/json"
    assert exchange.headers["request-id"] == "req_mock_1"
    assert exchange.json() == {
        "id": "msg_mock_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-mock",
        "content": [{"type": "text", "text": "".join(WORDS)}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage(PROMPT, 8),
    }
    assert (await respond(app, request())).json()["id"] == "msg_mock_2"


async def test_usage_maps_the_knobs_to_anthropic_fields(app: MockUpstream) -> None:
    knobs = {
        "prompt_tokens": 100,
        "completion_tokens": 42,
        "cached_tokens": 30,
        "cache_write_tokens": 20,
        "cache_write_1h_tokens": 5,
    }
    body = (await respond(app, request(knobs))).json()
    # input_tokens is the knob verbatim: Anthropic's count excludes cache reads and writes.
    assert body["usage"] == usage(100, 42, read=30, written=20, one_hour=5)
    plain = (await respond(app, request({"cache_write_tokens": 9}))).json()["usage"]
    assert plain["cache_creation"] == {"ephemeral_5m_input_tokens": 9, "ephemeral_1h_input_tokens": 0}
    # Knobs work from the model name too.
    named = (await respond(app, request(model="claude:cached_tokens=3,chunks=2"))).json()
    assert (named["model"], named["usage"]) == ("claude:cached_tokens=3,chunks=2", usage(PROMPT, 2, read=3))


async def test_prompt_estimate_counts_system_and_blocks(app: MockUpstream) -> None:
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "abcdefgh"}]},
        {"role": "assistant", "content": "abcd"},
    ]
    body = request(system=[{"type": "text", "text": "abcd"}], messages=messages)
    # 3 messages (system counted as one) x 5 + 16 characters // 4.
    assert (await respond(app, body)).json()["usage"]["input_tokens"] == 19


async def test_one_hour_writes_cannot_exceed_the_writes(app: MockUpstream) -> None:
    exchange = await respond(app, request({"cache_write_tokens": 2, "cache_write_1h_tokens": 3}))
    assert exchange.status == 400
    body = exchange.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "cache_write_1h_tokens" in body["error"]["message"]
    negative = (await respond(app, request({"cache_write_1h_tokens": -1}))).json()
    assert "`cache_write_1h_tokens` must be between 0 and" in negative["error"]["message"]


async def test_max_tokens_cuts_the_text(app: MockUpstream) -> None:
    body = (await respond(app, request(max_tokens=3))).json()
    assert (body["content"], body["stop_reason"]) == (
        [{"type": "text", "text": "".join(WORDS[:3])}],
        "max_tokens",
    )
    assert body["usage"]["output_tokens"] == 3
    # Thinking words count against max_tokens too.
    body = (await respond(app, request({"reasoning_text": True}, max_tokens=5))).json()
    assert body["content"][1] == {"type": "text", "text": "".join(WORDS[:2])}
    assert (body["stop_reason"], body["usage"]["output_tokens"]) == ("max_tokens", 5)
    body = (await respond(app, request({"chunks": 3}, max_tokens=3))).json()
    assert body["stop_reason"] == "end_turn"


async def test_thinking_block(app: MockUpstream) -> None:
    body = (await respond(app, request({"reasoning_text": True, "chunks": 2}))).json()
    assert body["content"] == [
        {"type": "thinking", "thinking": "".join(THINKING), "signature": SIGNATURE},
        {"type": "text", "text": "".join(WORDS[:2])},
    ]
    assert (body["stop_reason"], body["usage"]["output_tokens"]) == ("end_turn", 5)


async def test_tool_use_block(app: MockUpstream) -> None:
    body = (await respond(app, request({"tool_call": True}))).json()
    assert body["content"] == [
        {"type": "tool_use", "id": "toolu_mock_1", "name": "get_weather", "input": {"city": "Paris"}}
    ]
    assert (body["stop_reason"], body["usage"]["output_tokens"]) == ("tool_use", 3)
    both = (await respond(app, request({"tool_call": True, "reasoning_text": True}))).json()
    assert [block["type"] for block in both["content"]] == ["thinking", "tool_use"]
    assert both["usage"]["output_tokens"] == 6


async def test_echo(app: MockUpstream) -> None:
    sent = request({"echo": True})
    body = (await respond(app, sent)).json()
    assert body["content"][0]["text"].startswith('{"model":"claude-mock","max_tokens":1024,')


async def test_usage_absent_and_override(app: MockUpstream) -> None:
    body = (await respond(app, request({"usage": "absent", "cached_tokens": 4}))).json()
    assert body["usage"] == usage(PROMPT, read=4)  # the input fields stay; no output_tokens
    weird = {"input_tokens": -1, "output_tokens": 1.5}
    assert (await respond(app, request({"usage_override": weird}))).json()["usage"] == weird
    assert (await respond(app, request({"usage_override": None}))).json()["usage"] is None


async def test_non_stream_waits_as_long_as_the_stream_would(app: MockUpstream) -> None:
    started = time.monotonic()
    knobs = {"chunks": 3, "headers_delay_ms": 20, "ttft_ms": 20, "chunk_delay_ms": 10}
    assert (await respond(app, request(knobs))).status == 200
    assert time.monotonic() - started >= 0.06


# -- stream -----------------------------------------------------------------------------------------


async def test_stream_event_sequence_exactly(app: MockUpstream) -> None:
    exchange = await respond(app, request({"chunks": 3}, stream=True))
    assert exchange.status == 200
    assert exchange.complete
    assert exchange.headers["content-type"] == "text/event-stream"
    assert exchange.headers["request-id"] == "req_mock_1"
    assert exchange.raw.startswith(b'event: message_start\ndata: {"type":"message_start",')
    assert exchange.raw.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    assert b"[DONE]" not in exchange.raw
    assert named_events(exchange.raw) == [
        start(usage(PROMPT, 1)),
        block_start(0, {"type": "text", "text": ""}),
        PING,
        *[text_delta(0, word) for word in WORDS[:3]],
        block_stop(0),
        *closing("end_turn", {"output_tokens": 3}),
    ]
    assert (await stats(app))["streams_completed"] == 1


async def test_stream_usage_with_cache_fields(app: MockUpstream) -> None:
    knobs = {
        "chunks": 1,
        "prompt_tokens": 50,
        "cached_tokens": 7,
        "cache_write_tokens": 3,
        "cache_write_1h_tokens": 1,
    }
    events = named_events((await respond(app, request(knobs, stream=True))).raw)
    assert events[0] == start(usage(50, 1, read=7, written=3, one_hour=1))
    assert events[-2] == closing("end_turn", {"output_tokens": 1})[0]
    events = named_events(
        (await respond(app, request({"chunks": 4, "completion_tokens": 99}, stream=True))).raw
    )
    assert events[-2][1]["usage"] == {"output_tokens": 99}


async def test_stream_cut_by_max_tokens(app: MockUpstream) -> None:
    events = named_events((await respond(app, request(stream=True, max_tokens=2))).raw)
    assert [e for e in events if e[0] == "content_block_delta"] == [text_delta(0, w) for w in WORDS[:2]]
    assert events[-2:] == closing("max_tokens", {"output_tokens": 2})


async def test_stream_thinking_then_text(app: MockUpstream) -> None:
    events = named_events(
        (await respond(app, request({"chunks": 2, "reasoning_text": True}, stream=True))).raw
    )
    assert events == [
        start(usage(PROMPT, 1)),
        *THINKING_EVENTS,
        block_start(1, {"type": "text", "text": ""}),
        *[text_delta(1, word) for word in WORDS[:2]],
        block_stop(1),
        *closing("end_turn", {"output_tokens": 5}),
    ]


async def test_stream_tool_use(app: MockUpstream) -> None:
    events = named_events((await respond(app, request({"tool_call": True}, stream=True))).raw)
    assert events == [
        start(usage(PROMPT, 1)),
        *tool_events(0, 1),
        *closing("tool_use", {"output_tokens": 3}),
    ]
    assert "".join(e[1]["delta"]["partial_json"] for e in events if e[0] == "content_block_delta") == (
        '{"city": "Paris"}'
    )
    knobs = {"tool_call": True, "reasoning_text": True}
    events = named_events((await respond(app, request(knobs, stream=True))).raw)
    assert events == [
        start(usage(PROMPT, 1), serial=2),
        *THINKING_EVENTS,
        *tool_events(1, 2),
        *closing("tool_use", {"output_tokens": 6}),
    ]


async def test_stream_without_any_text(app: MockUpstream) -> None:
    events = named_events((await respond(app, request({"chunks": 0}, stream=True))).raw)
    assert events == [
        start(usage(PROMPT, 1)),
        block_start(0, {"type": "text", "text": ""}),
        PING,
        block_stop(0),
        *closing("end_turn", {"output_tokens": 0}),
    ]


async def test_stream_usage_absent(app: MockUpstream) -> None:
    events = named_events((await respond(app, request({"chunks": 2, "usage": "absent"}, stream=True))).raw)
    assert events[0] == start(usage(PROMPT))  # input usage only: no output_tokens at all
    assert events[-2:] == closing("end_turn", {})
    assert "output_tokens" not in str(events)


async def test_stream_usage_override(app: MockUpstream) -> None:
    weird = {"output_tokens": "lots"}
    events = named_events(
        (await respond(app, request({"chunks": 1, "usage_override": weird}, stream=True))).raw
    )
    assert events[0] == start(weird)
    assert events[-2:] == closing("end_turn", weird)


async def test_error_after(app: MockUpstream) -> None:
    exchange = await respond(app, request({"chunks": 4, "error_after": 2}, stream=True))
    assert exchange.complete
    assert exchange.raw.endswith(
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )
    assert named_events(exchange.raw) == [
        start(usage(PROMPT, 1)),
        block_start(0, {"type": "text", "text": ""}),
        PING,
        *[text_delta(0, word) for word in WORDS[:2]],
        ("error", error("overloaded_error", "Overloaded")),
    ]
    # After every delta: the error takes the place of the closing events.
    events = named_events((await respond(app, request({"chunks": 2, "error_after": 2}, stream=True))).raw)
    assert [name for name, _ in events][-3:] == ["content_block_delta", "content_block_delta", "error"]
    # error_after counts input_json deltas; thinking deltas come first and are not counted.
    knobs = {"tool_call": True, "reasoning_text": True, "error_after": 1}
    events = named_events((await respond(app, request(knobs, stream=True))).raw)
    assert events[-2:] == [tool_events(1, 3)[1], ("error", error("overloaded_error", "Overloaded"))]


async def test_cut_after_leaves_the_body_unfinished(app: MockUpstream) -> None:
    sent: list[bytes] = []
    raw = (
        b'{"model":"claude:cut_after=2","max_tokens":50,"stream":true,'
        b'"messages":[{"role":"user","content":"x"}]}'
    )

    async def receive() -> dict[str, Any]:
        if not sent:
            sent.append(b"")
            return {"type": "http.request", "body": raw}
        await asyncio.sleep(10)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body":
            assert message["more_body"] is True
            sent.append(message["body"])

    scope = {
        "type": "http",
        "method": "POST",
        "path": PATH,
        "headers": [(b"anthropic-version", b"2023-06-01")],
    }
    with pytest.raises(ConnectionCut):
        await app(scope, receive, send)
    assert [name for name, _ in named_events(b"".join(sent))] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
    ]
    found = await stats(app)
    assert (found["streams_started"], found["active_streams"]) == (1, 0)


async def test_pacing(app: MockUpstream) -> None:
    started = time.monotonic()
    knobs = {"chunks": 3, "headers_delay_ms": 20, "ttft_ms": 20, "chunk_delay_ms": 10}
    exchange = await respond(app, request(knobs, stream=True))
    assert exchange.complete
    assert time.monotonic() - started >= 0.06
    found = await stats(app)
    assert (found["streams_started"], found["streams_completed"], found["active_streams"]) == (1, 1, 0)


async def test_message_start_comes_before_the_time_to_first_token(app: MockUpstream) -> None:
    gone = asyncio.Event()
    task = asyncio.ensure_future(respond(app, request({"ttft_ms": 5000}, stream=True), disconnect=gone))
    await asyncio.sleep(0.1)
    gone.set()
    exchange = await asyncio.wait_for(task, 1)
    assert [name for name, _ in named_events(exchange.raw)] == [
        "message_start",
        "content_block_start",
        "ping",
    ]
    found = await stats(app)
    assert (found["streams_cancelled"], found["active_streams"]) == (1, 0)


@pytest.mark.parametrize(
    "style", ["crlf", "multiline", "comments", "no_trailing_blank", "crlf+split", "garbage"]
)
async def test_framing_styles_carry_the_same_events(app: MockUpstream, style: str) -> None:
    plain = named_events((await respond(app, request({"chunks": 3}, stream=True))).raw)
    exchange = await respond(app, request({"chunks": 3, "sse_style": style}, stream=True))
    raw = exchange.raw
    if style == "garbage":
        raw = re.sub(rb"data: (not json|\{\"broken\"|<html>)\r?\n\r?\n", b"", raw)
        assert raw != exchange.raw
    assert named_events(raw.replace(b"_mock_2", b"_mock_1")) == plain
    if "crlf" in style:
        assert b"event: message_start\r\ndata: " in exchange.raw
    if style == "no_trailing_blank":
        assert exchange.raw.endswith(b"}\n") and not exchange.raw.endswith(b"\n\n")


# -- auth, headers, validation, errors --------------------------------------------------------------


@pytest.mark.parametrize("credentials", [{"x-api-key": KEY}, {"authorization": f"Bearer {KEY}"}])
async def test_the_key_as_x_api_key_or_bearer(credentials: dict[str, str]) -> None:
    app = create_app(api_key=KEY)
    exchange = await respond(app, request(), headers={**VERSION, **credentials})
    assert exchange.status == 200
    counted = await respond(app, request(), path=COUNT_PATH, headers={**VERSION, **credentials})
    assert counted.json() == {"input_tokens": PROMPT}


@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        ({}, "x-api-key header is required"),
        ({"x-api-key": "sk-wrong-key"}, "invalid x-api-key"),
        ({"authorization": "Bearer sk-wrong-key"}, "invalid x-api-key"),
        ({"authorization": f"Basic {KEY}"}, "x-api-key header is required"),
    ],
)
@pytest.mark.parametrize("path", [PATH, COUNT_PATH])
async def test_missing_or_wrong_key_is_401(credentials: dict[str, str], message: str, path: str) -> None:
    app = create_app(api_key=KEY)
    exchange = await respond(app, request(), path=path, headers={**VERSION, **credentials})
    assert exchange.status == 401
    assert exchange.json() == error("authentication_error", message)
    assert b"sk-wrong" not in exchange.raw


async def test_inspection_off_turns_a_wrong_key_away_before_the_body() -> None:
    app = create_app(api_key=KEY, inspection=False)
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body was read")

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": PATH, "headers": [(b"x-api-key", b"nope")]}
    await app(scope, receive, send)
    assert sent[0]["status"] == 401
    assert app.last_body is None and app.last_headers == {}


async def test_anthropic_headers_are_required_and_recorded(app: MockUpstream) -> None:
    missing = await respond(app, request(), headers={})
    assert missing.status == 400
    assert missing.json() == error("invalid_request_error", "anthropic-version: header is required")
    headers = {**VERSION, "anthropic-beta": "prompt-caching-2024-07-31,extended-cache-ttl-2025-04-11"}
    assert (await respond(app, request(), headers=headers)).status == 200
    last = (await drive(app, b"", method="GET", path="/mock/requests/last")).json()
    assert last["headers"]["anthropic-version"] == "2023-06-01"
    assert last["headers"]["anthropic-beta"] == "prompt-caching-2024-07-31,extended-cache-ttl-2025-04-11"
    assert last["body"]["messages"] == [{"role": "user", "content": "Say hi"}]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": None}, "model: Field required"),
        ({"model": 7}, "model: Input should be a valid non-empty string"),
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
        ({"max_tokens": "10"}, "max_tokens: Input should be a valid integer"),
        ({"max_tokens": True}, "max_tokens: Input should be a valid integer"),
        ({"messages": None}, "messages: Field required"),
        ({"messages": []}, "messages: at least one message is required"),
        ({"messages": "hi"}, "messages: Input should be a valid list"),
        ({"messages": ["hi"]}, "messages.0: Input should be a valid dictionary"),
        (
            {"messages": [{"role": "system", "content": "x"}]},
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
        ({"messages": [{"role": "user"}]}, "messages.0.content: Field required"),
        ({"stream": "yes"}, "stream: Input should be a valid boolean"),
    ],
)
async def test_invalid_requests_are_400(app: MockUpstream, changes: dict[str, Any], message: str) -> None:
    body = {k: v for k, v in {**request(), **changes}.items() if v is not None}
    exchange = await respond(app, body)
    assert exchange.status == 400
    assert exchange.json() == error("invalid_request_error", message)


async def test_bad_json_and_bad_knobs_are_400_in_anthropic_shape(app: MockUpstream) -> None:
    for raw in (b"{not json", b"[1, 2]"):
        exchange = await respond(app, raw)
        assert exchange.status == 400
        assert exchange.json()["type"] == "error"
        assert exchange.json()["error"]["type"] == "invalid_request_error"
    exchange = await respond(app, request({"no_such_knob": 1}))
    assert exchange.status == 400
    assert exchange.json()["error"]["message"].startswith("Unknown mock knob 'no_such_knob'")


@pytest.mark.parametrize(
    ("status", "type_", "message"),
    [
        (400, "invalid_request_error", "mock upstream refused the request (400)"),
        (401, "authentication_error", "invalid x-api-key"),
        (402, "billing_error", "Your credit balance is too low to access the Anthropic API."),
        (403, "permission_error", "Your API key does not have permission to use this resource."),
        (404, "not_found_error", "model: claude-mock"),
        (413, "request_too_large", "Request exceeds the maximum allowed number of bytes."),
        (500, "api_error", "Internal server error"),
        (503, "api_error", "Internal server error"),
        (504, "timeout_error", "Request timed out"),
        (529, "overloaded_error", "Overloaded"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_fail_knob_in_anthropic_shape(
    app: MockUpstream, status: int, type_: str, message: str, stream: bool
) -> None:
    exchange = await respond(app, request({"fail": status}, stream=stream))
    assert exchange.status == status
    assert exchange.json() == error(type_, message)
    assert "retry-after" not in exchange.headers


async def test_fail_429_says_when_to_retry(app: MockUpstream) -> None:
    started = time.monotonic()
    exchange = await respond(app, request({"fail": 429, "headers_delay_ms": 30}))
    assert time.monotonic() - started >= 0.03
    assert exchange.status == 429
    assert exchange.headers["retry-after"] == "1"
    assert exchange.json()["error"]["type"] == "rate_limit_error"
    counted = await respond(app, request({"fail": 529}), path=COUNT_PATH)
    assert (counted.status, counted.json()) == (529, error("overloaded_error", "Overloaded"))


# -- count_tokens -----------------------------------------------------------------------------------


async def test_count_tokens(app: MockUpstream) -> None:
    body = {"model": "claude-mock", "messages": [{"role": "user", "content": "Say hi"}]}
    exchange = await respond(app, body, path=COUNT_PATH)
    assert (exchange.status, exchange.json()) == (200, {"input_tokens": PROMPT})
    # The same number /messages reports as input_tokens.
    bigger = {**body, "system": "You are terse and precise."}
    counted = (await respond(app, bigger, path=COUNT_PATH)).json()["input_tokens"]
    assert counted == (await respond(app, request(system=bigger["system"]))).json()["usage"]["input_tokens"]
    assert counted == 2 * 5 + (6 + 26) // 4
    knob = await respond(app, {**body, "mock": {"prompt_tokens": 1234}}, path=COUNT_PATH)
    assert knob.json() == {"input_tokens": 1234}
    missing = await respond(app, {"model": "claude-mock"}, path=COUNT_PATH)
    assert (missing.status, missing.json()) == (
        400,
        error("invalid_request_error", "messages: Field required"),
    )
    # count_tokens answers are not messages: only the one /messages call above took a serial.
    assert (await respond(app, request())).json()["id"] == "msg_mock_2"


# -- routing ----------------------------------------------------------------------------------------


async def test_routing(app: MockUpstream, client: httpx.AsyncClient) -> None:
    body = request()
    beta = await client.post("/v1/messages?beta=true", json=body, headers=VERSION)
    assert (beta.status_code, beta.json()["type"]) == (200, "message")
    counted = await client.post("/v1/messages/count_tokens?beta=true", json=body, headers=VERSION)
    assert counted.json() == {"input_tokens": PROMPT}
    for path in ("/anthropic/v1/messages", "/v1/messages/", "messages"):
        assert (await respond(app, body, path=path)).json()["type"] == "message"
    # The other surfaces are untouched.
    chat = await client.post("/v1/chat/completions", json={"model": "m", "messages": body["messages"]})
    assert chat.json()["object"] == "chat.completion"
    completions = await client.post("/v1/completions", json={"model": "m", "prompt": "x"})
    assert completions.json()["object"] == "text_completion"
    responses = await client.post("/v1/responses", json={"model": "m", "input": "x"})
    assert responses.json()["object"] == "response"
    assert (await client.get("/v1/messages")).status_code == 404
    assert (await client.post("/v1/messages/batches", json=body, headers=VERSION)).status_code == 404


# -- the official SDK -------------------------------------------------------------------------------


def _sdk() -> Any:
    return importlib.import_module("anthropic")  # a test dependency (pyproject's [test] extra)


def _sdk_client(sdk: Any, app: MockUpstream) -> Any:
    # The SDK's http client (httpx2 in anthropic >= 2, httpx before) with the mock in-process.
    transport_module: Any
    try:
        transport_module = importlib.import_module("httpx2")
    except ImportError:
        transport_module = httpx
    http_client = transport_module.AsyncClient(transport=transport_module.ASGITransport(app=app))
    return sdk.AsyncAnthropic(api_key=KEY, base_url="http://mock", http_client=http_client, max_retries=0)


async def test_the_anthropic_sdk_parses_the_answers() -> None:
    sdk = _sdk()
    app = create_app(api_key=KEY)
    client = _sdk_client(sdk, app)
    messages = [{"role": "user", "content": "Say hi"}]
    knobs = "reasoning_text=true,cached_tokens=5,cache_write_tokens=7,cache_write_1h_tokens=2,chunks=3"
    message = await client.messages.create(model=f"claude:{knobs}", max_tokens=100, messages=messages)
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert (message.content[0].thinking, message.content[0].signature) == ("".join(THINKING), SIGNATURE)
    assert message.content[1].text == "".join(WORDS[:3])
    assert (message.id, message.stop_reason, message.stop_sequence) == ("msg_mock_1", "end_turn", None)
    got = message.usage
    assert (got.input_tokens, got.output_tokens) == (PROMPT, 6)
    assert (got.cache_read_input_tokens, got.cache_creation_input_tokens) == (5, 7)
    assert (got.cache_creation.ephemeral_5m_input_tokens, got.cache_creation.ephemeral_1h_input_tokens) == (
        5,
        2,
    )
    # Older SDKs send the key as x-api-key, anthropic 2.x as a bearer token: the mock takes both.
    sent = app.last_headers
    assert KEY in (sent.get("x-api-key"), sent.get("authorization", "").removeprefix("Bearer "))
    assert sent["anthropic-version"]

    # A stream with thinking and a tool call, accumulated by the SDK's own stream helper.
    seen: list[str] = []
    async with client.messages.stream(
        model="claude:tool_call=true,reasoning_text=true,cached_tokens=4", max_tokens=100, messages=messages
    ) as stream:
        async for event in stream:
            seen.append(event.type)
        final = await stream.get_final_message()
    assert "input_json" in seen and "thinking" in seen and "signature" in seen
    assert [block.type for block in final.content] == ["thinking", "tool_use"]
    assert (final.content[1].name, final.content[1].input, final.content[1].id) == (
        "get_weather",
        {"city": "Paris"},
        "toolu_mock_2",
    )
    assert (final.stop_reason, final.usage.output_tokens, final.usage.cache_read_input_tokens) == (
        "tool_use",
        6,
        4,
    )

    # Raw events through the low-level stream (the SDK drops `ping` itself).
    raw = await client.messages.create(
        model="claude:chunks=2", max_tokens=100, messages=messages, stream=True
    )
    types = [event.type async for event in raw]
    assert types == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]

    counted = await client.messages.count_tokens(model="claude", messages=messages)
    assert counted.input_tokens == PROMPT

    # The beta client adds ?beta=true and the anthropic-beta header.
    beta = await client.beta.messages.create(
        model="claude:chunks=1", max_tokens=10, messages=messages, betas=["extended-cache-ttl-2025-04-11"]
    )
    assert beta.content[0].text == WORDS[0]
    assert app.last_headers["anthropic-beta"] == "extended-cache-ttl-2025-04-11"

    # Errors become the SDK's exception classes with Anthropic's body.
    for status, exception in (
        (401, sdk.AuthenticationError),
        (404, sdk.NotFoundError),
        (429, sdk.RateLimitError),
        (500, sdk.InternalServerError),
        (529, getattr(sdk, "OverloadedError", sdk.APIStatusError)),
    ):
        with pytest.raises(exception) as caught:
            await client.messages.create(model=f"claude:fail={status}", max_tokens=10, messages=messages)
        assert caught.value.status_code == status
        assert caught.value.body["type"] == "error"
    with pytest.raises(sdk.BadRequestError):
        await client.messages.create(model="claude", max_tokens=0, messages=messages)

    # A mid-stream error event surfaces as an API error.
    async def read_broken_stream() -> None:
        async with client.messages.stream(
            model="claude:error_after=1", max_tokens=100, messages=messages
        ) as stream:
            async for _ in stream:
                pass

    with pytest.raises(sdk.APIError) as caught_stream:
        await read_broken_stream()
    assert "overloaded_error" in str(caught_stream.value)
    await client.close()
