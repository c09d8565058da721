"""POST /v1/chat/completions: authenticate → validate → reserve → forward → relay/meter → settle."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anyio
from litestar import Request, Response, post
from litestar.response import Stream

from tollway.api.edge import request_id as edge_request_id
from tollway.billing.biller import Hold, Settlement
from tollway.chat.complete import meter_completion, render_completion
from tollway.chat.context import ChatContext, EndState
from tollway.chat.request import parse_chat_request
from tollway.chat.routing import forward
from tollway.chat.stream import relay_stream
from tollway.clock import now_us
from tollway.money import format_usd
from tollway.runtime import Runtime
from tollway.usage import Usage

__all__ = ["chat_completions"]

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


@post("/v1/chat/completions", status_code=200)
async def chat_completions(request: Request[Any, Any, Any]) -> Response[Any]:
    runtime: Runtime = request.app.state.runtime
    principal = await runtime.auth.authenticate(request.headers.get("authorization"))
    chat = parse_chat_request(await request.body())
    route = runtime.router.resolve(chat.request.model)
    request_id = edge_request_id(request.scope)
    started = now_us()
    hold = await runtime.biller.reserve(principal, route, chat, request_id)
    try:
        upstream, response = await forward(runtime.upstream, route, chat)
        ctx = ChatContext(
            request_id=request_id,
            principal=principal,
            route=route,
            chat=chat,
            upstream=upstream,
            started_us=started,
            price=hold.price,
        )
        if chat.stream:
            return await _stream(runtime, ctx, hold, response)
        payload, usage = await meter_completion(ctx, response, runtime.counter)
        settled = await runtime.biller.settle(hold, ctx, "completed", usage)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await runtime.biller.release(hold)
        raise
    return Response(
        render_completion(payload, usage, settled.cost_usd),
        media_type="application/json",
        headers={
            "x-request-cost": format_usd(settled.cost_nano),
            "x-tokens-used": str(usage.total),
            "x-balance-remaining": format_usd(settled.balance_nano),
        },
    )


async def _stream(runtime: Runtime, ctx: ChatContext, hold: Hold, response: Any) -> Stream:
    async def on_end(ctx: ChatContext, state: EndState, usage: Usage) -> Decimal | None:
        try:
            settled: Settlement = await runtime.biller.settle(hold, ctx, state, usage)
        except Exception:
            await runtime.biller.release(hold, note="settlement failed")
            raise
        return settled.cost_usd

    relay = relay_stream(
        ctx,
        response,
        runtime.counter,
        runtime.upstream.scrub,
        on_end,
        usage_with_choice=runtime.settings.config.server.stream_usage_chunk == "with_choice",
        shutdown=runtime.shutdown,
    )
    # Start the relay now: from here on its own cleanup settles the reservation,
    # even if the client is gone before the first chunk is sent.
    await anext(relay)
    return Stream(relay, media_type="text/event-stream", headers=_SSE_HEADERS)
