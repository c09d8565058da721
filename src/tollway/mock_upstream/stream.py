"""Writes a streamed completion over ASGI, with pacing and the scripted failure modes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from tollway.mock_upstream.asgi import Send, encode
from tollway.mock_upstream.behaviour import Behaviour
from tollway.mock_upstream.chat import Plan
from tollway.mock_upstream.chunks import Kind, Step, stream_steps
from tollway.mock_upstream.errors import error_body
from tollway.mock_upstream.sse import Framer

SSE_HEADERS = ((b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"))
DONE = b"[DONE]"
STREAM_ERROR = encode(error_body("mock upstream failure", "server_error", code="mock_error"))
# Events written without a pause before the stream yields to the event loop. A send() to a client that
# keeps up never waits, so an unpaced stream would otherwise hold the loop for its whole length and
# stall every other request on the server (and the watch for this client going away).
YIELD_EVERY = 32


class ConnectionCut(Exception):
    """Raised after a partial body so the server drops the connection, leaving the body unfinished."""


async def sleep_ms(ms: float) -> None:
    if ms > 0:
        await asyncio.sleep(ms / 1000)


async def write_stream(send: Send, plan: Plan, behaviour: Behaviour, include_usage: bool) -> None:
    await write_steps(send, stream_steps(plan, include_usage, behaviour.usage), behaviour)


async def write_steps(send: Send, steps: Iterable[Step], behaviour: Behaviour) -> None:
    """Write a stream of `steps` (any surface's chunks) with the pacing and faults `behaviour` asks for."""
    await sleep_ms(behaviour.headers_delay_ms)
    await send({"type": "http.response.start", "status": 200, "headers": list(SSE_HEADERS)})
    styles = behaviour.sse_styles
    framer = Framer(styles)

    unpaused = 0

    async def write(data: bytes) -> None:
        nonlocal unpaused
        for piece in framer.pieces(data):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        unpaused += 1
        if unpaused >= YIELD_EVERY:
            unpaused = 0
            await asyncio.sleep(0)

    opening = framer.opening()
    if opening:
        await write(opening)
    await sleep_ms(behaviour.ttft_ms)
    send_done = "no_done" not in styles
    content_sent = 0
    for step in steps:
        if step.kind is Kind.CONTENT or step.kind is Kind.TAIL:
            if behaviour.cut_after is not None and content_sent >= behaviour.cut_after:
                raise ConnectionCut(f"mock cut_after={behaviour.cut_after}")
            if behaviour.error_after is not None and content_sent >= behaviour.error_after:
                await write(framer.event(STREAM_ERROR, last=True))
                send_done = False
                break
        if step.delayed and behaviour.chunk_delay_ms > 0:
            await sleep_ms(behaviour.chunk_delay_ms)
            unpaused = 0
        last = len(step.chunks) - 1 if step.kind is Kind.TAIL and not send_done else -1
        for i, chunk in enumerate(step.chunks):
            await write(framer.event(encode(chunk), last=i == last))
        if step.kind is Kind.CONTENT:
            content_sent += 1
    if send_done:
        await write(framer.event(DONE, last=True))
    await send({"type": "http.response.body", "body": b"", "more_body": False})
