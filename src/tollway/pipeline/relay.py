"""Relaying a streamed chat completion and closing it with exactly one usage chunk.

End states (see the README):
- completed: the upstream finished ([DONE], a finish_reason or its usage
  chunk, then a clean end); its usage is authoritative where reported.
- client_disconnected: the client went away; the upstream request is closed
  at once and what it produced until then is counted.
- upstream_broke_off / upstream_timeout: the upstream failed mid-stream; what
  was delivered is counted (never the error text), the client gets the usage
  chunk and then an error event instead of `[DONE]`.
- server_shutdown: the server ended the stream when its shutdown grace period
  was over (see tollway.serving.shutdown); billed and closed as a break-off.
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
from tollway.serving.shutdown import Cut, Shutdown
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
    ctx: ChatContext,
    response: httpx.Response,
    counter: TokenCounter,
    scrub: Scrubber,
    on_end: OnEnd,
    *,
    usage_with_choice: bool = False,
    shutdown: Shutdown | None = None,
) -> AsyncIterator[bytes]:
    """Relay the upstream's stream; `usage_with_choice` is `[server] stream_usage_chunk = "with_choice"`."""
    meter = StreamMeter(ctx.route.model.name if ctx.route.alias else None)
    parser = SSEParser()
    state: EndState = "client_disconnected"
    closed_from_outside = True  # until the reading below finishes on its own
    chunks = chunks_with_idle_timeout(response, ctx.upstream.idle_timeout, shutdown)
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
        except Cut:
            state = "server_shutdown"
        closed_from_outside = False
    finally:
        # Runs on cancellation too (the client went away, or the server cancelled it while
        # shutting down): close the upstream at once, shielded so the cleanup cannot be cancelled.
        with anyio.CancelScope(shield=True):
            await response.aclose()
            if isinstance(meter.model, str):
                ctx.upstream_model = meter.model
            if closed_from_outside:
                if shutdown is not None and shutdown.cutting:
                    state = "server_shutdown"
                await on_end(ctx, state, await _usage(ctx, counter, meter))
    usage = await _usage(ctx, counter, meter)
    cost = await on_end(ctx, state, usage)
    options = ctx.chat.request.stream_options
    asked = options is not None and bool(options.include_usage)
    yield _usage_chunk(ctx, meter, usage, cost, with_choice=usage_with_choice and not asked)
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
    return await resolve_usage(
        counter, ctx.route, ctx.chat.body, meter.reported, meter.text, meter.reasoning, ctx.price
    )


def _usage_chunk(
    ctx: ChatContext, meter: StreamMeter, usage: Usage, cost: Decimal | None, *, with_choice: bool
) -> bytes:
    chunk: dict[str, Any] = {
        "id": meter.id,
        "object": "chat.completion.chunk",
        "created": meter.created,
        "model": ctx.route.model.name if ctx.route.alias or meter.model is None else meter.model,
        # OpenAI's shape is no choices at all; "with_choice" adds one empty one for client code
        # that reads choices[0] of every chunk.
        "choices": [{"index": 0, "delta": {}, "finish_reason": None}] if with_choice else [],
        "usage": to_openai(usage, cost),
    }
    return b"data: " + _encode(chunk) + b"\n\n"


def _error_event(state: EndState, meter: StreamMeter, scrub: Scrubber) -> bytes:
    if state == "server_shutdown":
        body = error_body(
            "The server is shutting down: this stream was ended (what was delivered is billed).",
            "server_error",
            "server_shutdown",
        )
    elif state == "upstream_timeout":
        body = error_body("The upstream went silent mid-stream.", "upstream_error", "upstream_timeout")
    else:
        detail = ""
        if isinstance(meter.error, dict) and isinstance(meter.error.get("message"), str):
            detail = ": " + scrub(meter.error["message"].encode()).decode(errors="replace")[:500]
        body = error_body(f"The upstream broke off mid-stream{detail}", "upstream_error", "upstream_error")
    return b"data: " + body + b"\n\n"
