"""The application factory: wiring lives here and nowhere else."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from litestar import Litestar
from litestar.handlers import asgi
from litestar.types import Receive, Scope, Send

from tollway.api.admin import AdminController
from tollway.api.chat import chat_completions
from tollway.api.credits import balance, ledger_page, pricing
from tollway.api.errors import exception_handlers
from tollway.api.public import health, list_models
from tollway.api.usage import credits_daily, credits_log, credits_stats, usage_record, usage_summary
from tollway.config import BUILTIN_DEMO, Settings, load_settings
from tollway.mock_upstream import create_app as create_demo_upstream
from tollway.runtime import open_runtime

__all__ = ["DEMO_MOUNT", "app_from_env", "create_app"]

DEMO_MOUNT = "/_demo"


def create_app(
    settings: Settings,
    *,
    public_url: str | None = None,
    upstream_transport: httpx.AsyncBaseTransport | None = None,
) -> Litestar:
    """Build the ASGI app.  `public_url` is where this server listens, for the built-in demo upstream."""
    server = settings.config.server
    base = public_url or f"http://127.0.0.1:{server.port}"
    uses_demo = any(u.base_url == BUILTIN_DEMO for u in settings.config.upstreams)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_runtime(
            settings, demo_base_url=f"{base}{DEMO_MOUNT}/v1", upstream_transport=upstream_transport
        ) as runtime:
            app.state.runtime = runtime
            yield

    handlers: list[object] = [
        health,
        list_models,
        chat_completions,
        pricing,
        balance,
        ledger_page,
        AdminController,
        usage_summary,
        usage_record,
        credits_stats,
        credits_daily,
        credits_log,
    ]
    if uses_demo:
        handlers.append(create_demo_mount())
    return Litestar(
        route_handlers=handlers,  # type: ignore[arg-type]
        lifespan=[lifespan],
        exception_handlers=exception_handlers(),
        request_max_body_size=server.max_request_bytes,
        openapi_config=None,
        logging_config=None,
        debug=False,
    )


def create_demo_mount() -> object:
    """The built-in demo upstream, served by this same process under `DEMO_MOUNT`."""
    demo = create_demo_upstream()

    @asgi(DEMO_MOUNT, is_mount=True, copy_scope=True)
    async def demo_upstream(scope: Scope, receive: Receive, send: Send) -> None:
        await demo(scope, receive, send)

    return demo_upstream


def app_from_env() -> Litestar:
    """Factory for `uvicorn --factory` worker processes: the parent passes its choices by environment."""
    settings = load_settings(os.environ.get("TOLLWAY_CONFIG") or None)
    return create_app(settings, public_url=os.environ.get("TOLLWAY_PUBLIC_URL") or None)
