"""POST /v1/chat/completions: authenticate → validate → route → forward → relay/meter → settle."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from litestar import Request, Response, post
from litestar.response import Stream

from tollway.chat.complete import meter_completion, render_completion
from tollway.chat.context import ChatContext, EndState
from tollway.chat.request import parse_chat_request
from tollway.chat.routing import forward
from tollway.chat.stream import relay_stream
from tollway.clock import now_us
from tollway.keys import new_id
from tollway.runtime import Runtime
from tollway.usage import Usage

__all__ = ["chat_completions"]

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def _settle(ctx: ChatContext, state: EndState, usage: Usage) -> Decimal | None:
    # Billing (reservation settlement, ledger debit) attaches here.
    return None


@post("/v1/chat/completions", status_code=200)
async def chat_completions(request: Request[Any, Any, Any]) -> Response[Any]:
    runtime: Runtime = request.app.state.runtime
    principal = await runtime.auth.authenticate(request.headers.get("authorization"))
    chat = parse_chat_request(await request.body())
    route = runtime.router.resolve(chat.request.model)
    request_id = new_id("req")
    upstream, response = await forward(runtime.upstream, route, chat)
    ctx = ChatContext(
        request_id=request_id,
        principal=principal,
        route=route,
        chat=chat,
        upstream=upstream,
        started_us=now_us(),
    )
    if chat.stream:
        return Stream(
            relay_stream(ctx, response, runtime.counter, runtime.upstream.scrub, _settle),
            media_type="text/event-stream",
            headers={"x-request-id": request_id, **_SSE_HEADERS},
        )
    payload, usage = await meter_completion(ctx, response, runtime.counter)
    cost = await _settle(ctx, "completed", usage)
    return Response(
        render_completion(payload, usage, cost),
        media_type="application/json",
        headers={"x-request-id": request_id, "x-tokens-used": str(usage.total)},
    )
