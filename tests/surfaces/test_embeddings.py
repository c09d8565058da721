"""The embeddings surface: validation, bounds, counting, usage, rendering, and vectors kept bit-exact."""

from __future__ import annotations

import json
import math
import random
import struct
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollway.config import Config, ModelConfig, Settings, UpstreamConfig
from tollway.errors import InvalidRequest
from tollway.pipeline.metering import resolve_usage
from tollway.pipeline.routing import Route, Router
from tollway.pricing import PriceBook
from tollway.surfaces import SURFACES
from tollway.surfaces.embeddings import EMBEDDINGS, parse_embeddings_request, splice_usage
from tollway.tokens import TokenCounter
from tollway.usage import INVALID, Usage


def body(**fields: Any) -> bytes:
    return msgspec.json.encode({"model": "m", "input": "hello world", **fields})


def route(encoding: str = "cl100k_base") -> Route:
    upstream = UpstreamConfig(name="up", base_url="http://upstream.test/v1")
    model = ModelConfig(name="m", upstream="up", encoding=encoding)
    settings = Settings(config=Config(upstreams=[upstream], models=[model]), source="t", prices=PriceBook([]))
    return Router(settings).resolve("m")


def bits(value: float) -> bytes:
    return struct.pack("<d", value)


def test_registered_with_its_operation_and_path() -> None:
    assert EMBEDDINGS in SURFACES
    assert (EMBEDDINGS.operation, EMBEDDINGS.path) == ("embeddings", "/embeddings")


@pytest.mark.parametrize(
    "value",
    ["hi", ["a", "b"], [1, 2, 3], [[1, 2], [3]], [0], "x" * 10_000],
)
def test_every_input_shape_is_accepted(value: Any) -> None:
    call = parse_embeddings_request(body(input=value))
    assert call.body["input"] == value


def test_unknown_fields_and_stream_pass_through_but_it_never_streams() -> None:
    call = parse_embeddings_request(
        body(encoding_format="base64", dimensions=256, user="u1", stream=True, vendor={"x": [1]})
    )
    assert call.stream is False
    forwarded = msgspec.json.decode(call.upstream_body("upstream-m", include_usage=True))
    assert forwarded == {
        "model": "upstream-m",
        "input": "hello world",
        "encoding_format": "base64",
        "dimensions": 256,
        "user": "u1",
        "stream": True,
        "vendor": {"x": [1]},
    }


