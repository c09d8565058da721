"""Relaying a streamed chat completion and closing it with exactly one usage chunk.

End states (see the README):
- completed: the upstream finished ([DONE], a finish_reason or its usage
  chunk, then a clean end); its usage is authoritative where reported.
- client_disconnected: the client went away; the upstream request is closed
  at once and what it produced until then is counted.
- upstream_broke_off / upstream_timeout: the upstream failed mid-stream; what
  was delivered is counted (never the error text), the client gets the usage
  chunk and then an error event instead of `[DONE]`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import anyio
import httpx
import msgspec

from tollway.chat.context import ChatContext, EndState
from tollway.chat.meter import StreamMeter
from tollway.chat.metering import resolve_usage
from tollway.errors import error_body
from tollway.tokens import TokenCounter
from tollway.upstream.client import chunks_with_idle_timeout
from tollway.upstream.scrub import Scrubber
from tollway.upstream.sse import SSEEvent, SSEParser
from tollway.usage import Usage, to_openai

__all__ = ["OnEnd", "relay_stream"]

# Called exactly once per stream with how it ended and its usage; returns the cost to report.
OnEnd = Callable[[ChatContext, EndState, Usage], Awaitable[Decimal | None]]

_encode = msgspec.json.Encoder(decimal_format="number").encode
_DONE = b"data: [DONE]\n\n"
# After [DONE], how long to wait for the end of the upstream's body.  Reading it
# to its end returns the connection to the pool; cutting it costs a new one.
DRAIN_SECONDS = 0.05


def _relay(events: list[SSEEvent], meter: StreamMeter) -> tuple[bytes, bool]:
    """The bytes to pass on for these events, and whether the upstream is done."""
    out: list[bytes] = []
    for event in events:
        if event.data == b"[DONE]":
            return b"".join(out), True
        relayed = meter.observe(event.data)
        if meter.error is not None:
            return b"".join(out), True
        if relayed is not None:
            out.append(relayed)
    return b"".join(out), False


async def relay_stream(
    ctx: ChatContext, response: httpx.Response, counter: TokenCounter, scrub: Scrubber, on_end: OnEnd
) -> AsyncIterator[bytes]:
    meter = StreamMeter()
    parser = SSEParser()
    state: EndState = "client_disconnected"
    chunks = chunks_with_idle_timeout(response, ctx.upstream.idle_timeout)
    try:
        # The caller takes this first, empty item to start the generator, so that
        # the `finally` below is guaranteed to run (a never-started generator skips it).
        yield b""
        try:
            done = False
            async for raw in chunks:
                out, done = _relay(parser.feed(raw), meter)
                if out:
                    yield out
                if done:
                    await _drain(chunks)
                    break
            if not done:
                out, done = _relay(parser.close(), meter)
                if out:
                    yield out
            ended_well = done or meter.finished or meter.reported is not None
            state = "completed" if meter.error is None and ended_well else "upstream_broke_off"
        except TimeoutError:
            state = "upstream_timeout"
        except httpx.HTTPError:
            state = "upstream_broke_off"
    finally:
        # Runs on cancellation too (the client went away): close the upstream
        # at once, shielded so the cleanup itself cannot be cancelled.
        with anyio.CancelScope(shield=True):
            await response.aclose()
            if state == "client_disconnected":
                await on_end(ctx, state, await _usage(ctx, counter, meter))
    usage = await _usage(ctx, counter, meter)
    cost = await on_end(ctx, state, usage)
    yield _usage_chunk(meter, usage, cost)
    yield _DONE if state == "completed" else _error_event(state, meter, scrub)


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read the rest of a finished body (normally just its end), so its connection is reused."""
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in chunks:
                pass
    except (TimeoutError, httpx.HTTPError):
        pass


async def _usage(ctx: ChatContext, counter: TokenCounter, meter: StreamMeter) -> Usage:
    return await resolve_usage(counter, ctx.route, ctx.chat.body, meter.reported, meter.text, meter.reasoning)


def _usage_chunk(meter: StreamMeter, usage: Usage, cost: Decimal | None) -> bytes:
    chunk: dict[str, Any] = {
        "id": meter.id,
        "object": "chat.completion.chunk",
        "created": meter.created,
        "model": meter.model,
        "choices": [],
        "usage": to_openai(usage, cost),
    }
    return b"data: " + _encode(chunk) + b"\n\n"


def _error_event(state: EndState, meter: StreamMeter, scrub: Scrubber) -> bytes:
    if state == "upstream_timeout":
        body = error_body("The upstream went silent mid-stream.", "upstream_error", "upstream_timeout")
    else:
        detail = ""
        if isinstance(meter.error, dict) and isinstance(meter.error.get("message"), str):
            detail = ": " + scrub(meter.error["message"].encode()).decode(errors="replace")[:500]
        body = error_body(f"The upstream broke off mid-stream{detail}", "upstream_error", "upstream_error")
    return b"data: " + body + b"\n\n"
