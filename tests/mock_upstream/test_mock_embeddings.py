"""The mock's /v1/embeddings: deterministic vectors in both formats, usage knobs, errors, pacing."""

from __future__ import annotations

import base64
import math
import struct
import time
from typing import Any

import httpx
import pytest

from tollway.mock_upstream.embeddings import DEFAULT_DIMENSIONS, estimate_tokens, vector, vector_base64


async def embed(client: httpx.AsyncClient, model: str = "demo-embed", **fields: Any) -> httpx.Response:
    return await client.post("/v1/embeddings", json={"model": model, "input": "hello world", **fields})


def float32_bits(values: list[float]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


async def test_float_body_exactly(client: httpx.AsyncClient) -> None:
    response = await embed(client, input=["hello world", "bye"], encoding_format="float")
    assert response.status_code == 200
    assert response.json() == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": vector(0, "hello world")},
            {"object": "embedding", "index": 1, "embedding": vector(1, "bye")},
        ],
        "model": "demo-embed",
        "usage": {"prompt_tokens": 3 + 1, "total_tokens": 4},  # 11 and 3 characters, a token per 4
    }


async def test_default_format_is_float_with_eight_dimensions(client: httpx.AsyncClient) -> None:
    data = (await embed(client)).json()["data"]
    assert len(data[0]["embedding"]) == DEFAULT_DIMENSIONS == 8
    assert all(isinstance(v, float) for v in data[0]["embedding"])


async def test_base64_is_little_endian_float32_of_the_same_vector(client: httpx.AsyncClient) -> None:
    floats = (await embed(client, encoding_format="float", dimensions=64)).json()["data"][0]["embedding"]
    encoded = (await embed(client, encoding_format="base64", dimensions=64)).json()["data"][0]["embedding"]
    assert encoded == vector_base64(0, "hello world", 64)
    assert base64.b64decode(encoded) == float32_bits(floats)
    # Every float component is exactly a float32 (its float64 text reads back to the same bits).
    assert struct.unpack("<64f", float32_bits(floats)) == tuple(floats)


async def test_vectors_are_deterministic_and_depend_on_input_and_index(client: httpx.AsyncClient) -> None:
    first = (await embed(client, input=["a", "a", "b"])).json()["data"]
    again = (await embed(client, input=["a", "a", "b"])).json()["data"]
    assert first == again
    vectors = [d["embedding"] for d in first]
    assert vectors[0] != vectors[1] != vectors[2]
    assert vectors[1] == vector(1, "a")


async def test_components_are_finite_float32_patterns_of_every_kind(client: httpx.AsyncClient) -> None:
    values = (await embed(client, dimensions=4096)).json()["data"][0]["embedding"]
    assert len(values) == 4096
    assert all(math.isfinite(v) for v in values)
    magnitudes = [abs(v) for v in values if v]
    assert min(magnitudes) < 1.1754943508222875e-38  # a float32 subnormal
    assert max(magnitudes) > 1e30
    assert any(v < 0 for v in values)


async def test_token_array_inputs(client: httpx.AsyncClient) -> None:
    flat = (await embed(client, input=[1, 2, 3])).json()
    assert [d["embedding"] for d in flat["data"]] == [vector(0, [1, 2, 3])]
    assert flat["usage"]["prompt_tokens"] == 3
    nested = (await embed(client, input=[[1, 2], [3, 4, 5]])).json()
    assert len(nested["data"]) == 2
    assert nested["usage"]["prompt_tokens"] == 5


@pytest.mark.parametrize(
    ("knobs", "usage"),
    [
        ({"prompt_tokens": 42}, {"prompt_tokens": 42, "total_tokens": 42}),
        ({"usage": "absent"}, None),
        ({"usage_override": {"prompt_tokens": 1.5}}, {"prompt_tokens": 1.5}),
        ({"usage_override": None}, None),
    ],
)
async def test_usage_knobs(client: httpx.AsyncClient, knobs: dict[str, Any], usage: Any) -> None:
    answer = (await embed(client, mock=knobs)).json()
    assert answer.get("usage") == usage
    assert ("usage" in answer) is ("usage_override" in knobs or "usage" not in knobs)


async def test_knobs_in_the_model_name(client: httpx.AsyncClient) -> None:
    answer = (await embed(client, model="demo-embed:usage=absent")).json()
    assert "usage" not in answer
    assert answer["model"] == "demo-embed:usage=absent"


def test_estimate() -> None:
    assert [estimate_tokens(t) for t in ("a", "abcd", "abcde", "x" * 40)] == [1, 1, 2, 10]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"input": None}, "input"),
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": ["a", ""]}, "input"),
        ({"input": [[]]}, "input"),
        ({"input": ["a", 1]}, "input"),
        ({"encoding_format": "hex"}, "encoding_format"),
        ({"dimensions": 0}, "dimensions"),
        ({"dimensions": "8"}, "dimensions"),
        ({"dimensions": 100_000}, "dimensions"),
        ({"input": ["a"] * 1000, "dimensions": 65_536}, "input"),
    ],
)
async def test_bad_requests_are_400s_naming_the_field(
    client: httpx.AsyncClient, fields: dict[str, Any], param: str
) -> None:
    response = await embed(client, **fields)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


async def test_fail_knob_and_pacing(client: httpx.AsyncClient) -> None:
    assert (await embed(client, mock={"fail": 429})).status_code == 429
    started = time.monotonic()
    assert (await embed(client, mock={"headers_delay_ms": 60})).status_code == 200
    assert time.monotonic() - started >= 0.06