@pytest.mark.parametrize(
    ("raw", "code", "param"),
    [
        (b"{not json", "invalid_json", None),
        (b'"text"', "invalid_request_body", None),
        (msgspec.json.encode({"input": "x"}), "missing_required_parameter", "model"),
        (msgspec.json.encode({"model": "m"}), "missing_required_parameter", "input"),
        (body(model=""), "invalid_value", "model"),
        (body(model=3), "invalid_type", "model"),
        (body(input=None), "invalid_type", "input"),
        (body(input=5), "invalid_type", "input"),
        (body(input={"text": "x"}), "invalid_type", "input"),
        (body(input=""), "invalid_value", "input"),
        (body(input=[]), "invalid_value", "input"),
        (body(input=["a", ""]), "invalid_value", "input[1]"),
        (body(input=["a", 1]), "invalid_type", "input[1]"),
        (body(input=[1, "a"]), "invalid_type", "input[1]"),
        (body(input=[1, -1]), "invalid_value", "input[1]"),
        (body(input=[1, 2**53]), "invalid_value", "input[1]"),
        (body(input=[1, 1.5]), "invalid_type", "input[1]"),
        (body(input=[1, True]), "invalid_type", "input[1]"),
        (body(input=[True]), "invalid_type", "input[0]"),
        (body(input=[None]), "invalid_type", "input[0]"),
        (body(input=[{"a": 1}]), "invalid_type", "input[0]"),
        (body(input=[[1], []]), "invalid_value", "input[1]"),
        (body(input=[[1], 2]), "invalid_type", "input[1]"),
        (body(input=[[1, "x"]]), "invalid_type", "input[0][1]"),
        (body(input=[[1, -5]]), "invalid_value", "input[0][1]"),
        (body(encoding_format="hex"), "invalid_value", "encoding_format"),
        (body(encoding_format=1), "invalid_type", "encoding_format"),
        (body(dimensions=0), "invalid_value", "dimensions"),
        (body(dimensions=-1), "invalid_value", "dimensions"),
        (body(dimensions="8"), "invalid_type", "dimensions"),
        (body(dimensions=True), "invalid_type", "dimensions"),
        (body(dimensions=1.5), "invalid_type", "dimensions"),
        (body(dimensions=2**64), "invalid_value", "dimensions"),
    ],
)
def test_bad_requests_name_the_param(raw: bytes, code: str, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_embeddings_request(raw)
    assert (info.value.status, info.value.code, info.value.param) == (400, code, param)
    assert msgspec.json.decode(info.value.body())["error"]["param"] == param


@pytest.mark.parametrize(
    ("value", "bound"),
    [
        ("hello", 5),
        ("héllo", 6),  # é is two bytes
        ("日本", 6),
        (["ab", "cde"], 5),
        ([5, 6, 7], 3),
        ([[1, 2], [3, 4, 5]], 5),
    ],
)
def test_prompt_bound_is_utf8_bytes_or_token_counts_and_output_is_zero(value: Any, bound: int) -> None:
    call = parse_embeddings_request(body(input=value))
    assert call.prompt_bound() == bound
    assert call.output_bound(None) == 0
    assert call.output_bound(4096) == 0


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
async def test_counting_is_each_string_on_its_own_with_tiktoken(counter: TokenCounter, encoding: str) -> None:
    texts = ["The quick brown fox", "jumps over", "the lazy dog.", "hello" * 50, "hel", "lo"]
    expected = sum(len(counter.encoding(encoding).encode_ordinary(t)) for t in texts)
    call = parse_embeddings_request(body(input=texts))
    assert await call.count_prompt(counter, encoding) == expected
    assert await call.tight_prompt_bound(counter, encoding) == expected
    assert expected <= call.prompt_bound()
    # Counted separately, not joined: "ab" + "cd" is not the tokens of "abcd".
    joined = len(counter.encoding(encoding).encode_ordinary("".join(texts)))
    assert expected != joined


async def test_token_arrays_count_their_length(counter: TokenCounter) -> None:
    assert await parse_embeddings_request(body(input=[1, 2, 3])).count_prompt(counter, "cl100k_base") == 3
    nested = parse_embeddings_request(body(input=[[1, 2], [3, 4, 5, 6]]))
    assert await nested.count_prompt(counter, "cl100k_base") == 6


def answer(usage: Any = None, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.0, 5e-324]}],
        "model": "upstream-embed",
        **extra,
    }
    if usage is not None:
        payload["usage"] = usage
    return payload


async def test_reported_usage_bills_input_tokens_only(counter: TokenCounter) -> None:
    call = parse_embeddings_request(body())
    # A report with output or cache numbers is still billed as input tokens only.
    reported = {
        "prompt_tokens": 7,
        "completion_tokens": 5,
        "total_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 3},
    }
    reading = EMBEDDINGS.read_body(call, answer(reported))
    assert reading.model == "upstream-embed"
    assert (reading.text, reading.reasoning) == ([], [])
    usage = await resolve_usage(counter, route(), call, reading.reported, reading.text, reading.reasoning)
    assert (usage.prompt, usage.completion, usage.cached, usage.cache_write, usage.reasoning) == (
        7,
        0,
        0,
        0,
        0,
    )
    assert (usage.prompt_source, usage.completion_source) == ("upstream", "upstream")


async def test_missing_usage_is_counted(counter: TokenCounter) -> None:
    texts = ["first input", "second, longer input text"]
    call = parse_embeddings_request(body(input=texts))
    reading = EMBEDDINGS.read_body(call, answer())
    assert reading.reported is None
    usage = await resolve_usage(counter, route(), call, reading.reported, reading.text, reading.reasoning)
    expected = sum(counter.count_text("cl100k_base", t) for t in texts)
    assert (usage.prompt, usage.completion, usage.prompt_source) == (expected, 0, "counted")


