"""The stream relay on canned upstream bytes (httpx.MockTransport: no sockets), with the chat surface."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest

from tollway.auth import Principal
from tollway.config import Config, ModelConfig, Settings, UpstreamConfig
from tollway.pipeline.context import EndState, RequestContext
from tollway.pipeline.relay import relay_stream
from tollway.pipeline.routing import Router
from tollway.pricing import PriceBook, make_price
from tollway.surfaces.chat_completions import CHAT_COMPLETIONS, parse_chat_request
from tollway.tokens import TokenCounter
from tollway.upstream.answer import HttpxAnswer
from tollway.upstream.scrub import Scrubber
from tollway.usage import Usage

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say hello to the world."},
]


def chunk(content: str | None = None, finish: str | None = None, **extra: Any) -> bytes:
    delta = {} if content is None else {"content": content}
    body = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "up",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + msgspec.json.encode(body) + b"\n\n"


USAGE = {
    "prompt_tokens": 11,
    "completion_tokens": 3,
    "total_tokens": 14,
    "prompt_tokens_details": {"cached_tokens": 4},
    "completion_tokens_details": {"reasoning_tokens": 1},
}
USAGE_CHUNK = (
    b"data: "
    + msgspec.json.encode(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "up",
            "choices": [],
            "usage": USAGE,
        }
    )
    + b"\n\n"
)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[EndState, Usage]] = []

    async def __call__(self, ctx: RequestContext, state: EndState, usage: Usage) -> Decimal | None:
        self.calls.append((state, usage))
        return Decimal("0.000042")


PRICE = make_price("m", 0, input="1.00", output="2.00")


def context(
    idle: float = 5.0, encoding: str = "o200k_base", upstream_model: str | None = None, **body: Any
) -> RequestContext:
    upstream = UpstreamConfig(name="up", base_url="http://upstream.test/v1", idle_timeout=idle)
    model = ModelConfig(name="m", upstream="up", encoding=encoding, upstream_model=upstream_model)
    settings = Settings(
        config=Config(upstreams=[upstream], models=[model]),
        source="test",
        prices=PriceBook([]),
    )
    chat = parse_chat_request(
        msgspec.json.encode({"model": "m", "messages": MESSAGES, "stream": True, **body})
    )
    return RequestContext(
        request_id="req_test",
        principal=Principal(
            key_id="k", key_name="n", workspace_id="w", spend_limit_nano=None, spend_limit_period="total"
        ),
        route=Router(settings).resolve("m"),
        surface=CHAT_COMPLETIONS,
        call=chat,
        upstream=upstream,
        started_us=0,
        price=PRICE,
    )


async def relay(
    counter: TokenCounter,
    pieces: Sequence[bytes],
    *,
    ctx: RequestContext | None = None,
    pause: float = 0.0,
    usage_with_choice: bool = False,
) -> tuple[list[bytes], Recorder]:
    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            if pause:
                await asyncio.sleep(pause)
            yield piece

    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body()))
    async with httpx.AsyncClient(transport=transport) as client:
        response = HttpxAnswer(
            await client.send(client.build_request("POST", "http://upstream.test/v1"), stream=True)
        )
        recorder = Recorder()
        out = [
            piece
            async for piece in relay_stream(
                ctx or context(),
                response,
                counter,
                Scrubber(["sk-secret-key-123"]),
                recorder,
                usage_with_choice=usage_with_choice,
            )
        ]
    return out, recorder


def events(out: list[bytes]) -> list[bytes]:
    return [e for e in b"".join(out).split(b"\n\n") if e]


def final_usage(out: list[bytes]) -> dict[str, Any]:
    usage_events = [e for e in events(out) if b'"choices":[]' in e]
    assert len(usage_events) == 1
    decoded: dict[str, Any] = msgspec.json.decode(usage_events[0].removeprefix(b"data: "))["usage"]
    return decoded


async def test_upstream_usage_is_authoritative_and_chunks_pass_byte_for_byte(counter: TokenCounter) -> None:
    upstream = [
        chunk(" Hello"),
        chunk(" world", usage=None),
        chunk(finish="stop"),
        USAGE_CHUNK,
        b"data: [DONE]\n\n",
    ]
    out, recorder = await relay(counter, upstream)
    assert events(out)[:3] == [e.rstrip(b"\n") for e in upstream[:3]]
    assert events(out)[-1] == b"data: [DONE]"
    assert final_usage(out) == {
        "prompt_tokens": 11,
        "completion_tokens": 3,
        "total_tokens": 14,
        "prompt_tokens_details": {
            "cached_tokens": 4,
            "cache_write_tokens": 0,
            "cache_creation_tokens": 0,
            "cache_write_1h_tokens": 0,
        },
        "completion_tokens_details": {"reasoning_tokens": 1},
        "cost": 0.000042,
    }
    [(state, usage)] = recorder.calls
    assert state == "completed"
    assert (usage.prompt_source, usage.completion_source) == ("upstream", "upstream")


async def test_usage_on_a_chunk_with_choices_moves_to_the_closing_chunk(counter: TokenCounter) -> None:
    out, recorder = await relay(
        counter, [chunk(" Hi"), chunk(finish="stop", usage=USAGE), b"data: [DONE]\n\n"]
    )
    relayed_finish = msgspec.json.decode(events(out)[1].removeprefix(b"data: "))
    assert relayed_finish["usage"] is None
    assert relayed_finish["choices"][0]["finish_reason"] == "stop"
    assert final_usage(out)["prompt_tokens"] == 11
    assert recorder.calls[0][0] == "completed"


async def test_missing_usage_is_counted_with_tiktoken(counter: TokenCounter) -> None:
    out, recorder = await relay(
        counter, [chunk(" Hello"), chunk(" world!"), chunk(finish="stop"), b"data: [DONE]\n\n"]
    )
    prompt = counter.count_prompt("o200k_base", MESSAGES)
    completion = counter.count_text("o200k_base", " Hello world!")
    assert (prompt, completion) == (20, 3)  # 3+1+3 and 3+1+6 per message, +3 priming
    usage = final_usage(out)
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (20, 3, 23)
    [(_, recorded)] = recorder.calls
    assert (recorded.prompt_source, recorded.completion_source) == ("counted", "counted")
    assert not recorded.estimated


async def test_cl100k_counts_for_gpt4_family(counter: TokenCounter) -> None:
    out, _ = await relay(
        counter, [chunk("tiktoken is great!"), chunk(finish="stop")], ctx=context(encoding="cl100k_base")
    )
    assert final_usage(out)["completion_tokens"] == 6


async def test_awkward_framing(counter: TokenCounter) -> None:
    raw = b": ok\r\n\r\n" + b"".join(
        c.replace(b"\n", b"\r\n") for c in [chunk(" Hello"), chunk(" world"), chunk(finish="stop")]
    )
    pieces = [raw[i : i + 7] for i in range(0, len(raw), 7)]  # splits everywhere, also inside "\r\n"
    out, recorder = await relay(counter, [*pieces, b"data: [DO", b"NE]"])  # no trailing blank line
    texts = [e for e in events(out) if b'"content"' in e]
    assert len(texts) == 2
    assert events(out)[-1] == b"data: [DONE]"
    assert recorder.calls[0][0] == "completed"


async def test_multiline_data_is_relayed_as_multiline(counter: TokenCounter) -> None:
    payload = chunk(" Hi").removeprefix(b"data: ").rstrip(b"\n")
    split = payload.index(b",")
    multi = b"data: " + payload[: split + 1] + b"\ndata: " + payload[split + 1 :] + b"\n\n"
    out, _ = await relay(counter, [multi, chunk(finish="stop")])
    assert events(out)[0] == b"data: " + payload[: split + 1] + b"\ndata: " + payload[split + 1 :]
    assert final_usage(out)["completion_tokens"] == 1


async def test_no_done_but_finished_is_completed(counter: TokenCounter) -> None:
    _, recorder = await relay(counter, [chunk(" Hi"), chunk(finish="stop")])
    assert recorder.calls[0][0] == "completed"


async def test_a_closing_usage_chunk_without_done_is_completed_but_usage_mid_answer_is_not(
    counter: TokenCounter,
) -> None:
    _, recorder = await relay(counter, [chunk(" Hi"), USAGE_CHUNK])
    assert recorder.calls[0][0] == "completed"
    # Usage riding on a content chunk says nothing about the end: a clean close after it is a break-off.
    _, recorder = await relay(counter, [chunk(" Hi", usage=USAGE)])
    assert recorder.calls[0][0] == "upstream_broke_off"


async def test_error_mid_stream_bills_delivered_text_only(counter: TokenCounter) -> None:
    error = b'data: {"error": {"message": "overloaded, key sk-secret-key-123", "type": "server_error"}}\n\n'
    out, recorder = await relay(counter, [chunk(" Hello"), error, chunk(" never")])
    [(state, usage)] = recorder.calls
    assert state == "upstream_broke_off"
    assert usage.completion == 1  # " Hello", not the error text
    last = msgspec.json.decode(events(out)[-1].removeprefix(b"data: "))
    assert last["error"]["code"] == "upstream_error"
    assert "sk-secret-key-123" not in last["error"]["message"]
    assert b"[DONE]" not in b"".join(out)
    assert final_usage(out)["completion_tokens"] == 1


async def test_cut_stream_is_broke_off(counter: TokenCounter) -> None:
    out, recorder = await relay(counter, [chunk(" Hello"), chunk(" wor")])
    assert recorder.calls[0][0] == "upstream_broke_off"
    assert final_usage(out)["completion_tokens"] == counter.count_text("o200k_base", " Hello wor")


async def test_silence_past_the_idle_timeout(counter: TokenCounter) -> None:
    out, recorder = await relay(counter, [chunk(" Hello"), chunk(" late")], ctx=context(idle=0.05), pause=0.2)
    assert recorder.calls[0][0] == "upstream_timeout"
    assert msgspec.json.decode(events(out)[-1].removeprefix(b"data: "))["error"]["code"] == "upstream_timeout"


async def test_tool_calls_and_reasoning_are_counted(counter: TokenCounter) -> None:
    def delta(d: dict[str, Any], finish: str | None = None) -> bytes:
        body = {"id": "c", "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}
        return b"data: " + msgspec.json.encode(body) + b"\n\n"

    pieces = [
        delta({"reasoning_content": "Think about weather."}),
        delta(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "t",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}, "tool_calls"),
    ]
    out, recorder = await relay(counter, pieces)
    text = 'Think about weather.get_weather{"city": "Paris"}'
    usage = final_usage(out)
    assert usage["completion_tokens"] == counter.count_text("o200k_base", text)
    assert usage["completion_tokens_details"]["reasoning_tokens"] == counter.count_text(
        "o200k_base", "Think about weather."
    )
    assert recorder.calls[0][0] == "completed"


@pytest.mark.parametrize(
    "garbage", [b"data: not json\n\n", b"data: [1,2]\n\n", b'data: {"broken"\n\n', b"data: 42\n\n"]
)
async def test_data_that_is_not_a_json_object_is_dropped(counter: TokenCounter, garbage: bytes) -> None:
    """SPEC §3: SDK parsers break on it, so it never reaches the client."""
    out, recorder = await relay(counter, [garbage, chunk(" Hi"), garbage, chunk(finish="stop")])
    assert events(out)[:2] == [chunk(" Hi").rstrip(b"\n"), chunk(finish="stop").rstrip(b"\n")]
    assert garbage.strip() not in b"".join(out)
    assert recorder.calls[0][0] == "completed"


async def test_an_alias_shows_the_served_name_in_every_chunk(counter: TokenCounter) -> None:
    ctx = context(upstream_model="upstream-snapshot-1")
    spaced = b'data: {"id": "c1", "model": "up", "choices": [{"index": 0, "delta": {"content": "!"}}]}\n\n'
    out, _ = await relay(counter, [chunk(" Hi"), spaced, chunk(finish="stop"), USAGE_CHUNK], ctx=ctx)
    decoded = [msgspec.json.decode(e.removeprefix(b"data: ")) for e in events(out)[:-1]]
    assert [d["model"] for d in decoded] == ["m", "m", "m", "m"]
    assert ctx.upstream_model == "up"  # the record keeps what the upstream said
    # Without an alias the upstream's own value (e.g. a dated snapshot) passes through byte for byte.
    out, _ = await relay(counter, [chunk(" Hi"), chunk(finish="stop"), USAGE_CHUNK])
    assert events(out)[0] == chunk(" Hi").rstrip(b"\n")


@pytest.mark.parametrize(("asked", "with_choice"), [(False, True), (True, False)])
async def test_with_choice_usage_chunk_only_for_clients_that_did_not_ask(
    counter: TokenCounter, asked: bool, with_choice: bool
) -> None:
    ctx = context(stream_options={"include_usage": True}) if asked else context()
    out, _ = await relay(
        counter, [chunk(" Hi"), chunk(finish="stop"), USAGE_CHUNK], ctx=ctx, usage_with_choice=True
    )
    closing = msgspec.json.decode(events(out)[-2].removeprefix(b"data: "))
    expected = [{"index": 0, "delta": {}, "finish_reason": None}] if with_choice else []
    assert closing["choices"] == expected
    assert closing["usage"]["prompt_tokens"] == 11 and closing["usage"]["cost"] == 0.000042
    assert events(out)[-1] == b"data: [DONE]"


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": 1e30, "completion_tokens": 2},
        {"prompt_tokens": 3.5, "completion_tokens": 2},
        {"prompt_tokens": -4, "completion_tokens": 2},
        "lots",
        {"prompt_tokens": 2**52, "completion_tokens": 2},  # below 2^53, but a cost past $1M: not believed
    ],
)
async def test_an_invalid_usage_report_is_ignored_and_counted(counter: TokenCounter, usage: Any) -> None:
    bad = b"data: " + msgspec.json.encode({"id": "c1", "choices": [], "usage": usage}) + b"\n\n"
    out, recorder = await relay(counter, [chunk(" Hello"), chunk(" world"), chunk(finish="stop"), bad])
    state, billed = recorder.calls[0]
    prompt = counter.count_prompt("o200k_base", MESSAGES)
    assert state == "completed"
    assert (billed.prompt, billed.completion) == (prompt, counter.count_text("o200k_base", " Hello world"))
    assert (billed.prompt_source, billed.completion_source, billed.report_invalid) == (
        "counted",
        "counted",
        True,
    )
    assert final_usage(out)["prompt_tokens"] == prompt


async def _relay_body(counter: TokenCounter, body: AsyncIterator[bytes]) -> tuple[list[bytes], Recorder]:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    async with httpx.AsyncClient(transport=transport) as client:
        response = HttpxAnswer(
            await client.send(client.build_request("POST", "http://upstream.test/v1"), stream=True)
        )
        recorder = Recorder()
        relay_out = relay_stream(context(), response, counter, Scrubber([]), recorder)
        return [piece async for piece in relay_out], recorder


async def test_the_body_after_done_is_read_to_its_end(counter: TokenCounter) -> None:
    """Reading the upstream's body to its end lets its connection go back to the pool."""
    read_to_end = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield chunk(" Hi") + chunk(finish="stop") + b"data: [DONE]\n\n"
        yield b": trailing comment\n\n"
        read_to_end.set()

    out, recorder = await _relay_body(counter, body())
    assert read_to_end.is_set()
    assert recorder.calls[0][0] == "completed"
    assert events(out)[-1] == b"data: [DONE]"
    assert b"trailing" not in b"".join(out)


async def test_an_upstream_silent_after_done_is_not_waited_for(counter: TokenCounter) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield chunk(" Hi") + b"data: [DONE]\n\n"
        await asyncio.sleep(30)  # never ends its body (idle timeout: 5 s)
        yield b""

    out, recorder = await asyncio.wait_for(_relay_body(counter, body()), 2)
    assert recorder.calls[0][0] == "completed"
    assert final_usage(out)["completion_tokens"] == 1
    assert events(out)[-1] == b"data: [DONE]"
