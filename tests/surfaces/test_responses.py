"""The Responses surface: validation, reservation bounds, the counting rule, rendering, and its streams.

Streams are canned upstream bytes fed through the shared relay (`relay_stream`, httpx.MockTransport:
no sockets), as tests/pipeline/test_relay.py does for chat.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest

from tollway.auth import Principal
from tollway.billing.bounds import DEFAULT_OUTPUT_TOKENS, MEDIA_PART_TOKENS
from tollway.config import Config, ModelConfig, Settings, UpstreamConfig
from tollway.errors import InvalidRequest
from tollway.pipeline.context import EndState, RequestContext
from tollway.pipeline.metering import resolve_usage
from tollway.pipeline.relay import relay_stream
from tollway.pipeline.routing import Router
from tollway.pricing import PriceBook, make_price
from tollway.surfaces import SURFACES
from tollway.surfaces.responses import (
    RESPONSES,
    STORED_CONTEXT_TOKENS,
    ParsedResponses,
    parse_responses_request,
    prompt_messages,
)
from tollway.surfaces.responses_stream import to_responses
from tollway.tokens import TokenCounter
from tollway.upstream.answer import HttpxAnswer
from tollway.upstream.scrub import Scrubber
from tollway.upstream.sse import SSEEvent
from tollway.usage import Usage

ENC = "o200k_base"


def body(**fields: Any) -> bytes:
    return msgspec.json.encode({"model": "m", "input": "Say hi", **fields})


def parse(**fields: Any) -> ParsedResponses:
    return parse_responses_request(body(**fields))


def tokens(counter: TokenCounter, text: str) -> int:
    """Plain tiktoken, independent of tollway's counting code."""
    return len(counter.encoding(ENC).encode_ordinary(text))


# -- parsing and validation -------------------------------------------------------------------------


def test_registered_as_a_surface() -> None:
    assert RESPONSES in SURFACES
    assert (RESPONSES.operation, RESPONSES.path) == ("responses", "/responses")


def test_body_passes_through_with_only_the_model_renamed() -> None:
    call = parse(
        stream=True, temperature=0.2, vendor={"x": [1, None]}, store=False, reasoning={"effort": "low"}
    )
    assert call.stream and call.model == "m"
    forwarded = msgspec.json.decode(call.upstream_body("upstream-m", include_usage=True))
    assert forwarded == {
        "model": "upstream-m",
        "input": "Say hi",
        "stream": True,
        "temperature": 0.2,
        "vendor": {"x": [1, None]},
        "store": False,
        "reasoning": {"effort": "low"},
    }  # no stream_options: Responses streams always carry usage


def test_input_may_be_items_absent_or_carry_nul() -> None:
    items = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a\x00b"}]}]
    assert parse(input=items, instructions="Be\x00 brief").body["input"] == items
    assert (
        parse_responses_request(msgspec.json.encode({"model": "m", "previous_response_id": "r"})).model == "m"
    )