@pytest.mark.parametrize("bad", [{"prompt_tokens": 1.5}, {"prompt_tokens": -1}, "lots", [3]])
async def test_an_invalid_report_is_counted_and_marked(counter: TokenCounter, bad: Any) -> None:
    call = parse_embeddings_request(body(input="hello world"))
    reading = EMBEDDINGS.read_body(call, answer(bad))
    assert reading.reported is INVALID
    usage = await resolve_usage(counter, route(), call, reading.reported, reading.text, reading.reasoning)
    assert usage.report_invalid
    assert (usage.prompt, usage.prompt_source) == (
        counter.count_text("cl100k_base", "hello world"),
        "counted",
    )


def rendered(payload: dict[str, Any], served: str | None = None, cost: str | None = "0.0001071") -> Any:
    usage = Usage(prompt=7, completion=0)
    raw = EMBEDDINGS.render_body(
        parse_embeddings_request(body()),
        payload,
        usage,
        Decimal(cost) if cost else None,
        served,
        msgspec.json.encode(payload),
    )
    return msgspec.json.decode(raw)


def test_render_replaces_usage_and_keeps_the_rest() -> None:
    payload = answer({"prompt_tokens": 7, "total_tokens": 7, "extra": "x"}, vendor={"k": [1]})
    out = rendered(dict(payload))
    assert out["usage"] == {"prompt_tokens": 7, "total_tokens": 7, "cost": 0.0001071}
    assert {k: v for k, v in out.items() if k != "usage"} == {
        k: v for k, v in payload.items() if k != "usage"
    }
    assert out["model"] == "upstream-embed"  # no alias: the upstream's own value
    assert rendered(answer(), served="text-embedding-3-small")["model"] == "text-embedding-3-small"
    assert rendered(answer(), cost=None)["usage"] == {"prompt_tokens": 7, "total_tokens": 7}


def test_cost_is_a_json_number() -> None:
    payload = answer()
    raw = EMBEDDINGS.render_body(
        parse_embeddings_request(body()),
        payload,
        Usage(prompt=7, completion=0),
        Decimal("0.0001071"),
        None,
        msgspec.json.encode(payload),
    )
    assert b'"cost":0.0001071' in raw


# --- bit-exactness ------------------------------------------------------------------------------

SPECIAL = [
    0.0,
    -0.0,
    5e-324,  # the smallest subnormal
    -5e-324,
    2.225073858507201e-308,  # the largest subnormal
    2.2250738585072014e-308,  # the smallest normal
    1.7976931348623157e308,  # the largest finite
    -1.7976931348623157e308,
    1e-300,
    1e300,
    0.1,
    1 / 3,
    2.0**-1074 * 3,
    1.401298464324817e-45,  # the smallest float32 subnormal
    3.4028234663852886e38,  # the largest float32
    9007199254740993.0,
    123456789.123456789,
]


def test_special_floats_survive_decode_and_reencode_bit_exactly() -> None:
    upstream = msgspec.json.encode(answer() | {"data": [{"embedding": SPECIAL}]})
    payload = msgspec.json.decode(upstream)
    out = msgspec.json.decode(
        EMBEDDINGS.render_body(
            parse_embeddings_request(body()), payload, Usage(prompt=1, completion=0), None, None, upstream
        )
    )
    assert [bits(x) for x in out["data"][0]["embedding"]] == [bits(x) for x in SPECIAL]
    # The client's own parser (Python's json here, as the OpenAI SDK uses) reads the same bits too.
    reread = json.loads(
        EMBEDDINGS.render_body(
            parse_embeddings_request(body()), payload, Usage(prompt=1, completion=0), None, None, upstream
        )
    )
    assert [bits(x) for x in reread["data"][0]["embedding"]] == [bits(x) for x in SPECIAL]


