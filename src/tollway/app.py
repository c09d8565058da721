"""The application factory: wiring lives here and nowhere else."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from litestar import Litestar
from litestar.handlers import asgi
from litestar.types import Receive, Scope, Send

from tollway.api.admin import AdminController
from tollway.api.admin_events import EventsController
from tollway.api.anthropic_tokens import count_tokens
from tollway.api.credits import balance, ledger_page, pricing
from tollway.api.edge import Edge
from tollway.api.errors import exception_handlers
from tollway.api.metrics import metrics
from tollway.api.openapi import openapi_config
from tollway.api.proxy import SurfaceApp, SurfaceRoutes, surface_route
from tollway.api.public import get_model, health, list_models
from tollway.api.usage import credits_daily, credits_log, credits_stats, usage_record, usage_summary
from tollway.config import BUILTIN_DEMO, Settings, load_settings
from tollway.console import console_routes
from tollway.errors import TollwayError
from tollway.mock_upstream import create_app as create_demo_upstream
from tollway.mock_upstream import quiet_scripted_cuts
from tollway.observe.metrics import MULTIPROC_ENV
from tollway.runtime import open_runtime
from tollway.serving import affinity
from tollway.serving.body_timeout import BodyTimeout
from tollway.serving.run import DEMO_KEY_ENV
from tollway.surfaces import SURFACES

__all__ = ["DEMO_MOUNT", "app_from_env", "create_app"]

DEMO_MOUNT = "/_demo"


def create_app(
    settings: Settings,
    *,
    public_url: str | None = None,
    upstream_transport: httpx.AsyncBaseTransport | None = None,
    demo_key: str | None = None,
) -> Edge:
    """Build the ASGI app.  `public_url` is where this server listens, for the built-in demo upstream.

    The demo upstream answers only tollway itself: it wants `demo_key` (by default
    `$TOLLWAY_DEMO_KEY`, which `serve` sets for its workers, else a fresh random one),
    and it has none of `tollway mock-upstream`'s inspection routes.
    """
    server = settings.config.server
    base = public_url or f"http://127.0.0.1:{server.port}"
    uses_demo = any(u.base_url == BUILTIN_DEMO for u in settings.config.upstreams)
    demo_key = demo_key or os.environ.get(DEMO_KEY_ENV) or "demo-" + secrets.token_urlsafe(24)

    failures: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            try:
                app.state.runtime = await stack.enter_async_context(
                    open_runtime(
                        settings,
                        demo_base_url=f"{base}{DEMO_MOUNT}/v1",
                        demo_key=demo_key,
                        upstream_transport=upstream_transport,
                    )
                )
            except TollwayError as exc:
                failures.append(str(exc))
                raise
            yield

    surfaces = SurfaceApp(server.max_request_bytes)
    handlers: list[object] = [
        health,
        list_models,
        get_model,
        *(surface_route(surface, surfaces) for surface in SURFACES),
        count_tokens,
        pricing,
        balance,
        ledger_page,
        AdminController,
        EventsController,
        metrics,
        usage_summary,
        usage_record,
        credits_stats,
        credits_daily,
        credits_log,
        *console_routes(),
    ]
    if uses_demo:
        handlers.append(create_demo_mount(demo_key))
    app = Litestar(
        route_handlers=handlers,  # type: ignore[arg-type]
        lifespan=[lifespan],
        exception_handlers=exception_handlers(),
        request_max_body_size=server.max_request_bytes,
        openapi_config=openapi_config(),
        logging_config=None,
        debug=False,
    )
    surfaces.state = app.state  # where the lifespan puts the runtime
    # The model surfaces skip the framework (see api/proxy.py); Litestar serves every other route.
    routed = SurfaceRoutes(surfaces, SURFACES, app)
    edge = Edge(BodyTimeout(routed, body_timeout=server.body_timeout), cors_origins=server.cors_origins)
    edge.startup_failures = failures
    return edge


def create_demo_mount(demo_key: str) -> object:
    """The built-in demo upstream, served by this same process under `DEMO_MOUNT`, for tollway alone."""
    demo = create_demo_upstream(api_key=demo_key, inspection=False)
    quiet_scripted_cuts()  # a knob that cuts a stream is a normal event for the demo: no traceback

    @asgi(DEMO_MOUNT, is_mount=True, copy_scope=True)
    async def demo_upstream(scope: Scope, receive: Receive, send: Send) -> None:
        await demo(scope, receive, send)

    return demo_upstream


def app_from_env() -> Edge:
    """Factory for `uvicorn --factory` worker processes: the parent passes its choices by environment."""
    settings = load_settings(os.environ.get("TOLLWAY_CONFIG") or None)
    if affinity.wanted(settings):
        # The workers' shared directory holds the CPU slots they claim (tollway.serving.affinity).
        affinity.pin(os.environ.get(MULTIPROC_ENV) or None)
    return create_app(settings, public_url=os.environ.get("TOLLWAY_PUBLIC_URL") or None)