@pytest.mark.parametrize(
    ("raw", "code", "param"),
    [
        (b"{not json", "invalid_json", None),
        (b"[1]", "invalid_request_body", None),
        (msgspec.json.encode({"input": "hi"}), "missing_required_parameter", "model"),
        (msgspec.json.encode({"model": 5, "input": "hi"}), "invalid_type", "model"),
        (msgspec.json.encode({"model": "", "input": "hi"}), "invalid_value", "model"),
        (body(input=5), "invalid_type", "input"),
        (body(input={"role": "user"}), "invalid_type", "input"),
        (body(input=[{"role": "user", "content": "x"}, "loose text"]), "invalid_type", "input[1]"),
        (body(instructions=["x"]), "invalid_type", "instructions"),
        (body(stream="yes"), "invalid_type", "stream"),
        (body(max_output_tokens=0), "invalid_value", "max_output_tokens"),
        (body(max_output_tokens=-5), "invalid_value", "max_output_tokens"),
        (body(max_output_tokens=2**53), "invalid_value", "max_output_tokens"),
        (body(max_output_tokens="10"), "invalid_type", "max_output_tokens"),
        (body(max_output_tokens=True), "invalid_type", "max_output_tokens"),
        (body(tools={"type": "function"}), "invalid_type", "tools"),
        (body(tools=["web_search"]), "invalid_type", "tools[0]"),
    ],
)
def test_bad_requests_name_the_param(raw: bytes, code: str, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_responses_request(raw)
    assert (info.value.status, info.value.code, info.value.param) == (400, code, param)
    error = msgspec.json.decode(info.value.body())["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)


# -- reservation bounds -----------------------------------------------------------------------------


def test_prompt_bound_is_bytes_plus_margins() -> None:
    # "Say hi" (6 bytes) + one item (8) + the request (16)
    assert parse().prompt_bound() == 6 + 8 + 16
    # instructions are a second message; "é" is two bytes
    assert parse(input="é", instructions="Be brief.").prompt_bound() == 2 + 9 + 2 * 8 + 16


def test_prompt_bound_counts_media_files_tools_and_formats() -> None:
    parts = [
        {"type": "input_text", "text": "what?"},
        {"type": "input_image", "image_url": "https://example.com/a.png"},
        {"type": "input_file", "file_id": "file-1"},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
    ]
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object"}}]
    text = {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}}}
    call = parse(input=[{"role": "user", "content": parts}], tools=tools, text=text)
    item_bytes = len("user") + len("input_text") + len("what?") + len("input_file") + len("file-1")
    media = 3 * MEDIA_PART_TOKENS  # image, audio, and the file (whose bytes count as well)
    schemas = len(msgspec.json.encode(tools)) + len(msgspec.json.encode(text))
    assert call.prompt_bound() == item_bytes + media + schemas + 8 + 16


@pytest.mark.parametrize(
    "stored", [{"previous_response_id": "resp_1"}, {"conversation": "conv_1"}, {"prompt": {"id": "pmpt_1"}}]
)
def test_context_kept_upstream_gets_an_allowance(stored: dict[str, Any]) -> None:
    assert parse(**stored).prompt_bound() >= parse().prompt_bound() + STORED_CONTEXT_TOKENS


def test_output_bound() -> None:
    assert parse(max_output_tokens=50).output_bound(None) == 50
    assert parse(max_output_tokens=50).output_bound(20) == 20
    assert parse().output_bound(300) == 300
    assert parse().output_bound(None) == DEFAULT_OUTPUT_TOKENS


async def test_tight_bound_is_below_the_byte_bound_and_above_the_count(counter: TokenCounter) -> None:
    call = parse(input=" the" * 2000, instructions="Be brief.")
    tight = await call.tight_prompt_bound(counter, ENC)
    counted = await call.count_prompt(counter, ENC)
    assert counted < tight < call.prompt_bound()


async def test_tight_bound_keeps_items_the_rule_does_not_count(counter: TokenCounter) -> None:
    secret = "x" * 5000
    items = [
        {"type": "reasoning", "encrypted_content": secret, "summary": []},
        {"role": "user", "content": "hi"},
    ]
    call = parse(input=items)
    assert await call.tight_prompt_bound(counter, ENC) > await call.count_prompt(counter, ENC) + 5000


# -- counting (SPEC §6) -----------------------------------------------------------------------------


async def test_string_input_and_instructions(counter: TokenCounter) -> None:
    call = parse(input="Say hi", instructions="Be brief.")
    # system message: 3 + "system" + "Be brief."; user message: 3 + "user" + "Say hi"; 3 primes the reply
    expected = 3 + tokens(counter, "system") + tokens(counter, "Be brief.")
    expected += 3 + tokens(counter, "user") + tokens(counter, "Say hi") + 3
    assert await call.count_prompt(counter, ENC) == expected == 16


