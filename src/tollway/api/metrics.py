"""`GET /metrics`: Prometheus text exposition, summed over the server's workers (SPEC §7)."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Response, get
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from tollway.api.admin import require_admin
from tollway.api.openapi import documented
from tollway.observe.metrics import CONTENT_TYPE
from tollway.runtime import Runtime

__all__ = ["metrics"]


def _admin_unless_public(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    runtime: Runtime = connection.app.state.runtime
    if not runtime.settings.config.metrics.public:
        require_admin(connection, handler)


@get(
    "/metrics",
    guards=[_admin_unless_public],
    name="metrics",
    media_type=CONTENT_TYPE,
    summary="Prometheus metrics",
    opt=documented(auth="admin_or_none"),
)
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The server's metrics: the admin token, or none with `[metrics] public = true`."""
    runtime: Runtime = request.app.state.runtime
    # With several workers this reads every worker's files: off the event loop.
    body = await asyncio.to_thread(runtime.metrics.render)
    return Response(body, media_type=CONTENT_TYPE)
