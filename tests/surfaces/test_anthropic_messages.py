"""The Anthropic Messages surface: parsing, bounds, usage mapping, error shapes and the stream meter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest

from tollway.auth import Principal
from tollway.config import Config, ModelConfig, Settings, UpstreamConfig
from tollway.errors import (
    AuthenticationFailed,
    InsufficientCredit,
    InvalidRequest,
    NotFound,
    RequestTooLarge,
    SpendLimitExceeded,
    UpstreamStatus,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tollway.pipeline.context import EndState, RequestContext
from tollway.pipeline.relay import relay_stream
from tollway.pipeline.routing import Router
from tollway.pricing import PriceBook, make_price
from tollway.surfaces import SURFACES
from tollway.surfaces.anthropic_messages import ANTHROPIC_MESSAGES, parse_messages_request
from tollway.surfaces.anthropic_stream import read_anthropic, to_anthropic
from tollway.tokens import TokenCounter
from tollway.upstream.answer import HttpxAnswer
from tollway.upstream.scrub import Scrubber
from tollway.usage import MAX_TOKENS, Usage

MESSAGES = [{"role": "user", "content": "Say hello to the world."}]


def body(**fields: Any) -> bytes:
    return msgspec.json.encode({"model": "m", "max_tokens": 100, "messages": MESSAGES, **fields})


# --- parsing -----------------------------------------------------------------------------------


def test_registered_on_messages() -> None:
    assert ANTHROPIC_MESSAGES in SURFACES
    assert (ANTHROPIC_MESSAGES.operation, ANTHROPIC_MESSAGES.path) == ("messages", "/messages")
    assert ANTHROPIC_MESSAGES.protocol == "anthropic"


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (msgspec.json.encode({"model": "m", "messages": MESSAGES}), "max_tokens"),
        (body(max_tokens=0), "max_tokens"),
        (body(max_tokens=MAX_TOKENS + 1), "max_tokens"),
        (body(max_tokens="10"), "max_tokens"),
        (body(max_tokens=1.5), "max_tokens"),
        (msgspec.json.encode({"max_tokens": 5, "messages": MESSAGES}), "model"),
        (body(messages=[]), "messages"),
        (body(messages="hi"), "messages"),
        (body(system=5), "system"),
        (body(system=[{"type": "image"}]), "system[0]"),
        (body(stream="yes"), "stream"),
    ],
)
def test_invalid_requests_are_400_naming_the_field(raw: bytes, param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_messages_request(raw)
    assert caught.value.param == param
    assert param.split("[")[0] in caught.value.message


def test_unknown_fields_pass_and_only_the_model_is_renamed() -> None:
    call = parse_messages_request(
        body(system=[{"type": "text", "text": "Be brief."}], metadata={"user_id": "u"}, top_k=3)
    )
    forwarded = msgspec.json.decode(call.upstream_body("claude-up", include_usage=True))
    assert forwarded == {
        "model": "claude-up",
        "max_tokens": 100,
        "messages": MESSAGES,
        "system": [{"type": "text", "text": "Be brief."}],
        "metadata": {"user_id": "u"},
        "top_k": 3,
    }


def test_upstream_request_passes_version_beta_and_query() -> None:
    headers = {"anthropic-version": "2023-06-01", "anthropic-beta": "x-2025", "authorization": "no"}
    path, passed = ANTHROPIC_MESSAGES.upstream_request(headers, "beta=true")
    assert path == "/messages?beta=true"
    assert passed == {"anthropic-version": "2023-06-01", "anthropic-beta": "x-2025"}
    path, passed = ANTHROPIC_MESSAGES.upstream_request({}, "")
    assert (path, passed) == ("/messages", {"anthropic-version": "2023-06-01"})
    path, _ = ANTHROPIC_MESSAGES.upstream_request({}, "a=\x00 \xff#")
    assert path == "/messages?a=%00%20%C3%BF%23"


# --- bounds ------------------------------------------------------------------------------------


def test_bounds() -> None:
    call = parse_messages_request(body(max_tokens=7))
    text = "Say hello to the world."
    assert call.prompt_bound() == len(text) + len("user") + 8 * 1 + 16
    assert call.output_bound(None) == 7
    assert call.output_bound(5) == 5
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    image = {"type": "image", "source": {"type": "url", "url": "https://x"}}
    document = {"type": "document", "source": {"type": "url", "url": "https://y"}}
    tool_use = {"type": "tool_use", "id": "t", "name": "f", "input": {"n": 12345}}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, image, document]},
        {"role": "assistant", "content": [tool_use]},
    ]
    rich = parse_messages_request(body(messages=messages, system="Be brief.", tools=tools))
    floor = len("Be brief.") + len(msgspec.json.encode(tools)) + len(b'{"n":12345}') + 2 * 8192
    assert rich.prompt_bound() >= floor + 8 * 3 + 16


async def test_prompt_is_counted_by_the_chat_rule_with_o200k(counter: TokenCounter) -> None:
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t", "name": "w", "input": {"city": "Paris"}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "Sunny"}]}
            ],
        },
    ]
    call = parse_messages_request(body(messages=messages, system="Be brief."))
    expected = counter.count_prompt(
        "o200k_base",
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": '{"city":"Paris"}'},
            {"role": "user", "content": "Sunny"},
        ],
    )
    assert await call.count_prompt(counter, "cl100k_base") == expected


# --- usage -------------------------------------------------------------------------------------


def test_usage_mapping_with_cache_reads_and_writes() -> None:
    reported = read_anthropic(
        {
            "input_tokens": 10,
            "cache_creation_input_tokens": 30,
            "cache_read_input_tokens": 50,
            "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 10},
            "output_tokens": 7,
        }
    )
    assert reported is not None and not reported.invalid
    assert (reported.prompt, reported.cached, reported.cache_write, reported.completion) == (90, 50, 30, 7)
    assert reported.cache_write_1h == 10


@pytest.mark.parametrize(
    "usage",
    [
        {"input_tokens": 1.5, "output_tokens": 2},
        {"input_tokens": 1, "cache_read_input_tokens": -1},
        {"input_tokens": 1, "cache_creation": {"ephemeral_1h_input_tokens": "3"}},
        {"input_tokens": MAX_TOKENS, "cache_read_input_tokens": 1},
        "nope",
    ],
)
def test_an_unbelievable_report_is_invalid(usage: Any) -> None:
    reported = read_anthropic(usage)
    assert reported is not None and reported.invalid


def test_rendered_usage_is_anthropic_shaped() -> None:
    raw = {"input_tokens": 10, "service_tier": "standard"}
    usage = Usage(prompt=90, completion=7, cached=50, cache_write=30, cache_write_1h=10, raw=raw)
    assert to_anthropic(usage, Decimal("0.5")) == {
        "input_tokens": 10,
        "cache_creation_input_tokens": 30,
        "cache_read_input_tokens": 50,
        "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 10},
        "output_tokens": 7,
        "service_tier": "standard",
        "cost": Decimal("0.5"),
    }


def test_non_stream_reading_and_render() -> None:
    call = parse_messages_request(body())
    payload = {
        "model": "claude-up",
        "content": [
            {"type": "thinking", "thinking": "Hmm.", "signature": "s"},
            {"type": "text", "text": "Hello"},
            {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}},
        ],
        "usage": {"input_tokens": 3, "cache_read_input_tokens": 2, "output_tokens": 4},
    }
    reading = ANTHROPIC_MESSAGES.read_body(call, payload)
    assert reading.text == ["Hmm.", "Hello", '{"a":1}']
    assert reading.model == "claude-up"
    assert reading.reported is not None and reading.reported.prompt == 5
    usage = Usage(prompt=5, completion=4, cached=2)
    out = msgspec.json.decode(
        ANTHROPIC_MESSAGES.render_body(call, dict(payload), usage, Decimal("0.000012"), "m", b"")
    )
    assert out["model"] == "m"
    assert out["usage"]["input_tokens"] == 3
    assert out["usage"]["cache_read_input_tokens"] == 2
    assert out["usage"]["cost"] == 0.000012


# --- error shapes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (InvalidRequest("bad"), "invalid_request_error"),
        (AuthenticationFailed("who"), "authentication_error"),
        (InsufficientCredit("poor"), "billing_error"),
        (NotFound("gone"), "not_found_error"),
        (RequestTooLarge("big"), "request_too_large"),
        (SpendLimitExceeded("The key's spend limit of $1.00 (total) is reached."), "rate_limit_error"),
        (UpstreamUnavailable("down"), "api_error"),
        (UpstreamTimeout("slow"), "timeout_error"),
    ],
)
def test_refusals_use_anthropic_error_shape(exc: Any, kind: str) -> None:
    assert msgspec.json.decode(ANTHROPIC_MESSAGES.error_body(exc)) == {
        "type": "error",
        "error": {"type": kind, "message": exc.message},
    }


def test_upstream_errors_pass_through() -> None:
    raw = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    assert ANTHROPIC_MESSAGES.error_body(UpstreamStatus(529, raw, "application/json", {})) == raw


# --- the stream meter, through the relay --------------------------------------------------------


def sse(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + msgspec.json.encode(payload) + b"\n\n"


START_USAGE = {
    "input_tokens": 10,
    "cache_creation_input_tokens": 3,
    "cache_read_input_tokens": 5,
    "cache_creation": {"ephemeral_5m_input_tokens": 2, "ephemeral_1h_input_tokens": 1},
    "output_tokens": 1,
}


def start(usage: dict[str, Any] | None = None) -> bytes:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-up",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": START_USAGE if usage is None else usage,
    }
    return sse("message_start", {"type": "message_start", "message": message})


def delta(kind: str, field: str, text: str, index: int = 0) -> bytes:
    payload = {"type": "content_block_delta", "index": index, "delta": {"type": kind, field: text}}
    return sse("content_block_delta", payload)


BLOCK_START = sse(
    "content_block_start",
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
)
BLOCK_STOP = sse("content_block_stop", {"type": "content_block_stop", "index": 0})
PING = sse("ping", {"type": "ping"})


def closing(usage: dict[str, Any] | None) -> list[bytes]:
    payload: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
    }
    if usage is not None:
        payload["usage"] = usage
    return [sse("message_delta", payload), sse("message_stop", {"type": "message_stop"})]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[EndState, Usage]] = []

    async def __call__(self, ctx: RequestContext, state: EndState, usage: Usage) -> Decimal | None:
        self.calls.append((state, usage))
        return Decimal("0.000042")


def context(name: str = "m", upstream_model: str | None = None) -> RequestContext:
    upstream = UpstreamConfig(name="up", base_url="http://upstream.test/v1", protocol="anthropic")
    model = ModelConfig(name=name, upstream="up", upstream_model=upstream_model)
    settings = Settings(
        config=Config(upstreams=[upstream], models=[model]), source="test", prices=PriceBook([])
    )
    call = parse_messages_request(body(model=name, stream=True))
    return RequestContext(
        request_id="req_test",
        principal=Principal(
            key_id="k", key_name="n", workspace_id="w", spend_limit_nano=None, spend_limit_period="total"
        ),
        route=Router(settings).resolve(name),
        surface=ANTHROPIC_MESSAGES,
        call=call,
        upstream=upstream,
        started_us=0,
        price=make_price(name, 0, input="1.00", output="2.00"),
    )


async def relay(
    counter: TokenCounter, pieces: Sequence[bytes], *, ctx: RequestContext | None = None, cut: bool = False
) -> tuple[list[tuple[str, Any]], Recorder]:
    async def stream() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece
        if cut:
            raise httpx.ReadError("connection reset")

    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=stream()))
    async with httpx.AsyncClient(transport=transport) as client:
        response = HttpxAnswer(
            await client.send(client.build_request("POST", "http://upstream.test/v1"), stream=True)
        )
        recorder = Recorder()
        out = [
            piece
            async for piece in relay_stream(
                ctx or context(), response, counter, Scrubber(["sk-secret-key-123"]), recorder
            )
        ]
    return named(b"".join(out)), recorder


def named(raw: bytes) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for frame in raw.split(b"\n\n"):
        if not frame:
            continue
        head, _, data = frame.partition(b"\n")
        assert head.startswith(b"event: "), frame
        assert data.startswith(b"data: "), frame
        found.append(
            (head.removeprefix(b"event: ").decode(), msgspec.json.decode(data.removeprefix(b"data: ")))
        )
    return found


async def test_completed_stream_ends_with_usage_and_cost(counter: TokenCounter) -> None:
    pieces = [
        start(),
        BLOCK_START,
        PING,
        delta("text_delta", "text", "Hello"),
        BLOCK_STOP,
        *closing({"output_tokens": 4}),
    ]
    events, recorder = await relay(counter, pieces)
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0][1]["message"]["model"] == "claude-up"  # not an alias: the upstream's own name
    assert events[5][1]["delta"]["stop_reason"] == "end_turn"
    assert events[5][1]["usage"] == {
        "input_tokens": 10,
        "cache_creation_input_tokens": 3,
        "cache_read_input_tokens": 5,
        "cache_creation": {"ephemeral_5m_input_tokens": 2, "ephemeral_1h_input_tokens": 1},
        "output_tokens": 4,
        "cost": 0.000042,
    }
    [(state, usage)] = recorder.calls
    assert state == "completed"
    assert (usage.prompt, usage.cached, usage.cache_write, usage.cache_write_1h, usage.completion) == (
        18,
        5,
        3,
        1,
        4,
    )
    assert (usage.prompt_source, usage.completion_source) == ("upstream", "upstream")


async def test_missing_output_usage_is_counted_from_text_thinking_and_tool_json(
    counter: TokenCounter,
) -> None:
    pieces = [
        start({"input_tokens": 10}),
        delta("thinking_delta", "thinking", "Let me think."),
        delta("signature_delta", "signature", "c2lnbmF0dXJl"),
        delta("text_delta", "text", " Hello", 1),
        delta("input_json_delta", "partial_json", '{"a": 1}', 2),
        *closing(None),
    ]
    events, recorder = await relay(counter, pieces)
    [(state, usage)] = recorder.calls
    assert state == "completed"
    assert usage.completion == counter.count_text("o200k_base", 'Let me think. Hello{"a": 1}')
    assert usage.completion_source == "counted"
    assert usage.prompt == 10
    assert usage.estimated  # "m" is no known OpenAI model: o200k_base is a guess
    assert events[-2][1]["usage"]["output_tokens"] == usage.completion


async def test_a_mid_stream_error_event_is_relayed_after_the_usage(counter: TokenCounter) -> None:
    error = {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded sk-secret-key-123"},
    }
    pieces = [start(), BLOCK_START, delta("text_delta", "text", "Hello there"), sse("error", error)]
    events, recorder = await relay(counter, pieces)
    assert [name for name, _ in events][-2:] == ["message_delta", "error"]
    assert events[-1][1]["error"]["type"] == "overloaded_error"
    assert "sk-secret" not in events[-1][1]["error"]["message"]
    [(state, usage)] = recorder.calls
    assert state == "upstream_broke_off"
    assert usage.prompt == 18  # as reported
    assert usage.completion == counter.count_text("o200k_base", "Hello there")  # what was delivered
    assert events[-2][1]["usage"]["output_tokens"] == usage.completion
    assert events[-2][1]["usage"]["cost"] == 0.000042


async def test_a_cut_ends_with_usage_and_an_api_error(counter: TokenCounter) -> None:
    pieces = [start(), BLOCK_START, delta("text_delta", "text", "Hello")]
    events, recorder = await relay(counter, pieces, cut=True)
    assert [name for name, _ in events][-2:] == ["message_delta", "error"]
    assert events[-1][1] == {
        "type": "error",
        "error": {"type": "api_error", "message": "The upstream broke off mid-stream."},
    }
    [(state, usage)] = recorder.calls
    assert state == "upstream_broke_off"
    assert usage.completion == counter.count_text("o200k_base", "Hello")
    assert events[-2][1]["usage"]["input_tokens"] == 10


async def test_a_clean_end_without_message_stop_still_ends_with_an_error(counter: TokenCounter) -> None:
    events, _ = await relay(counter, [start(), delta("text_delta", "text", "Hi")])
    assert [name for name, _ in events][-2:] == ["message_delta", "error"]


async def test_a_stream_with_nothing_gets_a_message_start(counter: TokenCounter) -> None:
    events, _ = await relay(counter, [b"data: not json\n\n"], cut=True)
    assert [name for name, _ in events] == ["message_start", "message_delta", "error"]
    assert events[0][1]["message"]["model"] == "m"


async def test_alias_renames_the_model_and_non_json_is_dropped(counter: TokenCounter) -> None:
    ctx = context("claude-alias", upstream_model="claude-up")
    pieces = [start(), b"event: ping\ndata: [1, 2]\n\n", b"data: {oops\n\n", *closing({"output_tokens": 2})]
    events, _ = await relay(counter, pieces, ctx=ctx)
    assert [name for name, _ in events] == ["message_start", "message_delta", "message_stop"]
    assert events[0][1]["message"]["model"] == "claude-alias"
    assert ctx.upstream_model == "claude-up"
