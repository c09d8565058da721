"""The mock's /v1/completions: exact bodies and event sequences, the chat knobs, failures, pacing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tollway.mock_upstream import MockUpstream
from tollway.mock_upstream.stream import ConnectionCut

from .conftest import drive, parse_sse

PROMPT = "hello world!"  # 12 characters: the mock's estimate is 3 prompt tokens
BASE = {"id": "cmpl-mock-1", "object": "text_completion", "created": 1700000000, "model": "m"}


def choice(text: str, index: int = 0, finish: str | None = "stop") -> dict[str, Any]:
    return {"text": text, "index": index, "logprobs": None, "finish_reason": finish}


def chunk(text: str, index: int = 0, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {**BASE, "choices": [choice(text, index, finish)], **extra}


def usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


async def complete(client: httpx.AsyncClient, model: str = "m", **fields: Any) -> httpx.Response:
    return await client.post("/v1/completions", json={"model": model, "prompt": PROMPT, **fields})


def stream_request(knobs: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "prompt": PROMPT, "stream": True, "mock": knobs or {}, **extra}


async def test_non_stream_body_exactly(client: httpx.AsyncClient) -> None:
    response = await complete(client, "demo:chunks=3")
    assert response.status_code == 200
    assert response.json() == {
        "id": "cmpl-mock-1",
        "object": "text_completion",
        "created": 1700000000,
        "model": "demo:chunks=3",
        "choices": [choice(" the of and")],
        "usage": usage(3, 3),
    }
    assert (await complete(client)).json()["id"] == "cmpl-mock-2"


async def test_max_tokens_n_and_prompt_lists(client: httpx.AsyncClient) -> None:
    body = (await complete(client, max_tokens=2, n=2, prompt=["ab", "cdefg"])).json()
    assert body["choices"] == [choice(" the of", i, "length") for i in range(4)]
    assert body["usage"] == usage(1 + 2, 2 * 4)


async def test_echo_field_starts_each_choice_with_its_prompt(client: httpx.AsyncClient) -> None:
    body = (await complete(client, "demo:chunks=1", echo=True, prompt=["A", "B"])).json()
    assert [c["text"] for c in body["choices"]] == ["A the", "B the"]
    tokens = (await complete(client, "demo:chunks=1", echo=True, prompt=[[1, 2], [3]])).json()
    assert [c["text"] for c in tokens["choices"]] == [" the", " the"]  # no detokenizer: nothing echoed


async def test_echo_knob_answers_with_the_body(client: httpx.AsyncClient) -> None:
    body = (await complete(client, mock={"echo": True})).json()
    assert '"prompt":"hello world!"' in body["choices"][0]["text"]


@pytest.mark.parametrize(
    ("knobs", "expected"),
    [
        ({"prompt_tokens": 50, "completion_tokens": 7}, usage(50, 7)),
        ({"usage_override": {"prompt_tokens": -1}}, {"prompt_tokens": -1}),
    ],
)
async def test_usage_knobs(client: httpx.AsyncClient, knobs: dict[str, Any], expected: Any) -> None:
    assert (await complete(client, mock=knobs)).json()["usage"] == expected


async def test_usage_absent(client: httpx.AsyncClient) -> None:
    assert "usage" not in (await complete(client, "demo:usage=absent")).json()


@pytest.mark.parametrize(
    ("fields", "param"),
    [({"prompt": None}, "prompt"), ({"prompt": []}, "prompt"), ({"n": 0}, "n"), ({"n": 129}, "n")],
)
async def test_bad_requests(client: httpx.AsyncClient, fields: dict[str, Any], param: str) -> None:
    response = await complete(client, **fields)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


async def test_fail_knob(client: httpx.AsyncClient) -> None:
    assert (await complete(client, mock={"fail": 503})).status_code == 503
    assert (await complete(client, stream=True, mock={"fail": 500})).status_code == 500


async def test_stream_without_include_usage(app: MockUpstream) -> None:
    exchange = await drive(app, stream_request({"chunks": 2}), path="/v1/completions")
    assert exchange.status == 200
    assert exchange.headers["content-type"] == "text/event-stream"
    assert exchange.events() == [chunk(" the"), chunk(" of"), chunk("", finish="stop"), "[DONE]"]


async def test_stream_with_include_usage(app: MockUpstream) -> None:
    request = stream_request({"chunks": 2}, stream_options={"include_usage": True})
    exchange = await drive(app, request, path="/v1/completions")
    assert exchange.events() == [
        chunk(" the", usage=None),
        chunk(" of", usage=None),
        chunk("", finish="stop", usage=None),
        {**BASE, "choices": [], "usage": usage(3, 2)},
        "[DONE]",
    ]


@pytest.mark.parametrize("include_usage", [False, True])
async def test_stream_usage_with_choices(app: MockUpstream, include_usage: bool) -> None:
    request = stream_request(
        {"chunks": 1, "usage": "with_choices"}, stream_options={"include_usage": include_usage}
    )
    events = (await drive(app, request, path="/v1/completions")).events()
    assert events[-2]["usage"] == usage(3, 1)
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert all(e["choices"] for e in events[:-1])


async def test_stream_usage_absent_ignores_include_usage(app: MockUpstream) -> None:
    request = stream_request({"chunks": 1, "usage": "absent"}, stream_options={"include_usage": True})
    events = (await drive(app, request, path="/v1/completions")).events()
    assert events == [chunk(" the"), chunk("", finish="stop"), "[DONE]"]


async def test_stream_n_echo_interleaves_choices(app: MockUpstream) -> None:
    events = (
        await drive(app, stream_request({"chunks": 1}, n=2, echo=True), path="/v1/completions")
    ).events()
    assert events == [
        chunk(PROMPT, 0),
        chunk(PROMPT, 1),
        chunk(" the", 0),
        chunk(" the", 1),
        chunk("", 0, "stop"),
        chunk("", 1, "stop"),
        "[DONE]",
    ]


@pytest.mark.parametrize("style", ["crlf", "multiline", "comments", "split", "garbage+crlf"])
async def test_styles_parse_to_the_same_events(app: MockUpstream, style: str) -> None:
    plain = (await drive(app, stream_request({"chunks": 4}), path="/v1/completions")).events()
    await drive(app, b"", path="/mock/reset")
    styled = await drive(app, stream_request({"chunks": 4, "sse_style": style}), path="/v1/completions")
    data, pending = parse_sse(styled.raw)
    assert pending is None
    if "garbage" in style:
        data = [d for d in data if d not in ("not json", '{"broken"', "<html>")]
    assert data[-1] == "[DONE]"
    assert len(data) == len(plain)


async def test_error_after(app: MockUpstream) -> None:
    exchange = await drive(app, stream_request({"chunks": 4, "error_after": 1}), path="/v1/completions")
    assert exchange.complete
    events = exchange.events()
    assert events[0] == chunk(" the")
    assert events[1]["error"]["code"] == "mock_error"
    assert len(events) == 2


async def test_cut_after_leaves_the_body_unfinished(app: MockUpstream) -> None:
    sent: list[bytes] = []

    async def receive() -> dict[str, Any]:
        if not sent:
            sent.append(b"")
            return {
                "type": "http.request",
                "body": b'{"model":"demo:cut_after=2","prompt":"x","stream":true}',
            }
        await asyncio.sleep(10)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body":
            assert message["more_body"] is True
            sent.append(message["body"])

    scope = {"type": "http", "method": "POST", "path": "/v1/completions", "headers": []}
    with pytest.raises(ConnectionCut):
        await app(scope, receive, send)
    events, pending = parse_sse(b"".join(sent))
    assert pending is None
    assert len(events) == 2


async def test_pacing_and_stats(app: MockUpstream) -> None:
    started = time.monotonic()
    request = stream_request({"chunks": 3, "headers_delay_ms": 20, "ttft_ms": 20, "chunk_delay_ms": 10})
    assert (await drive(app, request, path="/v1/completions")).complete
    assert time.monotonic() - started >= 0.06
    stats = (await drive(app, b"", method="GET", path="/mock/stats")).json()
    assert (stats["streams_started"], stats["streams_completed"], stats["active_streams"]) == (1, 1, 0)


async def test_a_non_stream_answer_waits_as_long_as_the_stream_would(client: httpx.AsyncClient) -> None:
    started = time.monotonic()
    assert (
        await complete(client, mock={"chunks": 3, "ttft_ms": 30, "chunk_delay_ms": 15})
    ).status_code == 200
    assert time.monotonic() - started >= 0.06
