"""Relaying a stream, on any surface, and closing it with exactly one usage-bearing ending.

The surface's `EventMeter` decides what each event means; this module owns
the loop, the end states and the money (see the README):

- completed: the upstream finished (the surface's end marker, a finish
  reason or a usage report, then a clean end); its usage is authoritative
  where reported.
- client_disconnected: the client went away; the upstream request is closed
  at once and what it produced until then is counted.
- upstream_broke_off / upstream_timeout: the upstream failed mid-stream; what
  was delivered is counted (never the error text), and the surface writes a
  bad ending (its usage, then an error) instead of a good one.
- server_shutdown: the server ended the stream when its shutdown grace period
  was over (see tollway.serving.shutdown); billed and closed as a break-off.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from time import perf_counter

import anyio
import httpx

from tollway.pipeline.context import EndState, RequestContext
from tollway.pipeline.metering import resolve_usage
from tollway.serving.shutdown import Cut, Shutdown
from tollway.surfaces.base import EventMeter
from tollway.tokens import TokenCounter
from tollway.upstream.answer import Answer
from tollway.upstream.client import chunks_with_idle_timeout
from tollway.upstream.scrub import Scrubber
from tollway.upstream.sse import SSEEvent, SSEParser
from tollway.usage import Usage

__all__ = ["OnEnd", "relay_stream"]

# Called exactly once per stream with how it ended and its usage; returns the cost to report.
OnEnd = Callable[[RequestContext, EndState, Usage], Awaitable[Decimal | None]]

# After the upstream's end marker, how long to wait for the end of its body.  Reading it
# to its end returns the connection to the pool; cutting it costs a new one.
DRAIN_SECONDS = 0.05


def _relay(events: list[SSEEvent], meter: EventMeter) -> tuple[bytes, bool]:
    """The bytes to pass on for these events, and whether the upstream is done."""
    out: list[bytes] = []
    for event in events:
        relayed, done = meter.observe(event)
        if relayed is not None:
            out.append(relayed)
        if done:
            return b"".join(out), True
    return b"".join(out), False


async def relay_stream(
    ctx: RequestContext,
    response: Answer,
    counter: TokenCounter,
    scrub: Scrubber,
    on_end: OnEnd,
    *,
    usage_with_choice: bool = False,
    shutdown: Shutdown | None = None,
) -> AsyncIterator[bytes]:
    """Relay the upstream's stream; `usage_with_choice` is `[server] stream_usage_chunk = "with_choice"`."""
    meter = ctx.surface.stream_meter(ctx.call, ctx.served_alias, usage_with_choice=usage_with_choice)
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
                    if not ctx.first_byte_at:
                        ctx.first_byte_at = perf_counter()
                    yield out
                if done:
                    await _drain(chunks)
                    break
            if not done:
                out, done = _relay(parser.close(), meter)
                if out:
                    if not ctx.first_byte_at:
                        ctx.first_byte_at = perf_counter()
                    yield out
            # The meter says when the answer is whole (a finish reason, a closing usage chunk, a
            # terminal event): a stream that merely stops before that was broken off.
            ended_well = done or meter.finished
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
    yield meter.ending(state, usage, cost, scrub)


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read the rest of a finished body (normally just its end), so its connection is reused."""
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in chunks:
                pass
    except (TimeoutError, httpx.HTTPError):
        pass


async def _usage(ctx: RequestContext, counter: TokenCounter, meter: EventMeter) -> Usage:
    return await resolve_usage(
        counter, ctx.route, ctx.call, meter.reported, meter.text, meter.reasoning, ctx.price
    )