def test_300000_random_float64_bit_patterns_survive() -> None:
    rng = random.Random(20240601)
    values: list[float] = []
    while len(values) < 300_000:
        (value,) = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))
        if math.isfinite(value):
            values.append(value)
    text = msgspec.json.encode(values)
    again = msgspec.json.decode(msgspec.json.encode(msgspec.json.decode(text)))
    assert [bits(x) for x in again] == [bits(x) for x in values]
    # Numbers written by another encoder (Python's repr, 17 significant digits, the exact decimal
    # expansion) are read to the same bits by msgspec as by Python's correctly rounded parser.
    sample = values[:3000]
    for spelled in (repr, lambda v: format(v, ".17g"), lambda v: str(Decimal(v))):
        written = ("[" + ",".join(spelled(v) for v in sample) + "]").encode()
        assert [bits(x) for x in msgspec.json.decode(written)] == [bits(x) for x in sample]


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=64))
def test_any_finite_float_vector_survives(vector: list[float]) -> None:
    again = msgspec.json.decode(msgspec.json.encode(msgspec.json.decode(msgspec.json.encode(vector))))
    assert [bits(x) for x in again] == [bits(x) for x in vector]


@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), max_size=64))
def test_float32_vectors_survive_as_float32(vector: list[float]) -> None:
    again = msgspec.json.decode(msgspec.json.encode(msgspec.json.decode(msgspec.json.encode(vector))))
    assert struct.pack(f"<{len(vector)}f", *again) == struct.pack(f"<{len(vector)}f", *vector)


def test_base64_vectors_are_untouched() -> None:
    vectors = ["AACAPwAAAMAAAIB/", "q83vPw+/AAAAgA==", "/" * 8 + "+" * 8]
    payload = answer() | {
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
    }
    out = rendered(payload)
    assert [d["embedding"] for d in out["data"]] == vectors
    # An escaped slash (legal JSON, some encoders write it) decodes to the same string.
    escaped = b'{"data":[{"embedding":"ab\\/cd=="}],"model":"m"}'
    assert rendered(msgspec.json.decode(escaped))["data"][0]["embedding"] == "ab/cd=="


def test_what_reencoding_cannot_keep_is_spelling_and_the_integer_minus_zero() -> None:
    # The values survive but not the spelling; and `-0` (Go's encoding/json writes a negative zero
    # so) is an integer to msgspec (and to Python's json): its sign is lost on the way through.
    raw = b'{"data":[{"embedding":[1E5,1e-07,-0,-0.0]}],"model":"m"}'
    vector = rendered(msgspec.json.decode(raw))["data"][0]["embedding"]
    assert vector == [100000.0, 1e-07, 0, -0.0]
    assert bits(float(vector[2])) != bits(-0.0)


def test_splicing_keeps_every_other_byte() -> None:
    raw = (
        b'{"object": "list", "data": [{"object": "embedding", "index": 0,\n'
        b' "embedding": [1E5, 1e-07, -0, -0.0, 5e-324, 1.0000000000000000000001]},'
        b' {"embedding": "ab\\/cd=="}], "model": "upstream-embed",'
        b' "usage": {"prompt_tokens": 7, "total_tokens": 7}}'
    )
    usage = Usage(prompt=7, completion=0)
    out = splice_usage(raw, usage, Decimal("0.0001071"), None)
    data_start = raw.index(b"[{")
    data_end = raw.index(b"}]") + 2
    assert raw[data_start:data_end] in out  # the vectors' bytes exactly as the upstream wrote them
    assert msgspec.json.decode(out)["usage"] == {"prompt_tokens": 7, "total_tokens": 7, "cost": 0.0001071}
    assert msgspec.json.decode(out)["model"] == "upstream-embed"
    aliased = splice_usage(raw, usage, None, "text-embedding-3-small")
    assert raw[data_start:data_end] in aliased
    assert msgspec.json.decode(aliased)["model"] == "text-embedding-3-small"
    assert msgspec.json.decode(aliased)["usage"] == {"prompt_tokens": 7, "total_tokens": 7}
    # Without a usage field at all, one is added; render_body splices the same way.
    bare = b'{"data":[{"embedding":[-0]}],"model":"m"}'
    spliced = EMBEDDINGS.render_body(
        parse_embeddings_request(body()), msgspec.json.decode(bare), usage, None, None, bare
    )
    assert (
        spliced == b'{"data":[{"embedding":[-0]}],"model":"m","usage":{"prompt_tokens":7,"total_tokens":7}}'
    )
