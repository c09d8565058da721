"""What keeps the mock safe to embed: inspection off, the api key, knob bounds, event-loop fairness;
and the knobs for a proxy's own hardening tests: usage_override and the garbage SSE style."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tollway.mock_upstream import MockUpstream, create_app
from tollway.mock_upstream.behaviour import MAX_CHUNKS, MAX_DELAY_MS, MAX_TOKENS, Behaviour, resolve
from tollway.mock_upstream.errors import BadRequest
from tollway.mock_upstream.sse import GARBAGE

from .conftest import drive, parse_sse
from .test_mock_app import MESSAGES, chat
from .test_mock_stream import stream_request

KEY = "sk-demo-0123456789abcdef0123456789abcdef"
WRONG = "sk-wrong-but-long-enough-to-be-worth-stealing-42"
INSPECTION_ROUTES = [("GET", "/mock/stats"), ("POST", "/mock/reset"), ("GET", "/mock/requests/last")]


def client_for(app: MockUpstream) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mock")


@pytest.fixture
async def embedded() -> AsyncIterator[httpx.AsyncClient]:
    """The mock as a server embeds it: inspection off, a key only the server knows."""
    async with client_for(create_app(api_key=KEY, inspection=False)) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- inspection off ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [*INSPECTION_ROUTES, ("GET", "/_demo/mock/requests/last")])
async def test_inspection_off_routes_are_unknown_urls(method: str, path: str) -> None:
    async with client_for(create_app(inspection=False)) as client:
        response = await client.request(method, path, headers=bearer(KEY))
        unknown = await client.request(method, "/no/such/route", headers=bearer(KEY))
    assert response.status_code == unknown.status_code == 404
    error = response.json()["error"]
    assert error["code"] == unknown.json()["error"]["code"] == "unknown_url"
    assert error["message"] == f"Unknown request URL: {method} {path}."


async def test_inspection_off_keeps_nothing_of_a_request() -> None:
    app = create_app(api_key=KEY, inspection=False)
    async with client_for(app) as client:
        secret = [{"role": "user", "content": "my secret prompt"}]
        body = {"model": "m", "messages": secret}
        for request, token, status in (
            (body, KEY, 200),
            ({**body, "stream": True}, KEY, 200),
            (body, WRONG, 401),
        ):
            response = await client.post("/v1/chat/completions", json=request, headers=bearer(token))
            assert response.status_code == status
    assert app.last_body is None
    assert app.last_headers == {}
    assert "secret" not in repr(vars(app))


async def test_inspection_on_still_records_and_serves_the_routes() -> None:
    app = create_app(api_key=KEY)
    async with client_for(app) as client:
        await chat(client, headers=bearer(KEY))
        assert (await client.get("/mock/requests/last")).json()["body"]["messages"] == MESSAGES
        for method, path in INSPECTION_ROUTES:
            assert (await client.request(method, path)).status_code == 200


# -- the api key ------------------------------------------------------------------------------------

NON_INSPECTION_ROUTES = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/_demo/v1/chat/completions"),
    ("POST", "/chat/completions"),
    ("GET", "/v1/models"),
    ("GET", "/_demo/v1/models"),
]


@pytest.mark.parametrize(("method", "path"), NON_INSPECTION_ROUTES)
@pytest.mark.parametrize(
    "headers",
    [{}, bearer(WRONG), bearer(KEY[:-1]), bearer(KEY + "x"), {"Authorization": f"Basic {KEY}"}, bearer("")],
    ids=["missing", "wrong", "prefix", "longer", "not-bearer", "empty"],
)
async def test_embedded_routes_need_the_key(
    embedded: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]
) -> None:
    body = {"model": "m", "messages": MESSAGES} if method == "POST" else None
    response = await embedded.request(method, path, json=body, headers=headers)
    assert response.status_code == 401
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    # Nothing the caller sent comes back, not even a part of it.
    for token in (WRONG, KEY):
        assert token[:8] not in response.text


@pytest.mark.parametrize(("method", "path"), NON_INSPECTION_ROUTES)
async def test_embedded_routes_answer_the_key(embedded: httpx.AsyncClient, method: str, path: str) -> None:
    body = {"model": "m", "messages": MESSAGES} if method == "POST" else None
    response = await embedded.request(method, path, json=body, headers=bearer(KEY))
    assert response.status_code == 200


async def test_embedded_401_comes_before_the_body_is_read(embedded: httpx.AsyncClient) -> None:
    response = await embedded.post("/v1/chat/completions", content=b"{not json", headers=bearer(WRONG))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


async def test_embedded_fail_401_does_not_repeat_the_server_key(embedded: httpx.AsyncClient) -> None:
    response = await chat(embedded, "demo:fail=401", headers=bearer(KEY))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert KEY[:8] not in response.text


async def test_mock_upstream_still_repeats_a_wrong_key() -> None:
    async with client_for(create_app(api_key=KEY)) as client:
        assert WRONG in (await chat(client, headers=bearer(WRONG))).json()["error"]["message"]
        assert WRONG in (await client.get("/v1/models", headers=bearer(WRONG))).json()["error"]["message"]


# -- knob bounds ------------------------------------------------------------------------------------

TOKEN_KNOBS = [
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
]
DELAY_KNOBS = ["headers_delay_ms", "ttft_ms", "chunk_delay_ms"]


@pytest.mark.parametrize(
    ("knobs", "knob"),
    [
        *[({name: MAX_TOKENS + 1}, name) for name in TOKEN_KNOBS],
        *[({name: 10**30}, name) for name in TOKEN_KNOBS],
        *[({name: MAX_CHUNKS + 1}, name) for name in ("chunks", "cut_after", "error_after")],
        ({"chunks": 30_000_000}, "chunks"),
        *[({name: MAX_DELAY_MS + 1}, name) for name in DELAY_KNOBS],
        *[({name: -1}, name) for name in ("chunks", "prompt_tokens", "chunk_delay_ms")],
        # Together the delays would hold the response open for longer than any one may.
        ({"chunks": 100, "chunk_delay_ms": 6061}, "chunk_delay_ms"),
        ({"headers_delay_ms": 400_000, "ttft_ms": 300_000}, "chunk_delay_ms"),
        ({"tool_call": True, "reasoning_text": True, "chunk_delay_ms": 100_001}, "chunk_delay_ms"),
        ({"usage": "absent", "usage_override": {"prompt_tokens": 1}}, "usage_override"),
        ({"fail": 200}, "fail"),
        ({"sse_style": "lf+bogus"}, "sse_style"),
    ],
)
async def test_out_of_range_knobs_are_a_400_naming_the_knob(
    client: httpx.AsyncClient, knobs: dict[str, Any], knob: str
) -> None:
    for stream in (False, True):
        response = await chat(client, mock=knobs, stream=stream)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["param"] == f"mock.{knob}"
        assert f"`{knob}`" in error["message"]


@pytest.mark.parametrize(
    "model",
    ["demo:ttft_ms=nan", "demo:chunk_delay_ms=inf", "demo:headers_delay_ms=1e400", "demo:chunks=10001"],
)
async def test_out_of_range_model_name_knobs_are_a_400(client: httpx.AsyncClient, model: str) -> None:
    response = await chat(client, model)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == f"mock.{model.partition(':')[2].partition('=')[0]}"


def test_the_bounds_themselves_are_allowed() -> None:
    assert resolve("m", {name: MAX_TOKENS for name in TOKEN_KNOBS}).prompt_tokens == 2**53 - 1
    assert (
        resolve("m", {"chunks": MAX_CHUNKS, "cut_after": MAX_CHUNKS, "error_after": MAX_CHUNKS}).chunks
        == 10_000
    )
    for name in DELAY_KNOBS:
        assert getattr(resolve("m", {name: MAX_DELAY_MS, "chunks": 2}), name) == 600_000
    # 99 waits between 100 chunks.
    assert resolve("m", {"chunks": 100, "chunk_delay_ms": 6060}).chunk_delay_ms == 6060
    assert resolve("m", {"chunks": 0, "chunk_delay_ms": MAX_DELAY_MS, "ttft_ms": MAX_DELAY_MS}).chunks == 0


@pytest.mark.parametrize(
    "knobs",
    [
        # Every knob combination tests/ and scripts/ use, so none of them breaks.
        {"chunks": 64, "chunk_delay_ms": 1},
        {"chunks": 20, "chunk_delay_ms": 250},
        {"chunks": 1, "chunk_delay_ms": 1},
        {"chunks": 200, "chunk_delay_ms": 30},
        {"chunks": 200, "chunk_delay_ms": 50},
        {"chunks": 100, "chunk_delay_ms": 100},
        {"chunks": 8, "chunk_delay_ms": 500},
        {"chunks": 3, "chunk_delay_ms": 2000},
        {"chunks": 50, "chunk_delay_ms": 2000},
        {"chunks": 100, "chunk_delay_ms": 300},
        {"chunk_delay_ms": 2},
        {"headers_delay_ms": 3000},
        {"cut_after": 3},
        {"error_after": 3},
    ],
)
def test_knobs_used_by_the_repo_stay_valid(knobs: dict[str, Any]) -> None:
    assert resolve("m", knobs) == Behaviour(**knobs)


def test_bounds_hold_for_a_behaviour_built_directly() -> None:
    with pytest.raises(ValueError, match="chunks"):
        Behaviour(chunks=MAX_CHUNKS + 1)


async def test_n_times_chunks_is_bounded(client: httpx.AsyncClient) -> None:
    response = await chat(client, "demo:chunks=10000", n=11, stream=True)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "n"
    assert "`n`" in response.json()["error"]["message"]
    assert (await chat(client, "demo:chunks=10000", n=10)).status_code == 200
    # max_tokens is applied first: it is the answer's real size that counts.
    assert (await chat(client, "demo:chunks=10000", n=128, max_tokens=100)).status_code == 200


async def test_n_times_an_echo_is_bounded(client: httpx.AsyncClient) -> None:
    messages = [{"role": "user", "content": "x" * 100_000}]
    body = {"model": "demo:echo=true", "messages": messages, "n": 100}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "n"
    body["n"] = 2
    assert (await client.post("/v1/chat/completions", json=body)).status_code == 200


def test_bad_request_from_resolve_carries_the_knob() -> None:
    with pytest.raises(BadRequest) as info:
        resolve("demo:chunks=99999", None)
    assert info.value.param == "mock.chunks"
    assert "`chunks` must be between 0 and 10000" in info.value.message


# -- usage_override ---------------------------------------------------------------------------------

OVERRIDES: list[Any] = [
    {"prompt_tokens": 1e30, "completion_tokens": 5},
    {"prompt_tokens": 3.5},
    {"prompt_tokens": -7, "completion_tokens": -1, "total_tokens": -8},
    {"prompt_tokens": 10**30, "completion_tokens": 2**64},
    "garbage",
    [1, 2],
    -5,
    None,
    {},
]


def without_usage(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("usage", "id")}


@pytest.mark.parametrize("override", OVERRIDES)
async def test_usage_override_non_stream(client: httpx.AsyncClient, override: Any) -> None:
    plain = (await chat(client, "demo:chunks=3")).json()
    response = await chat(client, "demo:chunks=3", mock={"usage_override": override})
    assert response.status_code == 200
    body = response.json()
    assert "usage" in body
    assert body["usage"] == override
    assert without_usage(body) == without_usage(plain)


@pytest.mark.parametrize("override", OVERRIDES)
async def test_usage_override_stream_usage_chunk(app: MockUpstream, override: Any) -> None:
    options = {"stream_options": {"include_usage": True}}
    plain = (await drive(app, stream_request({"chunks": 2}, **options))).events()
    events = (await drive(app, stream_request({"chunks": 2, "usage_override": override}, **options))).events()
    assert len(events) == len(plain) == 6
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == []
    assert "usage" in usage_chunk
    assert usage_chunk["usage"] == override
    for got, want in zip(events[:-2], plain[:-2], strict=True):
        assert {**got, "id": "x"} == {**want, "id": "x"}  # every other chunk as usual
    assert events[-1] == "[DONE]"


async def test_usage_override_with_choices_goes_on_the_last_chunk(app: MockUpstream) -> None:
    events = (
        await drive(app, stream_request({"chunks": 1, "usage": "with_choices", "usage_override": [1]}))
    ).events()
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert events[-2]["usage"] == [1]


async def test_usage_override_respects_include_usage(app: MockUpstream) -> None:
    events = (await drive(app, stream_request({"chunks": 1, "usage_override": "garbage"}))).events()
    assert all("usage" not in e for e in events[:-1])


async def test_usage_override_from_the_model_name(client: httpx.AsyncClient) -> None:
    assert (await chat(client, "demo:usage_override=garbage")).json()["usage"] == "garbage"
    assert (await chat(client, "demo:usage_override=-3")).json()["usage"] == -3


async def test_usage_override_sent_as_written(client: httpx.AsyncClient) -> None:
    raw = (
        b'{"model":"m","messages":[],"mock":{"usage_override":{"prompt_tokens":1e30,"completion_tokens":5}}}'
    )
    response = await client.post("/v1/chat/completions", content=raw)
    assert b'"usage":{"prompt_tokens":1e30,"completion_tokens":5}' in response.content


# -- the garbage SSE style --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "style", ["garbage", "crlf+garbage", "garbage+multiline+comments", "garbage+crlf+split"]
)
async def test_garbage_events_sit_between_the_real_ones(app: MockUpstream, style: str) -> None:
    plain = (await drive(app, stream_request({"chunks": 3}, stream_options={"include_usage": True}))).events()
    knobs = {"chunks": 3, "sse_style": style}
    exchange = await drive(app, stream_request(knobs, stream_options={"include_usage": True}))
    assert exchange.complete
    data, pending = parse_sse(exchange.raw)
    assert pending is None
    assert [d.encode() for d in data[1:7:2]] == list(GARBAGE)  # after the 1st, 2nd and 3rd real events
    real = [d for i, d in enumerate(data) if i not in (1, 3, 5)]
    assert real[-1] == "[DONE]"
    events: list[Any] = [{**json.loads(d), "id": "chatcmpl-mock-1"} for d in real[:-1]]
    assert [*events, "[DONE]"] == plain
    for payload in GARBAGE:
        with pytest.raises(json.JSONDecodeError):
            json.loads(payload)


async def test_garbage_in_a_short_stream_still_ends_with_a_real_event(app: MockUpstream) -> None:
    raw = (await drive(app, stream_request({"chunks": 0, "sse_style": "garbage+no_done"}))).raw
    data, _ = parse_sse(raw)
    assert data[0].startswith("{") and data[1] == "not json"
    assert json.loads(data[-1])["choices"][0]["finish_reason"] == "stop"


# -- fairness ---------------------------------------------------------------------------------------


async def test_an_unpaced_stream_lets_other_requests_in(app: MockUpstream) -> None:
    stream = asyncio.ensure_future(drive(app, stream_request({"chunks": MAX_CHUNKS})))
    await asyncio.sleep(0)  # let the stream start
    # This runs only when the stream yields: before the fix it came after the whole stream.
    stats = (await drive(app, b"", method="GET", path="/mock/stats")).json()
    assert (stats["active_streams"], stats["streams_completed"]) == (1, 0)
    exchange = await stream
    assert exchange.complete
    assert len(exchange.events()) == MAX_CHUNKS + 3


async def test_an_unpaced_stream_notices_the_client_leaving(app: MockUpstream) -> None:
    gone = asyncio.Event()
    stream = asyncio.ensure_future(drive(app, stream_request({"chunks": MAX_CHUNKS}), disconnect=gone))
    await asyncio.sleep(0)
    gone.set()
    exchange = await stream
    assert not exchange.complete
    assert len(exchange.bodies) < MAX_CHUNKS
    stats = (await drive(app, b"", method="GET", path="/mock/stats")).json()
    assert (stats["streams_cancelled"], stats["active_streams"]) == (1, 0)


@pytest.mark.parametrize(
    "knobs",
    [
        {},
        {"chunks": 0},
        {"chunks": 1},
        {"chunks": 5, "reasoning_text": True},
        {"tool_call": True},
        {"tool_call": True, "reasoning_text": True},
        {"echo": True},
        {"echo": True, "reasoning_text": True},
        {"chunks": 0, "reasoning_text": True},
    ],
)
def test_paced_steps_counts_the_streams_waits(knobs: dict[str, Any]) -> None:
    from tollway.mock_upstream.chat import build_plan
    from tollway.mock_upstream.chunks import stream_steps

    behaviour = Behaviour(**knobs)
    plan = build_plan({"model": "m", "messages": MESSAGES}, behaviour, "chatcmpl-x")
    waits = sum(step.delayed for step in stream_steps(plan, True, behaviour.usage))
    assert behaviour.paced_steps == waits
