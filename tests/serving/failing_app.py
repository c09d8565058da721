"""An ASGI app whose start-up always fails, for the supervisor test (imported by worker processes)."""

from __future__ import annotations

from typing import Any


async def _app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "tollway: the test app refuses to start"})


def create() -> Any:
    return _app
