"""Writing any stream of paced `Step`s over ASGI, with the scripted failure modes of chat's streams.

This is `stream.write_stream` with the steps as a parameter (chat's
`write_stream` builds its own from a chat `Plan`); the knobs mean the same:
`headers_delay_ms`, `ttft_ms`, `chunk_delay_ms`, `cut_after` / `error_after`
(counted in CONTENT steps), `sse_style`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from tollway.mock_upstream.asgi import Send, encode
from tollway.mock_upstream.behaviour import Behaviour
from tollway.mock_upstream.chunks import Kind, Step
from tollway.mock_upstream.sse import Framer
from tollway.mock_upstream.stream import DONE, SSE_HEADERS, STREAM_ERROR, YIELD_EVERY, ConnectionCut, sleep_ms

__all__ = ["write_steps"]


async def write_steps(send: Send, steps: Iterable[Step], behaviour: Behaviour) -> None:
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