async def test_items_by_the_rule(counter: TokenCounter) -> None:
    items: list[dict[str, Any]] = [
        {"type": "message", "role": "developer", "content": "Answer in French."},
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is in this picture?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
                {"type": "input_file", "file_id": "file-123"},
            ],
        },
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Un chat."}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "18 degrees"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "not counted"}]},
        {"type": "item_reference", "id": "msg_0"},
    ]
    call = parse(input=items)
    t = lambda text: tokens(counter, text)  # noqa: E731
    expected = 3  # reply priming
    expected += 3 + t("developer") + t("Answer in French.")
    expected += 3 + t("user") + t("What is in this picture?")  # the image and file parts are not text
    expected += 3 + t("assistant") + t("Un chat.")
    expected += 3 + t("assistant") + t("get_weather") + t('{"city": "Paris"}')
    expected += 3 + t("tool") + t("18 degrees")
    assert await call.count_prompt(counter, ENC) == expected
    messages, others = prompt_messages(call.body)
    assert len(messages) == 5 and [o["type"] for o in others] == ["reasoning", "item_reference"]


async def test_tools_count_as_their_compact_json(counter: TokenCounter) -> None:
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
    plain = await parse().count_prompt(counter, ENC)
    with_tools = await parse(tools=tools).count_prompt(counter, ENC)
    assert with_tools == plain + tokens(counter, msgspec.json.encode(tools[0]).decode())


async def test_function_call_output_parts(counter: TokenCounter) -> None:
    output = [{"type": "input_text", "text": "18 degrees"}, {"type": "input_image", "file_id": "f"}]
    call = parse(input=[{"type": "function_call_output", "call_id": "c", "output": output}])
    assert await call.count_prompt(counter, ENC) == 3 + 3 + tokens(counter, "tool") + tokens(
        counter, "18 degrees"
    )


# -- non-stream answers -----------------------------------------------------------------------------

ANSWER: dict[str, Any] = {
    "id": "resp_1",
    "object": "response",
    "model": "up-2024",
    "status": "completed",
    "output": [
        {"type": "reasoning", "id": "rs", "summary": [{"type": "summary_text", "text": "Think."}]},
        {"type": "function_call", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello"}, {"type": "refusal", "refusal": "No."}],
        },
    ],
    "usage": {
        "input_tokens": 11,
        "input_tokens_details": {"cached_tokens": 4, "vendor_detail": 1},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 18,
    },
}


def test_read_body_walks_the_output_items() -> None:
    reading = RESPONSES.read_body(parse(), ANSWER)
    assert reading.text == ["Think.", '{"city": "Paris"}', "Hello", "No."]
    assert reading.reasoning == ["Think."]
    assert reading.model == "up-2024"
    assert reading.reported is not None
    assert (reading.reported.prompt, reading.reported.cached) == (11, 4)
    assert (reading.reported.completion, reading.reported.reasoning) == (7, 2)


def test_render_body_in_the_responses_shape() -> None:
    usage = Usage(prompt=11, completion=7, cached=4, reasoning=2, raw=ANSWER["usage"])
    payload = msgspec.json.decode(msgspec.json.encode(ANSWER))
    rendered = msgspec.json.decode(
        RESPONSES.render_body(parse(), payload, usage, Decimal("0.000123"), "m", b"")
    )
    assert rendered["model"] == "m"
    assert rendered["output"] == ANSWER["output"]
    assert rendered["usage"] == {
        "input_tokens": 11,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0, "vendor_detail": 1},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 18,
        "cost": 0.000123,
    }
    without = msgspec.json.decode(RESPONSES.render_body(parse(), dict(ANSWER), usage, None, None, b""))
    assert without["model"] == "up-2024" and "cost" not in without["usage"]


async def test_missing_usage_in_a_body_is_counted(counter: TokenCounter) -> None:
    call = parse(instructions="Be brief.")
    reading = RESPONSES.read_body(call, {**ANSWER, "usage": None})
    usage = await resolve_usage(counter, context(call=call).route, call, reading.reported, reading.text, [])
    assert usage.prompt == await call.count_prompt(counter, ENC)
    assert usage.completion == tokens(counter, 'Think.{"city": "Paris"}HelloNo.')
    assert (usage.prompt_source, usage.completion_source) == ("counted", "counted")


def test_usage_with_cache_writes_keeps_the_sdk_fields() -> None:
    usage = Usage(prompt=10, completion=1, cached=2, cache_write=3)
    assert to_responses(usage)["input_tokens_details"] == {"cached_tokens": 2, "cache_write_tokens": 3}


