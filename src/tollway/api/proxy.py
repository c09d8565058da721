"""The one handler behind every surface, as raw ASGI.

authenticate → validate → reserve → forward → relay/meter → settle.

`POST /v1{surface.path}` is the hot route: `SurfaceRoutes` answers it before
the framework sees the request (Litestar's router, request and response
objects cost about 90 µs a request and 0.2 ms to a stream's first chunk).
Every other route, and every other method on these paths (a 405), is
Litestar's.  The surfaces are still Litestar routes as well (`surface_route`),
for the OpenAPI document and for a path Litestar normalises (a trailing
slash): those handlers hand the exchange to the same `SurfaceApp`, so there
is one pipeline with two doors.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Mapping
from decimal import Decimal
from typing import Any

import anyio
from litestar import Response, post
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.types import ASGIApp

from tollway.api.edge import RAW_SEND
from tollway.api.edge import request_id as edge_request_id
from tollway.api.openapi.surfaces import surface_docs
from tollway.billing.biller import Hold, Settlement
from tollway.clock import now_us
from tollway.errors import APIError, RequestTooLarge, UpstreamStatus
from tollway.money import format_usd
from tollway.observe import Exchange
from tollway.pipeline.complete import meter_body, render_body
from tollway.pipeline.context import EndState, RequestContext
from tollway.pipeline.relay import relay_stream
from tollway.pipeline.routing import forward
from tollway.runtime import Runtime
from tollway.serving.timeouts import Receive, Send
from tollway.surfaces import check_protocol
from tollway.surfaces.base import Surface
from tollway.usage import Usage

__all__ = ["SurfaceApp", "SurfaceRoutes", "in_surface_shape", "surface_route"]

log = logging.getLogger("tollway")

Scope = Any  # an ASGI HTTP scope (uvicorn's dict)

_JSON = b"application/json"
_SSE = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)
_TOO_LARGE = "The request body is larger than this server accepts."


class _Gone(Exception):
    """The client went away before its request body was in (or the body timeout answered it)."""


class _Json:
    __slots__ = ("body", "headers")

    def __init__(self, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.body = body
        self.headers = headers


class _Stream:
    __slots__ = ("headers", "relay")

    def __init__(self, relay: AsyncIterator[bytes], headers: list[tuple[bytes, bytes]]) -> None:
        self.relay = relay
        self.headers = headers


class SurfaceApp:
    """Serves one surface's exchange given its scope: the body, the pipeline, the answer."""

    def __init__(self, max_request_bytes: int) -> None:
        self.state = State()  # the app's state: the runtime is there once the lifespan has opened it
        self._max_body = max_request_bytes

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, surface: Surface, raw_send: Send | None = None
    ) -> None:
        """`raw_send`: the server's own send, for a stream's chunks (see `_send_stream`)."""
        runtime: Runtime = self.state.runtime
        exchange = runtime.observer.begin(edge_request_id(scope), surface.operation)
        started = False
        try:
            try:
                reply = await exchange.noting_refusals(
                    self._handle(runtime, surface, scope, receive, exchange)
                )
            except APIError as refusal:
                status = refusal.status
                content_type = (
                    refusal.content_type.encode("latin-1") if isinstance(refusal, UpstreamStatus) else _JSON
                )
                started = True
                body = surface.error_body(refusal)
                await _send_whole(send, status, body, content_type, _encoded(refusal.headers))
                exchange.finish(status)
                return
            except _Gone:
                exchange.finish(499, "client_disconnected")
                return
            started = True
            if isinstance(reply, _Stream):
                # The relay finishes the exchange.
                await _send_stream(send, raw_send or send, receive, reply)
            else:
                await _send_whole(send, 200, reply.body, _JSON, reply.headers)
                exchange.finish(200)
        except Exception as exc:
            log.exception("unexpected error", exc_info=exc)
            exchange.crashed(exc)
            if not started:
                error = APIError("The server had an error while processing your request.")
                await _send_whole(send, 500, surface.error_body(error), _JSON, [])
        except BaseException as exc:
            exchange.crashed(exc)
            raise

    async def _body(self, declared: str | None, receive: Receive) -> bytes:
        """The request body, refused past `max_request_bytes` by its Content-Length or as it comes."""
        limit = self._max_body
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestTooLarge(_TOO_LARGE)
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _Gone
            piece: bytes = message.get("body", b"")
            size += len(piece)
            if size > limit:
                raise RequestTooLarge(_TOO_LARGE)
            parts.append(piece)
            if not message.get("more_body"):
                return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _handle(
        self, runtime: Runtime, surface: Surface, scope: Scope, receive: Receive, exchange: Exchange
    ) -> _Json | _Stream:
        headers = _headers(scope)
        principal = await runtime.auth.authenticate(headers.get("authorization"), headers.get("x-api-key"))
        exchange.principal = principal
        call = surface.parse(await self._body(headers.get("content-length"), receive))
        exchange.model, exchange.stream = call.model, call.stream
        route = runtime.router.resolve(call.model)
        exchange.served = route.model.name
        check_protocol(route.model.name, route.protocol, surface.protocol, f"/v1{surface.path}")
        path, passed = surface.upstream_request(headers, scope.get("query_string", b"").decode("latin-1"))
        request_id = exchange.request_id
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
        billed = [
            (b"x-request-cost", format_usd(settled.cost_nano).encode()),
            (b"x-tokens-used", b"%d" % usage.total),
            (b"x-balance-remaining", format_usd(settled.balance_nano).encode()),
        ]
        if hold.admission is not None:
            billed += _encoded(hold.rate_headers)
        return _Json(render_body(ctx, payload, response.content, usage, settled.cost_usd), billed)


