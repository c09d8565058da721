"""The mock's `/v1/responses`: OpenAI's Responses API, non-stream and stream, deterministic.

What the answer says comes from `responses_events`; this module sends it.
A stream is OpenAI's event sequence, each event framed as `event: <type>` +
`data: <json>` with a `sequence_number`, and no `[DONE]`.  The pacing and
fault knobs work as on chat completions: `headers_delay_ms` before the
response starts; `response.created` and `response.in_progress` at once, then
`ttft_ms` before the first output event; `chunk_delay_ms` before every delta
but the first; `cut_after` / `error_after` N: after N content deltas (output
text or function-call arguments) the connection is dropped / an `error`
event is sent and the stream ends; `usage=absent`: the terminal event's
response has no usage.  `sse_style` framing variants apply too (`no_done`
changes nothing: there is no `[DONE]` to leave out).
"""

from __future__ import annotations

import asyncio
from typing import Any

from tollway.mock_upstream.asgi import Receive, Send, encode, send_json_later
from tollway.mock_upstream.behaviour import Behaviour
from tollway.mock_upstream.responses_events import (
    EventKind,
    ResponsePlan,
    build_response_plan,
    response_body,
    response_events,
)
from tollway.mock_upstream.sse import GARBAGE, Framer
from tollway.mock_upstream.stream import SSE_HEADERS, YIELD_EVERY, ConnectionCut, sleep_ms

__all__ = ["STREAM_ERROR", "EventFramer", "answer", "write_response_stream"]

STREAM_ERROR = {"type": "error", "code": "mock_error", "message": "mock upstream failure", "param": None}


async def answer(
    mock: Any, receive: Receive, send: Send, body: dict[str, Any], behaviour: Behaviour, serial: int
) -> None:
    plan = build_response_plan(body, behaviour, serial)
    if body.get("stream") is True:
        await mock.run_stream(receive, write_response_stream(send, plan, behaviour))
        return
    # A non-streamed answer arrives when the streamed one would have finished.
    steps = len(plan.reasoning) + len(plan.pieces)
    delay = behaviour.headers_delay_ms + behaviour.ttft_ms + behaviour.chunk_delay_ms * max(steps - 1, 0)
    await send_json_later(send, receive, delay, 200, response_body(plan))


class EventFramer:
    """Named SSE events (`event:` + `data:`), in chat's framing styles (see `sse.Framer`)."""

    __slots__ = ("_comments", "_eol", "_events", "_garbage", "_inner")

    def __init__(self, styles: frozenset[str]) -> None:
        # The data lines come from chat's framer; comments and garbage go between whole events here,
        # so that an `event:` line never ends up in front of anything but its own data.
        self._inner = Framer(styles - {"comments", "garbage"})
        self._eol = b"\r\n" if "crlf" in styles else b"\n"
        self._comments = "comments" in styles
        self._garbage = "garbage" in styles
        self._events = 0

    def opening(self) -> bytes:
        return b": ok" + self._eol + self._eol if self._comments else b""

    def event(self, name: str, payload: bytes, last: bool = False) -> bytes:
        eol = self._eol
        out = b"event: " + name.encode() + eol + self._inner.event(payload, last)
        if self._comments and self._events:
            out = b": keep-alive" + eol + eol + out
        if self._garbage and 0 < self._events <= len(GARBAGE):
            out = b"data: " + GARBAGE[self._events - 1] + eol + eol + out
        self._events += 1
        return out

    def pieces(self, data: bytes) -> list[bytes]:
        return self._inner.pieces(data)


async def write_response_stream(send: Send, plan: ResponsePlan, behaviour: Behaviour) -> None:
    await sleep_ms(behaviour.headers_delay_ms)
    await send({"type": "http.response.start", "status": 200, "headers": list(SSE_HEADERS)})
    framer = EventFramer(behaviour.sse_styles)
    unpaused = 0
    sequence = 0

    async def write(name: str, fields: dict[str, Any], last: bool = False) -> None:
        nonlocal unpaused, sequence
        payload = encode({"type": name, "sequence_number": sequence, **fields})
        sequence += 1
        for piece in framer.pieces(framer.event(name, payload, last)):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        unpaused += 1
        if unpaused >= YIELD_EVERY:
            unpaused = 0
            await asyncio.sleep(0)

    opening = framer.opening()
    if opening:
        await send({"type": "http.response.body", "body": opening, "more_body": True})
    content_sent = 0
    waited = paced = False
    for event in response_events(plan):
        kind = event.kind
        if kind is not EventKind.LIFECYCLE and not waited:
            await sleep_ms(behaviour.ttft_ms)
            waited = True
        if kind is EventKind.CONTENT or kind is EventKind.TAIL:
            if behaviour.cut_after is not None and content_sent >= behaviour.cut_after:
                raise ConnectionCut(f"mock cut_after={behaviour.cut_after}")
            if behaviour.error_after is not None and content_sent >= behaviour.error_after:
                await write("error", STREAM_ERROR, last=True)
                break
        if kind is EventKind.CONTENT or kind is EventKind.WORD:
            if paced and behaviour.chunk_delay_ms > 0:
                await sleep_ms(behaviour.chunk_delay_ms)
                unpaused = 0
            paced = True
        last = kind is EventKind.TAIL and event.name in ("response.completed", "response.incomplete")
        await write(event.name, event.fields, last)
        if kind is EventKind.CONTENT:
            content_sent += 1
    await send({"type": "http.response.body", "body": b"", "more_body": False})
