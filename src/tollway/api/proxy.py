"""The one handler behind every surface.

authenticate → validate → reserve → forward → relay/meter → settle.
"""

from __future__ import annotations

from collections.abc import Awaitable
from decimal import Decimal
from typing import Any

import anyio
from litestar import Request, Response, post
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.response import Stream

from tollway.api.edge import request_id as edge_request_id
from tollway.api.openapi.surfaces import surface_docs
from tollway.billing.biller import Hold, Settlement
from tollway.clock import now_us
from tollway.errors import APIError, InvalidRequest, RequestTooLarge, UpstreamStatus
from tollway.money import format_usd
from tollway.observe import Exchange
from tollway.pipeline.complete import meter_body, render_body
from tollway.pipeline.context import EndState, RequestContext
from tollway.pipeline.relay import relay_stream
from tollway.pipeline.routing import forward
from tollway.runtime import Runtime
from tollway.surfaces import surfaces_for
from tollway.surfaces.base import Surface
from tollway.usage import Usage

__all__ = ["in_surface_shape", "surface_route"]

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def surface_route(surface: Surface) -> HTTPRouteHandler:
    """`POST /v1{surface.path}`, served by `proxy`."""

    @post(f"/v1{surface.path}", status_code=200, name=surface.operation, **surface_docs(surface))
    async def handle(request: Request[Any, Any, Any]) -> Response[Any]:
        return await proxy(request, surface)

    return handle


async def proxy(request: Request[Any, Any, Any], surface: Surface) -> Response[Any]:
    """`_proxy`, with every refusal in the surface's own error shape, observed (metrics, access log)."""
    runtime: Runtime = request.app.state.runtime
    exchange = runtime.observer.begin(edge_request_id(request.scope), surface.operation)
    try:
        handling = exchange.noting_refusals(_proxy(request, surface, exchange))
        response = await in_surface_shape(surface, handling)
    except BaseException as exc:
        exchange.crashed(exc)
        raise
    if not isinstance(response, Stream):  # a stream's exchange finishes when the stream ends
        exchange.finish(response.status_code or 200)
    return response


async def in_surface_shape(surface: Surface, handling: Awaitable[Response[Any]]) -> Response[Any]:
    """Await a handler; a refusal it raises (a body over the limit too) answers in `surface`'s error shape."""
    try:
        return await handling
    except HTTPException as exc:
        if exc.status_code != 413:
            raise
        refusal: APIError = RequestTooLarge("The request body is larger than this server accepts.")
    except APIError as exc:
        refusal = exc
    media_type = refusal.content_type if isinstance(refusal, UpstreamStatus) else "application/json"
    return Response(
        surface.error_body(refusal),
        status_code=refusal.status,
        media_type=media_type,
        headers=refusal.headers,
    )


async def _proxy(request: Request[Any, Any, Any], surface: Surface, exchange: Exchange) -> Response[Any]:
    runtime: Runtime = request.app.state.runtime
    headers = request.headers
    principal = await runtime.auth.authenticate(headers.get("authorization"), headers.get("x-api-key"))
    exchange.principal = principal
    call = surface.parse(await request.body())
    exchange.model, exchange.stream = call.model, call.stream
    route = runtime.router.resolve(call.model)
    exchange.served = route.model.name
    if route.protocol != surface.protocol:
        raise InvalidRequest(
            f"The model '{route.model.name}' is served over the {route.protocol} protocol, not on "
            f"POST /v1{surface.path}: call {surfaces_for(route.protocol)}.",
            code="wrong_surface",
            param="model",
        )
    path, passed = surface.upstream_request(headers, request.scope.get("query_string", b"").decode("latin-1"))
    request_id = edge_request_id(request.scope)
    started = now_us()
    hold = await runtime.biller.reserve(principal, route, call, request_id)
    exchange.reserved()
    try:
        upstream, response = await forward(
            runtime.upstream, route, call, path, passed, failed=exchange.upstream_failed
        )
        exchange.upstream = upstream.name
        ctx = RequestContext(
            request_id=request_id,
            principal=principal,
            route=route,
            surface=surface,
            call=call,
            upstream=upstream,
            started_us=started,
            price=hold.price,
        )
        if call.stream:
            return await _stream(runtime, ctx, hold, response, exchange)
        payload, usage = await meter_body(ctx, response, runtime.counter)
        settled = await runtime.biller.settle(hold, ctx, "completed", usage)
        exchange.settled(usage, settled.cost_nano)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await runtime.biller.release(hold)
        raise
    return Response(
        render_body(ctx, payload, response.content, usage, settled.cost_usd),
        media_type="application/json",
        headers={
            "x-request-cost": format_usd(settled.cost_nano),
            "x-tokens-used": str(usage.total),
            "x-balance-remaining": format_usd(settled.balance_nano),
            **hold.rate_headers,
        },
    )


async def _stream(
    runtime: Runtime, ctx: RequestContext, hold: Hold, response: Any, exchange: Exchange
) -> Stream:
    async def on_end(ctx: RequestContext, state: EndState, usage: Usage) -> Decimal | None:
        try:
            settled: Settlement = await runtime.biller.settle(hold, ctx, state, usage)
        except Exception:
            await runtime.biller.release(hold, note="settlement failed")
            raise
        exchange.settled(usage, settled.cost_nano)
        return settled.cost_usd

    relay = relay_stream(
        ctx,
        response,
        runtime.counter,
        runtime.upstream.scrub,
        exchange.ending(on_end),
        usage_with_choice=runtime.settings.config.server.stream_usage_chunk == "with_choice",
        shutdown=runtime.shutdown,
    )
    # Start the relay now: from here on its own cleanup settles the reservation,
    # even if the client is gone before the first chunk is sent.
    await anext(relay)
    exchange.stream_started()
    headers = _SSE_HEADERS if hold.admission is None else {**_SSE_HEADERS, **hold.rate_headers}
    return Stream(relay, media_type="text/event-stream", headers=headers)
