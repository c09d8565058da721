"""Unauthenticated liveness and the model list."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from tollway.runtime import Runtime

__all__ = ["get_model", "health", "list_models"]


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/v1/models")
async def list_models(request: Request[Any, Any, Any]) -> dict[str, object]:
    runtime: Runtime = request.app.state.runtime
    await runtime.auth.authenticate(request.headers.get("authorization"))
    return {"object": "list", "data": [_model(name) for name in runtime.router.models]}


@get("/v1/models/{model_id:path}")
async def get_model(request: Request[Any, Any, Any], model_id: str) -> dict[str, object]:
    runtime: Runtime = request.app.state.runtime
    await runtime.auth.authenticate(request.headers.get("authorization"))
    # A path parameter keeps its leading slash; model names may hold slashes ("org/model").
    return _model(runtime.router.resolve(model_id.removeprefix("/")).model.name)


def _model(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "tollway"}