# -- streams through the shared relay ---------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[EndState, Usage]] = []

    async def __call__(self, ctx: RequestContext, state: EndState, usage: Usage) -> Decimal | None:
        self.calls.append((state, usage))
        return Decimal("0.000042")


PRICE = make_price("m", 0, input="1.00", output="2.00")
INPUT = [{"role": "user", "content": "Say hello to the world."}]


def context(
    idle: float = 5.0, upstream_model: str | None = None, call: ParsedResponses | None = None
) -> RequestContext:
    upstream = UpstreamConfig(name="up", base_url="http://upstream.test/v1", idle_timeout=idle)
    model = ModelConfig(name="m", upstream="up", encoding=ENC, upstream_model=upstream_model)
    settings = Settings(
        config=Config(upstreams=[upstream], models=[model]), source="test", prices=PriceBook([])
    )
    return RequestContext(
        request_id="req_test",
        principal=Principal(
            key_id="k", key_name="n", workspace_id="w", spend_limit_nano=None, spend_limit_period="total"
        ),
        route=Router(settings).resolve("m"),
        surface=RESPONSES,
        call=call or parse(input=INPUT, instructions="Be brief.", stream=True),
        upstream=upstream,
        started_us=0,
        price=PRICE,
    )


def event(kind: str, seq: int, named: bool = True, **fields: Any) -> bytes:
    data = msgspec.json.encode({"type": kind, "sequence_number": seq, **fields})
    return (b"event: " + kind.encode() + b"\n" if named else b"") + b"data: " + data + b"\n\n"


RESPONSE = {"id": "resp_1", "object": "response", "status": "in_progress", "model": "up", "output": []}
USAGE = {
    "input_tokens": 11,
    "input_tokens_details": {"cached_tokens": 4},
    "output_tokens": 3,
    "output_tokens_details": {"reasoning_tokens": 1},
    "total_tokens": 14,
}
WHERE = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
ITEM = {"type": "message", "id": "msg_1", "role": "assistant", "content": []}


def opening() -> list[bytes]:
    return [
        event("response.created", 0, response=RESPONSE),
        event("response.in_progress", 1, response=RESPONSE),
        event("response.output_item.added", 2, output_index=0, item=ITEM),
        event("response.content_part.added", 3, **WHERE, part={"type": "output_text", "text": ""}),
    ]


def deltas(*texts: str, first: int = 4) -> list[bytes]:
    return [event("response.output_text.delta", first + i, **WHERE, delta=t) for i, t in enumerate(texts)]


def completed(seq: int, usage: Any = USAGE, kind: str = "response.completed", **extra: Any) -> bytes:
    response = {**RESPONSE, "status": "completed", **extra}
    if usage is not msgspec.UNSET:
        response["usage"] = usage
    return event(kind, seq, response=response)


async def relay(
    counter: TokenCounter, pieces: Sequence[bytes], *, ctx: RequestContext | None = None, pause: float = 0.0
) -> tuple[list[bytes], Recorder, RequestContext]:
    async def upstream() -> AsyncIterator[bytes]:
        for piece in pieces:
            if pause:
                await asyncio.sleep(pause)
            yield piece

    ctx = ctx or context()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=upstream()))
    async with httpx.AsyncClient(transport=transport) as client:
        response = HttpxAnswer(
            await client.send(client.build_request("POST", "http://upstream.test/v1"), stream=True)
        )
        recorder = Recorder()
        scrub = Scrubber(["sk-secret-key-123"])
        out = [piece async for piece in relay_stream(ctx, response, counter, scrub, recorder)]
    return out, recorder, ctx


def frames(out: list[bytes]) -> list[bytes]:
    return [e for e in b"".join(out).split(b"\n\n") if e]


