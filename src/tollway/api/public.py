"""Unauthenticated liveness and the model list."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from tollway.runtime import Runtime

__all__ = ["health", "list_models"]


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/v1/models")
async def list_models(request: Request[Any, Any, Any]) -> dict[str, object]:
    runtime: Runtime = request.app.state.runtime
    await runtime.auth.authenticate(request.headers.get("authorization"))
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "tollway"}
            for name in runtime.router.models
        ],
    }
