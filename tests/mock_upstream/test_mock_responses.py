"""The mock's Responses API in-process: bodies, event sequences, usage knobs, pacing, faults, framing."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import pytest

from tollway.mock_upstream import MockUpstream
from tollway.mock_upstream.stream import ConnectionCut

from .conftest import Exchange, drive

PATH = "/v1/responses"
WORDS = [" the", " of", " and", " to", " in", " is", " it", " for"]


def request(knobs: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "input": "Say hi", **({"mock": knobs} if knobs is not None else {}), **extra}


def usage(prompt: int, completion: int, reasoning: int = 0, cached: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


def named_events(raw: bytes) -> list[tuple[str | None, Any]]:
    """(event name, decoded data) per dispatched SSE event, following the SSE rules."""
    found: list[tuple[str | None, Any]] = []
    name: str | None = None
    data: list[str] = []
    for line in re.split(r"\r\n|\r|\n", raw.decode()):
        if not line:
            if data:
                found.append((name, json.loads("\n".join(data))))
            name, data = None, []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
    if data:
        found.append((name, json.loads("\n".join(data))))
    return found


async def respond(app: MockUpstream, body: dict[str, Any]) -> Exchange:
    return await drive(app, body, path=PATH)


# -- non-stream -------------------------------------------------------------------------------------


async def test_default_body(app: MockUpstream) -> None:
    exchange = await respond(app, request(instructions="Be brief.", tools=[]))
    assert exchange.status == 200
    body = exchange.json()
    assert {k: body[k] for k in ("id", "object", "status", "model", "instructions", "error")} == {
        "id": "resp_mock_1",
        "object": "response",
        "status": "completed",
        "model": "m",
        "instructions": "Be brief.",
        "error": None,
    }
    assert body["output"] == [
        {
            "type": "message",
            "id": "msg_mock_1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "".join(WORDS), "annotations": [], "logprobs": []}],
        }
    ]
    # two messages (instructions, input) x 5 + 15 characters // 4
    assert body["usage"] == usage(13, 8)
    assert (await respond(app, request())).json()["id"] == "resp_mock_2"


async def test_input_items_are_estimated(app: MockUpstream) -> None:
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "12345678"}]},
        {"type": "function_call_output", "call_id": "c", "output": "1234"},
    ]
    assert (await respond(app, request(input=items))).json()["usage"]["input_tokens"] == 10 + 12 // 4


async def test_usage_knobs(app: MockUpstream) -> None:
    knobs = {"prompt_tokens": 50, "completion_tokens": 9, "cached_tokens": 7, "reasoning_tokens": 2}
    assert (await respond(app, request(knobs))).json()["usage"] == usage(50, 9, reasoning=2, cached=7)
    written = (await respond(app, request({"cache_write_tokens": 3}))).json()["usage"]
    assert written["input_tokens_details"] == {"cached_tokens": 0, "cache_write_tokens": 3}
    top = {"cache_write_tokens": 3, "cache_write_field": "cache_creation_input_tokens"}
    assert (await respond(app, request(top))).json()["usage"]["cache_creation_input_tokens"] == 3
    assert "usage" not in (await respond(app, request({"usage": "absent"}))).json()
    override = {"input_tokens": 1.5, "output_tokens": "x"}
    assert (await respond(app, request({"usage_override": override}))).json()["usage"] == override
    assert (await respond(app, request({"usage_override": None}))).json()["usage"] is None


async def test_reasoning_text_adds_a_reasoning_item(app: MockUpstream) -> None:
    body = (await respond(app, request({"reasoning_text": True, "chunks": 2}))).json()
    assert body["output"][0] == {
        "type": "reasoning",
        "id": "rs_mock_1",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": " on that with"}],
        "status": "completed",
    }
    assert body["output"][1]["content"][0]["text"] == " the of"
    assert body["usage"] == usage(6, 5, reasoning=3)


async def test_tool_call_is_a_function_call_item(app: MockUpstream) -> None:
    body = (await respond(app, request({"tool_call": True}))).json()
    assert body["output"] == [
        {
            "type": "function_call",
            "id": "fc_mock_1",
            "call_id": "call_mock_1",
            "name": "get_weather",
            "arguments": '{"city": "Paris"}',
            "status": "completed",
        }
    ]
    assert body["usage"]["output_tokens"] == 3


async def test_max_output_tokens_makes_it_incomplete(app: MockUpstream) -> None:
    body = (await respond(app, request(max_output_tokens=3))).json()
    assert (body["status"], body["incomplete_details"]) == ("incomplete", {"reason": "max_output_tokens"})
    assert body["output"][0]["content"][0]["text"] == " the of and"
    assert body["usage"]["output_tokens"] == 3


async def test_echo(app: MockUpstream) -> None:
    sent = request({"echo": True})
    text = (await respond(app, sent)).json()["output"][0]["content"][0]["text"]
    assert json.loads(text) == sent


async def test_fail_and_bad_knobs(app: MockUpstream) -> None:
    failed = await respond(app, request({"fail": 503}))
    assert failed.status == 503 and failed.json()["error"]["type"] == "server_error"
    bad = await respond(app, request({"chunks": -1}))
    assert (bad.status, bad.json()["error"]["param"]) == (400, "mock.chunks")


async def test_non_stream_waits_as_long_as_the_stream_would(app: MockUpstream) -> None:
    started = time.monotonic()
    await respond(app, request({"chunks": 3, "ttft_ms": 20, "chunk_delay_ms": 15}))
    assert time.monotonic() - started >= 0.05


# -- streams ----------------------------------------------------------------------------------------


async def test_stream_event_sequence(app: MockUpstream) -> None:
    exchange = await respond(app, request({"chunks": 2}, stream=True))
    assert exchange.status == 200 and exchange.complete
    assert exchange.headers["content-type"] == "text/event-stream"
    events = named_events(exchange.raw)
    assert [name for name, _ in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert all(name == data["type"] for name, data in events)
    assert [data["sequence_number"] for _, data in events] == list(range(10))
    created = events[0][1]["response"]
    assert (created["id"], created["status"], created["output"], created["usage"]) == (
        "resp_mock_1",
        "in_progress",
        [],
        None,
    )
    where = {"item_id": "msg_mock_1", "output_index": 0, "content_index": 0}
    assert events[4][1] == {
        "type": "response.output_text.delta",
        "sequence_number": 4,
        **where,
        "delta": " the",
        "logprobs": [],
    }
    assert events[6][1]["text"] == " the of"
    final = events[-1][1]["response"]
    assert final["status"] == "completed"
    assert final["output"][0]["content"][0]["text"] == " the of"
    assert final["usage"] == usage(6, 2)
    assert b"[DONE]" not in exchange.raw
    assert exchange.raw.endswith(b"\n\n")


async def test_stream_without_usage(app: MockUpstream) -> None:
    events = named_events((await respond(app, request({"usage": "absent"}, stream=True))).raw)
    assert "usage" not in events[-1][1]["response"]


async def test_stream_incomplete(app: MockUpstream) -> None:
    events = named_events((await respond(app, request(stream=True, max_output_tokens=1))).raw)
    assert events[-1][0] == "response.incomplete"
    assert events[-1][1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


async def test_stream_reasoning_and_tool_call(app: MockUpstream) -> None:
    events = named_events(
        (await respond(app, request({"reasoning_text": True, "tool_call": True}, stream=True))).raw
    )
    names = [name for name, _ in events]
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    arguments = "".join(d["delta"] for n, d in events if n == "response.function_call_arguments.delta")
    assert arguments == '{"city": "Paris"}'
    assert events[8][1]["item"]["arguments"] == ""
    assert events[-1][1]["response"]["usage"] == usage(6, 6, reasoning=3)


async def test_error_after(app: MockUpstream) -> None:
    exchange = await respond(app, request({"chunks": 4, "error_after": 1}, stream=True))
    assert exchange.complete
    events = named_events(exchange.raw)
    assert [name for name, _ in events][-2:] == ["response.output_text.delta", "error"]
    assert events[-1][1] == {
        "type": "error",
        "sequence_number": 5,
        "code": "mock_error",
        "message": "mock upstream failure",
        "param": None,
    }


async def test_cut_after_leaves_the_body_unfinished(app: MockUpstream) -> None:
    sent: list[bytes] = []

    async def receive() -> dict[str, Any]:
        if not sent:
            sent.append(b"")
            return {"type": "http.request", "body": b'{"model":"demo:cut_after=2","stream":true,"input":"x"}'}
        await asyncio.sleep(10)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body":
            assert message["more_body"] is True
            sent.append(message["body"])

    scope = {"type": "http", "method": "POST", "path": PATH, "headers": []}
    with pytest.raises(ConnectionCut):
        await app(scope, receive, send)
    names = [name for name, _ in named_events(b"".join(sent))]
    assert names[-3:] == [
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
    ]
    stats = (await drive(app, b"", method="GET", path="/mock/stats")).json()
    assert (stats["streams_started"], stats["active_streams"]) == (1, 0)


async def test_pacing(app: MockUpstream) -> None:
    started = time.monotonic()
    knobs = {"chunks": 3, "headers_delay_ms": 20, "ttft_ms": 20, "chunk_delay_ms": 10}
    exchange = await respond(app, request(knobs, stream=True))
    assert exchange.complete
    assert time.monotonic() - started >= 0.06
    stats = (await drive(app, b"", method="GET", path="/mock/stats")).json()
    assert (stats["streams_started"], stats["streams_completed"], stats["active_streams"]) == (1, 1, 0)


async def test_created_comes_before_the_time_to_first_token(app: MockUpstream) -> None:
    gone = asyncio.Event()
    task = asyncio.ensure_future(
        drive(app, request({"ttft_ms": 5000}, stream=True), path=PATH, disconnect=gone)
    )
    await asyncio.sleep(0.1)
    gone.set()
    exchange = await asyncio.wait_for(task, 1)
    assert [name for name, _ in named_events(exchange.raw)] == ["response.created", "response.in_progress"]
    stats = (await drive(app, b"", method="GET", path="/mock/stats")).json()
    assert (stats["streams_cancelled"], stats["active_streams"]) == (1, 0)


@pytest.mark.parametrize(
    "style", ["crlf", "multiline", "comments", "no_trailing_blank", "crlf+split", "garbage", "no_done"]
)
async def test_framing_styles_carry_the_same_events(app: MockUpstream, style: str) -> None:
    plain = named_events((await respond(app, request({"chunks": 3}, stream=True))).raw)
    exchange = await respond(app, request({"chunks": 3, "sse_style": style}, stream=True))
    raw = exchange.raw
    if style == "garbage":
        raw = re.sub(rb"data: (not json|\{\"broken\"|<html>)\r?\n\r?\n", b"", raw)
        assert raw != exchange.raw
    assert named_events(raw.replace(b"_mock_2", b"_mock_1")) == plain  # ids carry the request serial
    if "crlf" in style:
        assert b"event: response.created\r\ndata: " in exchange.raw
    if style == "comments":
        assert exchange.raw.startswith(b": ok") and b": keep-alive" in exchange.raw
    if style == "no_trailing_blank":
        assert exchange.raw.endswith(b"}\n") and not exchange.raw.endswith(b"\n\n")
    if "split" in style:
        assert any(part.endswith(b"\r") for part in exchange.bodies)
