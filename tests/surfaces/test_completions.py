"""The legacy completions surface: validation, bounds, counting, rendering, and streams through the relay."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest

from tollway.auth import Principal
from tollway.billing.bounds import DEFAULT_OUTPUT_TOKENS, MAX_OUTPUT_TOKENS
from tollway.config import Config, ModelConfig, Settings, UpstreamConfig
from tollway.errors import InvalidRequest
from tollway.pipeline.context import EndState, RequestContext
from tollway.pipeline.metering import resolve_usage
from tollway.pipeline.relay import relay_stream
from tollway.pipeline.routing import Router
from tollway.pricing import PriceBook, make_price
from tollway.surfaces import SURFACES
from tollway.surfaces.completions import COMPLETIONS, ParsedCompletion, parse_completions_request
from tollway.tokens import TokenCounter
from tollway.upstream.answer import HttpxAnswer
from tollway.upstream.scrub import Scrubber
from tollway.usage import Usage

PROMPT = "Once upon a time"


def body(**fields: Any) -> bytes:
    return msgspec.json.encode({"model": "m", "prompt": PROMPT, **fields})


def test_registered_with_its_operation_and_path() -> None:
    assert COMPLETIONS in SURFACES
    assert (COMPLETIONS.operation, COMPLETIONS.path) == ("completions", "/completions")


@pytest.mark.parametrize("prompt", ["hi", "", ["a", "b"], ["", "x"], [1, 2, 3], [[1, 2], [3]]])
def test_every_prompt_shape_is_accepted(prompt: Any) -> None:
    assert parse_completions_request(body(prompt=prompt)).body["prompt"] == prompt


def test_unknown_fields_pass_and_streams_ask_for_usage() -> None:
    call = parse_completions_request(
        body(stream=True, stream_options={"other": 1}, suffix="!", logprobs=2, temperature=0.5)
    )
    assert call.stream
    forwarded = msgspec.json.decode(call.upstream_body("up-m", include_usage=True))
    assert forwarded == {
        "model": "up-m",
        "prompt": PROMPT,
        "stream": True,
        "stream_options": {"other": 1, "include_usage": True},
        "suffix": "!",
        "logprobs": 2,
        "temperature": 0.5,
    }
    untouched = msgspec.json.decode(call.upstream_body("up-m", include_usage=False))
    assert untouched["stream_options"] == {"other": 1}
    plain = msgspec.json.decode(parse_completions_request(body()).upstream_body("up-m", include_usage=True))
    assert plain == {"model": "up-m", "prompt": PROMPT}


@pytest.mark.parametrize(
    ("raw", "code", "param"),
    [
        (b"{not json", "invalid_json", None),
        (msgspec.json.encode({"prompt": "x"}), "missing_required_parameter", "model"),
        (msgspec.json.encode({"model": "m"}), "missing_required_parameter", "prompt"),
        (body(model=""), "invalid_value", "model"),
        (body(prompt=None), "invalid_type", "prompt"),
        (body(prompt=3), "invalid_type", "prompt"),
        (body(prompt=[]), "invalid_value", "prompt"),
        (body(prompt=["a", 1]), "invalid_type", "prompt[1]"),
        (body(prompt=[1, "a"]), "invalid_type", "prompt[1]"),
        (body(prompt=[1, -2]), "invalid_value", "prompt[1]"),
        (body(prompt=[[1], []]), "invalid_value", "prompt[1]"),
        (body(prompt=[[1, 2.5]]), "invalid_type", "prompt[0][1]"),
        (body(prompt=[{"text": "x"}]), "invalid_type", "prompt[0]"),
        (body(max_tokens=0), "invalid_value", "max_tokens"),
        (body(max_tokens=-1), "invalid_value", "max_tokens"),
        (body(max_tokens=2**53), "invalid_value", "max_tokens"),
        (body(max_tokens="16"), "invalid_type", "max_tokens"),
        (body(max_tokens=True), "invalid_type", "max_tokens"),
        (body(n=0), "invalid_value", "n"),
        (body(n=129), "invalid_value", "n"),
        (body(best_of=0), "invalid_value", "best_of"),
        (body(best_of=21), "invalid_value", "best_of"),
        (body(n=3, best_of=2), "invalid_value", "best_of"),
        (body(stream="yes"), "invalid_type", "stream"),
        (body(stream_options=[]), "invalid_type", "stream_options"),
        (body(stream_options={"include_usage": "yes"}), "invalid_type", "stream_options.include_usage"),
        (body(echo="yes"), "invalid_type", "echo"),
    ],
)
def test_bad_requests_name_the_param(raw: bytes, code: str, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_completions_request(raw)
    assert (info.value.status, info.value.code, info.value.param) == (400, code, param)
    assert msgspec.json.decode(info.value.body())["error"]["param"] == param


def test_the_largest_values_are_accepted() -> None:
    call = parse_completions_request(body(max_tokens=2**53 - 1, n=20, best_of=20))
    assert call.candidates == 20


@pytest.mark.parametrize(
    ("prompt", "bound"), [("héllo", 6), (["ab", "日本"], 8), ([1, 2, 3], 3), ([[1], [2, 3]], 3), ("", 0)]
)
def test_prompt_bound_is_utf8_bytes_or_token_counts(prompt: Any, bound: int) -> None:
    assert parse_completions_request(body(prompt=prompt)).prompt_bound() == bound


@pytest.mark.parametrize(
    ("fields", "model_cap", "bound"),
    [
        ({"max_tokens": 10}, None, 10),
        ({"max_tokens": 10, "n": 3}, None, 30),
        ({"max_tokens": 10, "n": 2, "best_of": 5}, None, 50),
        ({"max_tokens": 10, "best_of": 4}, None, 40),
        ({}, 4096, 4096),  # no max_tokens: the model's cap, not OpenAI's default of 16
        ({}, None, DEFAULT_OUTPUT_TOKENS),
        ({"max_tokens": 100_000}, 4096, 4096),
        ({"max_tokens": 10, "prompt": ["a", "b", "c"]}, None, 30),  # every prompt gets its choices
        ({"max_tokens": 10, "prompt": [[1], [2]], "n": 2}, None, 40),
        ({"max_tokens": 10, "echo": True}, None, 10 + len(PROMPT)),  # the prompt comes back as output
        ({"max_tokens": 10, "echo": True, "n": 2, "prompt": ["ab", "cde"]}, None, 2 * (2 * 10 + 5)),
        ({"max_tokens": 2**53 - 1, "n": 128}, None, MAX_OUTPUT_TOKENS),
        ({"max_tokens": 2**53 - 1, "n": 128, "echo": True}, None, MAX_OUTPUT_TOKENS),
    ],
)
def test_output_bound(fields: dict[str, Any], model_cap: int | None, bound: int) -> None:
    assert parse_completions_request(body(**fields)).output_bound(model_cap) == bound


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
async def test_prompt_is_counted_as_each_prompt_string_with_tiktoken(
    counter: TokenCounter, encoding: str
) -> None:
    prompts = ["Once upon a time", "hel", "lo", "def f(x):\n    return x"]
    call = parse_completions_request(body(prompt=prompts))
    expected = sum(len(counter.encoding(encoding).encode_ordinary(p)) for p in prompts)
    assert await call.count_prompt(counter, encoding) == expected
    assert await call.tight_prompt_bound(counter, encoding) == expected
    tokens = parse_completions_request(body(prompt=[[1, 2], [3, 4, 5]]))
    assert await tokens.count_prompt(counter, encoding) == 5


def route(encoding: str = "o200k_base", alias: bool = False) -> Any:
    upstream = UpstreamConfig(name="up", base_url="http://upstream.test/v1", idle_timeout=5.0)
    model = ModelConfig(
        name="m", upstream="up", encoding=encoding, upstream_model="up-model" if alias else None
    )
    settings = Settings(config=Config(upstreams=[upstream], models=[model]), source="t", prices=PriceBook([]))
    return upstream, Router(settings).resolve("m")


NON_STREAM = {
    "id": "cmpl-1",
    "object": "text_completion",
    "created": 1,
    "model": "up-model-2024",
    "choices": [
        {"text": " there was", "index": 0, "logprobs": None, "finish_reason": "stop"},
        {"text": " a fox", "index": 1, "logprobs": None, "finish_reason": "length"},
    ],
}


async def test_non_stream_reported_usage(counter: TokenCounter) -> None:
    call = parse_completions_request(body(n=2))
    usage_in = {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}
    reading = COMPLETIONS.read_body(call, NON_STREAM | {"usage": usage_in})
    assert (reading.text, reading.model) == ([" there was", " a fox"], "up-model-2024")
    usage = await resolve_usage(counter, route()[1], call, reading.reported, reading.text, reading.reasoning)
    assert (usage.prompt, usage.completion, usage.prompt_source) == (4, 4, "upstream")


async def test_non_stream_missing_usage_is_counted(counter: TokenCounter) -> None:
    call = parse_completions_request(body(n=2))
    reading = COMPLETIONS.read_body(call, NON_STREAM)
    usage = await resolve_usage(counter, route()[1], call, reading.reported, reading.text, reading.reasoning)
    assert usage.prompt == counter.count_text("o200k_base", PROMPT)
    assert usage.completion == counter.count_text("o200k_base", " there was a fox")
    assert (usage.prompt_source, usage.completion_source) == ("counted", "counted")


def test_render_has_complete_usage_cost_and_the_alias() -> None:
    call = parse_completions_request(body())
    usage = Usage(prompt=4, completion=3, raw={"prompt_tokens": 4})
    out = msgspec.json.decode(
        COMPLETIONS.render_body(call, dict(NON_STREAM), usage, Decimal("0.00011"), "m", b"")
    )
    assert out["model"] == "m"
    assert out["choices"] == NON_STREAM["choices"]
    assert out["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": 3,
        "total_tokens": 7,
        "prompt_tokens_details": {
            "cached_tokens": 0,
            "cache_write_tokens": 0,
            "cache_creation_tokens": 0,
            "cache_write_1h_tokens": 0,
        },
        "completion_tokens_details": {"reasoning_tokens": 0},
        "cost": 0.00011,
    }
    kept = msgspec.json.decode(COMPLETIONS.render_body(call, dict(NON_STREAM), usage, None, None, b""))
    assert kept["model"] == "up-model-2024"


# --- streams through the relay -----------------------------------------------------------------


def chunk(text: str | None = "", finish: str | None = None, index: int = 0, **extra: Any) -> bytes:
    choice = {"text": text, "index": index, "logprobs": None, "finish_reason": finish}
    payload = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "up-model",
        "choices": [choice],
        **extra,
    }
    return b"data: " + msgspec.json.encode(payload) + b"\n\n"


USAGE = {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
USAGE_CHUNK = (
    b"data: "
    + msgspec.json.encode(
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 1,
            "model": "up-model",
            "choices": [],
            "usage": USAGE,
        }
    )
    + b"\n\n"
)
DONE = b"data: [DONE]\n\n"


class Recorder:
    """The settlement callback: records each call, reports a fixed cost."""

    def __init__(self) -> None:
        self.calls: list[tuple[EndState, Usage]] = []

    async def __call__(self, ctx: RequestContext, state: EndState, usage: Usage) -> Decimal | None:
        self.calls.append((state, usage))
        return Decimal("0.000042")


def context(call: ParsedCompletion, alias: bool = False) -> RequestContext:
    upstream, resolved = route(alias=alias)
    return RequestContext(
        request_id="req_test",
        principal=Principal(
            key_id="k", key_name="n", workspace_id="w", spend_limit_nano=None, spend_limit_period="total"
        ),
        route=resolved,
        surface=COMPLETIONS,
        call=call,
        upstream=upstream,
        started_us=0,
        price=make_price("m", 0, input="1.00", output="2.00"),
    )


async def relay(
    counter: TokenCounter,
    pieces: Sequence[bytes],
    *,
    usage_with_choice: bool = False,
    alias: bool = False,
    **fields: Any,
) -> tuple[list[bytes], Recorder]:
    async def content() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    call = parse_completions_request(body(stream=True, **fields))
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=content()))
    async with httpx.AsyncClient(transport=transport) as client:
        response = HttpxAnswer(
            await client.send(client.build_request("POST", "http://upstream.test/v1"), stream=True)
        )
        recorder = Recorder()
        out = [
            piece
            async for piece in relay_stream(
                context(call, alias),
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


def closing(out: list[bytes]) -> dict[str, Any]:
    """The one closing usage chunk (the only event with usage), decoded."""
    decoded = [msgspec.json.decode(e.removeprefix(b"data: ")) for e in events(out) if e != b"data: [DONE]"]
    with_usage = [d for d in decoded if d.get("usage")]
    assert len(with_usage) == 1
    found: dict[str, Any] = with_usage[0]
    return found


async def test_chunks_relayed_byte_for_byte_then_one_usage_chunk_and_done(counter: TokenCounter) -> None:
    upstream = [chunk(" there"), chunk(" was", usage=None), chunk("", "stop"), USAGE_CHUNK, DONE]
    out, recorder = await relay(counter, upstream)
    assert events(out)[:3] == [e.rstrip(b"\n") for e in upstream[:3]]
    assert events(out)[-1] == b"data: [DONE]"
    assert len(events(out)) == 5
    last = closing(out)
    assert (last["object"], last["id"], last["model"], last["choices"]) == (
        "text_completion",
        "cmpl-1",
        "up-model",
        [],
    )
    assert last["usage"]["prompt_tokens"] == 4
    assert last["usage"]["completion_tokens"] == 2
    assert last["usage"]["cost"] == 0.000042
    [(state, usage)] = recorder.calls
    assert state == "completed"
    assert (usage.prompt_source, usage.completion_source) == ("upstream", "upstream")


async def test_missing_usage_is_counted_from_the_prompt_and_the_text_relayed(counter: TokenCounter) -> None:
    out, recorder = await relay(counter, [chunk(" there"), chunk(" was a"), chunk(" fox!", "stop"), DONE])
    [(state, usage)] = recorder.calls
    assert state == "completed"
    assert usage.prompt == counter.count_text("o200k_base", PROMPT)
    assert usage.completion == counter.count_text("o200k_base", " there was a fox!")
    assert (usage.prompt_source, usage.completion_source) == ("counted", "counted")
    assert closing(out)["usage"]["completion_tokens"] == usage.completion


async def test_usage_on_a_chunk_with_choices_moves_to_the_closing_chunk(counter: TokenCounter) -> None:
    out, recorder = await relay(counter, [chunk(" hi"), chunk("", "stop", usage=USAGE), DONE])
    moved = msgspec.json.decode(events(out)[1].removeprefix(b"data: "))
    assert moved["usage"] is None
    assert moved["choices"][0]["finish_reason"] == "stop"
    assert closing(out)["usage"]["prompt_tokens"] == 4
    assert recorder.calls[0][1].prompt_source == "upstream"


async def test_with_choice_closing_chunk_only_for_clients_that_did_not_ask(counter: TokenCounter) -> None:
    out, _ = await relay(counter, [chunk(" hi", "stop"), DONE], usage_with_choice=True)
    assert closing(out)["choices"] == [{"index": 0, "text": "", "logprobs": None, "finish_reason": None}]
    asked, _ = await relay(
        counter,
        [chunk(" hi", "stop"), DONE],
        usage_with_choice=True,
        stream_options={"include_usage": True},
    )
    assert closing(asked)["choices"] == []


async def test_an_alias_is_shown_in_every_chunk(counter: TokenCounter) -> None:
    out, _ = await relay(counter, [chunk(" hi"), chunk("", "stop"), USAGE_CHUNK, DONE], alias=True)
    decoded = [msgspec.json.decode(e.removeprefix(b"data: ")) for e in events(out)[:-1]]
    assert {d["model"] for d in decoded} == {"m"}


async def test_a_cut_stream_bills_what_was_delivered_and_ends_with_an_error(counter: TokenCounter) -> None:
    out, recorder = await relay(counter, [chunk(" there"), chunk(" wa")])
    [(state, usage)] = recorder.calls
    assert state == "upstream_broke_off"
    assert usage.completion == counter.count_text("o200k_base", " there wa")
    assert closing(out)["usage"]["completion_tokens"] == usage.completion
    last = msgspec.json.decode(events(out)[-1].removeprefix(b"data: "))
    assert last["error"]["code"] == "upstream_error"
    assert b"[DONE]" not in b"".join(out)


async def test_an_error_event_mid_stream(counter: TokenCounter) -> None:
    error = b'data: {"error": {"message": "boom sk-secret-key-123", "type": "server_error"}}\n\n'
    out, recorder = await relay(counter, [chunk(" one"), error, chunk(" never")])
    [(state, usage)] = recorder.calls
    assert (state, usage.completion) == ("upstream_broke_off", 1)
    assert b"sk-secret-key-123" not in b"".join(out)
    assert b"[DONE]" not in b"".join(out)


async def test_data_that_is_not_json_is_dropped_and_odd_shapes_still_metered(counter: TokenCounter) -> None:
    odd = b'data: {"id": "cmpl-1", "choices": [{"text": " odd", "index": "zero", "finish_reason": 7}]}\n\n'
    odd_text = b'data: {"choices": [{"text": 5}, {"text": " fine"}], "id": "x"}\n\n'
    out, recorder = await relay(
        counter, [b"data: not json\n\n", chunk(" a"), odd, odd_text, chunk("", "stop")]
    )
    relayed = events(out)
    assert b"not json" not in b"".join(out)
    assert relayed[1] == odd.rstrip(b"\n")  # relayed unchanged
    [(state, usage)] = recorder.calls
    assert state == "completed"
    assert usage.completion == counter.count_text("o200k_base", " a odd fine")


async def test_n_choices_and_echo_are_all_counted(counter: TokenCounter) -> None:
    pieces = [
        chunk(PROMPT, index=0),
        chunk(PROMPT, index=1),
        chunk(" x", index=0),
        chunk(" y", "stop", index=1),
    ]
    _, recorder = await relay(counter, pieces, n=2, echo=True)
    [(_, usage)] = recorder.calls
    assert usage.completion == counter.count_text("o200k_base", PROMPT + PROMPT + " x y")