def decoded(out: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of every relayed event; each must have both."""
    found = []
    for frame in frames(out):
        name, *lines = frame.split(b"\n")
        assert name.startswith(b"event: ") and all(line.startswith(b"data: ") for line in lines), frame
        data = b"\n".join(line.removeprefix(b"data: ") for line in lines)
        found.append((name.removeprefix(b"event: ").decode(), msgspec.json.decode(data)))
    return found


async def test_completed_stream_relays_every_event_and_completes_usage(counter: TokenCounter) -> None:
    upstream = [*opening(), *deltas(" Hello", " world"), completed(6)]
    out, recorder, _ = await relay(counter, upstream)
    assert frames(out)[:-1] == [e.rstrip(b"\n") for e in upstream[:-1]]  # byte for byte
    name, last = decoded(out)[-1]
    assert (name, last["type"], last["sequence_number"]) == ("response.completed", "response.completed", 6)
    assert last["response"]["usage"] == {
        "input_tokens": 11,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 3,
        "output_tokens_details": {"reasoning_tokens": 1},
        "total_tokens": 14,
        "cost": 0.000042,
    }
    assert b"[DONE]" not in b"".join(out)
    [(state, usage)] = recorder.calls
    assert state == "completed"
    assert (usage.prompt, usage.completion, usage.cached, usage.reasoning) == (11, 3, 4, 1)
    assert (usage.prompt_source, usage.completion_source) == ("upstream", "upstream")


async def test_missing_usage_is_counted(counter: TokenCounter) -> None:
    out, recorder, ctx = await relay(counter, [*opening(), *deltas(" Hello", " world!"), completed(6, None)])
    prompt = await ctx.call.count_prompt(counter, ENC)
    assert prompt == 3 + 1 + 3 + 3 + 1 + 6 + 3  # system "Be brief.", user "Say hello to the world.", priming
    usage = decoded(out)[-1][1]["response"]["usage"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (prompt, 3, prompt + 3)
    [(state, billed)] = recorder.calls
    assert state == "completed"
    assert (billed.prompt_source, billed.completion_source) == ("counted", "counted")


async def test_incomplete_is_a_completed_stream(counter: TokenCounter) -> None:
    terminal = completed(5, kind="response.incomplete", incomplete_details={"reason": "max_output_tokens"})
    out, recorder, _ = await relay(counter, [*opening(), *deltas(" Hi"), terminal])
    name, last = decoded(out)[-1]
    assert name == "response.incomplete" and last["response"]["usage"]["cost"] == 0.000042
    assert recorder.calls[0][0] == "completed"


async def test_cut_before_the_terminal_event_ends_with_a_synthesized_failure(counter: TokenCounter) -> None:
    out, recorder, ctx = await relay(counter, [*opening(), *deltas(" Hello", " wor")])
    [(state, usage)] = recorder.calls
    assert state == "upstream_broke_off"
    assert usage.completion == tokens(counter, " Hello wor")
    events = decoded(out)
    assert [name for name, _ in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.failed",
    ]
    failed = events[-1][1]
    assert failed["sequence_number"] == 6  # after the last relayed one
    response = failed["response"]
    assert (response["id"], response["status"], response["object"]) == ("resp_1", "failed", "response")
    assert response["error"]["code"] == "upstream_error"
    assert response["usage"]["input_tokens"] == await ctx.call.count_prompt(counter, ENC)
    assert response["usage"]["output_tokens"] == usage.completion
    assert response["usage"]["cost"] == 0.000042


async def test_finished_items_are_the_failed_responses_output(counter: TokenCounter) -> None:
    done = {**ITEM, "content": [{"type": "output_text", "text": " Hello"}], "status": "completed"}
    upstream = [
        *opening(),
        *deltas(" Hello"),
        event("response.output_item.done", 5, output_index=0, item=done),
    ]
    out, _, _ = await relay(counter, upstream)
    assert decoded(out)[-1][1]["response"]["output"] == [done]


async def test_an_error_event_is_billed_as_a_break_off_and_scrubbed(counter: TokenCounter) -> None:
    error = event("error", 5, code="server_error", message="overloaded, key sk-secret-key-123", param=None)
    out, recorder, _ = await relay(
        counter, [*opening(), *deltas(" Hello"), error, *deltas(" never", first=6)]
    )
    [(state, usage)] = recorder.calls
    assert state == "upstream_broke_off"
    assert usage.completion == 1  # " Hello", never the error text
    names = [name for name, _ in decoded(out)]
    assert "error" not in names and names[-1] == "response.failed"
    response = decoded(out)[-1][1]["response"]
    assert response["error"]["code"] == "upstream_error"
    assert "overloaded" in response["error"]["message"]
    assert b"sk-secret-key-123" not in b"".join(out)
    assert b"never" not in b"".join(out)


async def test_a_nested_error_object_counts_as_an_error(counter: TokenCounter) -> None:
    nested = b'event: error\ndata: {"error": {"message": "boom", "type": "server_error"}}\n\n'
    out, recorder, _ = await relay(counter, [*opening(), nested])
    assert recorder.calls[0][0] == "upstream_broke_off"
    assert decoded(out)[-1][1]["response"]["error"]["message"] == "The upstream broke off mid-stream: boom"


async def test_the_upstreams_own_failure_is_relayed_with_usage(counter: TokenCounter) -> None:
    error = {"code": "server_error", "message": "bad thing, sk-secret-key-123"}
    terminal = completed(5, msgspec.UNSET, kind="response.failed", status="failed", error=error)
    out, recorder, _ = await relay(counter, [*opening(), *deltas(" Hi"), terminal])
    assert recorder.calls[0][0] == "upstream_broke_off"
    events = decoded(out)
    assert [name for name, _ in events].count("response.failed") == 1
    response = events[-1][1]["response"]
    assert response["error"]["code"] == "server_error"
    assert "sk-secret-key-123" not in response["error"]["message"]
    assert response["usage"]["output_tokens"] == 1


async def test_silence_past_the_idle_timeout(counter: TokenCounter) -> None:
    upstream = [*opening(), *deltas(" Hello", " late")]
    out, recorder, _ = await relay(counter, upstream, ctx=context(idle=0.05), pause=0.2)
    assert recorder.calls[0][0] == "upstream_timeout"
    assert decoded(out)[-1][1]["response"]["error"]["code"] == "upstream_timeout"


async def test_nothing_at_all_still_starts_and_fails_the_way_the_api_does(counter: TokenCounter) -> None:
    out, recorder, _ = await relay(counter, [b": keep-alive\n\n"])
    assert recorder.calls[0][0] == "upstream_broke_off"
    (created_name, created), (failed_name, failed) = decoded(out)
    assert (created_name, failed_name) == ("response.created", "response.failed")
    assert created["response"]["id"] == failed["response"]["id"]
    assert failed["sequence_number"] > created["sequence_number"]
    assert failed["response"]["model"] == "m"  # the requested name: the upstream never said
    assert failed["response"]["usage"]["output_tokens"] == 0


async def test_an_alias_shows_the_served_name_in_every_response_object(counter: TokenCounter) -> None:
    ctx = context(upstream_model="upstream-snapshot-1")
    spaced = b'event: response.in_progress\ndata: {"type": "response.in_progress", '
    spaced += b'"response": {"model": "up"}}\n\n'
    upstream = [opening()[0], spaced, *opening()[2:], *deltas(" Hi"), completed(5)]
    out, _, ctx = await relay(counter, upstream, ctx=ctx)
    models = [d["response"]["model"] for _, d in decoded(out) if "response" in d]
    assert models == ["m", "m", "m"]
    assert ctx.upstream_model == "up"  # the record keeps what the upstream said
    out, _, _ = await relay(counter, [*opening(), *deltas(" Hi"), completed(5)])
    assert frames(out)[0] == opening()[0].rstrip(b"\n")  # no alias: byte for byte


@pytest.mark.parametrize(
    "garbage",
    [b"data: not json\n\n", b"data: [1,2]\n\n", b'data: {"broken"\n\n', b"data: 42\n\n", b"data: [DONE]\n\n"],
)
async def test_data_that_is_not_a_json_object_is_dropped(counter: TokenCounter, garbage: bytes) -> None:
    upstream = [opening()[0], garbage, *opening()[1:], garbage, *deltas(" Hi"), completed(5), garbage]
    out, recorder, _ = await relay(counter, upstream)
    assert garbage.strip() not in b"".join(out)
    assert len(decoded(out)) == 6
    assert recorder.calls[0][0] == "completed"


@pytest.mark.parametrize(
    "usage",
    [
        {"input_tokens": 1e30, "output_tokens": 2},
        {"input_tokens": 3.5, "output_tokens": 2},
        {"input_tokens": -4, "output_tokens": 2},
        {"input_tokens": 4, "output_tokens": 2, "input_tokens_details": [1]},
        "lots",
        {"input_tokens": 2**52, "output_tokens": 2},  # a cost past $1M: not believed
    ],
)
async def test_an_invalid_usage_report_is_counted_and_marked(counter: TokenCounter, usage: Any) -> None:
    out, recorder, ctx = await relay(counter, [*opening(), *deltas(" Hello", " world"), completed(6, usage)])
    state, billed = recorder.calls[0]
    prompt = await ctx.call.count_prompt(counter, ENC)
    assert state == "completed"
    assert (billed.prompt, billed.completion) == (prompt, tokens(counter, " Hello world"))
    assert (billed.prompt_source, billed.completion_source, billed.report_invalid) == (
        "counted",
        "counted",
        True,
    )
    assert decoded(out)[-1][1]["response"]["usage"]["input_tokens"] == prompt


async def test_arguments_reasoning_and_refusals_are_counted(counter: TokenCounter) -> None:
    call_where = {"item_id": "fc_1", "output_index": 1}
    upstream = [
        *opening()[:2],
        event("response.reasoning_summary_text.delta", 2, item_id="rs", output_index=0, delta="Think "),
        event("response.reasoning_text.delta", 3, item_id="rs", output_index=0, delta="hard."),
        event("response.function_call_arguments.delta", 4, **call_where, delta='{"city": '),
        event("response.function_call_arguments.delta", 5, **call_where, delta='"Paris"}'),
        event("response.refusal.delta", 6, item_id="m", output_index=2, delta=" No."),
        completed(7, None),
    ]
    out, recorder, _ = await relay(counter, upstream)
    usage = decoded(out)[-1][1]["response"]["usage"]
    assert usage["output_tokens"] == tokens(counter, 'Think hard.{"city": "Paris"} No.')
    assert usage["output_tokens_details"]["reasoning_tokens"] == tokens(counter, "Think hard.")
    assert recorder.calls[0][0] == "completed"


async def test_events_without_a_name_are_named_by_their_type(counter: TokenCounter) -> None:
    terminal = event("response.completed", 1, named=False, response={**RESPONSE, "status": "completed"})
    upstream = [event("response.created", 0, named=False, response=RESPONSE), terminal]
    out, _, _ = await relay(counter, upstream)
    assert [name for name, _ in decoded(out)] == ["response.created", "response.completed"]


async def test_multiline_data_stays_multiline(counter: TokenCounter) -> None:
    payload = msgspec.json.encode(
        {"type": "response.output_text.delta", "sequence_number": 4, **WHERE, "delta": "x"}
    )
    split = payload.index(b",")
    multi = (
        b"event: response.output_text.delta\ndata: "
        + payload[: split + 1]
        + b"\ndata: "
        + payload[split + 1 :]
    )
    out, _, _ = await relay(counter, [*opening(), multi + b"\n\n", completed(5, None)])
    assert frames(out)[4] == multi
    assert decoded(out)[-1][1]["response"]["usage"]["output_tokens"] == 1


def test_a_shutdown_ending_names_it(counter: TokenCounter) -> None:
    meter = RESPONSES.stream_meter(parse(stream=True), None, usage_with_choice=False)
    for raw in opening():
        name, data = raw.split(b"\n", 1)
        meter.observe(SSEEvent(data.strip().removeprefix(b"data: "), name.removeprefix(b"event: ")))
    ending = meter.ending("server_shutdown", Usage(prompt=5, completion=0), None, Scrubber([]))
    name, data = ending.strip().split(b"\n", 1)
    failed = msgspec.json.decode(data.removeprefix(b"data: "))
    assert name == b"event: response.failed"
    assert (failed["sequence_number"], failed["response"]["id"]) == (4, "resp_1")
    assert failed["response"]["error"]["code"] == "server_shutdown"
    assert failed["response"]["usage"]["input_tokens"] == 5 and "cost" not in failed["response"]["usage"]