class SurfaceRoutes:
    """ASGI: `POST /v1{surface.path}` to `SurfaceApp`, everything else to the framework's app."""

    __slots__ = ("_paths", "_surfaces", "app")

    def __init__(self, surfaces: SurfaceApp, served: tuple[Surface, ...], app: Any) -> None:
        self._surfaces = surfaces
        self.app = app  # the framework's
        self._paths = {f"/v1{surface.path}": surface for surface in served}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            surface = self._paths.get(scope["path"])
            if surface is not None:
                await self._surfaces(scope, receive, send, surface, scope.get(RAW_SEND))
                return
        await self.app(scope, receive, send)


def surface_route(surface: Surface, app: SurfaceApp) -> HTTPRouteHandler:
    """`POST /v1{surface.path}` as Litestar knows it: documented, and served by `app`."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        await app(scope, receive, send, surface)

    @post(f"/v1{surface.path}", status_code=200, name=surface.operation, **surface_docs(surface))
    async def handle() -> ASGIApp:
        return serve  # type: ignore[return-value]  # Litestar's ASGIApp wants its own TypedDicts

    return handle


async def in_surface_shape(surface: Surface, handling: Awaitable[Response[Any]]) -> Response[Any]:
    """Await a Litestar handler; a refusal it raises (a body too large too) answers in `surface`'s shape."""
    try:
        return await handling
    except HTTPException as exc:
        if exc.status_code != 413:
            raise
        refusal: APIError = RequestTooLarge(_TOO_LARGE)
    except APIError as exc:
        refusal = exc
    media_type = refusal.content_type if isinstance(refusal, UpstreamStatus) else "application/json"
    return Response(
        surface.error_body(refusal),
        status_code=refusal.status,
        media_type=media_type,
        headers=refusal.headers,
    )


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by (lower-case) name; a repeated header keeps its first value."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in reversed(headers)}


def _encoded(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


async def _send_whole(
    send: Send, status: int, body: bytes, content_type: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", b"%d" % len(body)), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_stream(send: Send, raw_send: Send, receive: Receive, reply: _Stream) -> None:
    """Relay the stream; if the client goes away, the relay is stopped (and settles what it delivered).

    The start goes through `send` (the edge adds its headers); the chunks go to `raw_send`, the
    server's own, which the wrappers between would only pass them on to.
    """
    relay = reply.relay
    task = asyncio.current_task()
    assert task is not None
    streaming = True
    gone = False

    async def watch() -> None:
        nonlocal gone
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        except Exception:  # the server's receive failed: treat the client as gone
            pass
        if streaming:  # the task is suspended inside the `try` below: the cancellation lands there
            gone = True
            task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        await send({"type": "http.response.start", "status": 200, "headers": [*_SSE, *reply.headers]})
        async for chunk in relay:
            await raw_send({"type": "http.response.body", "body": chunk, "more_body": True})
        await raw_send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not gone or task.uncancel() > 0:
            raise
    finally:
        streaming = False
        watcher.cancel()
        # Stopped between two chunks: the relay's own cleanup (close the upstream, settle) runs now.
        with anyio.CancelScope(shield=True):
            await relay.aclose()  # type: ignore[attr-defined]


async def _stream(
    runtime: Runtime, ctx: RequestContext, hold: Hold, response: Any, exchange: Exchange
) -> _Stream:
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
    return _Stream(relay, [] if hold.admission is None else _encoded(hold.rate_headers))
