"""Unauthenticated liveness and the model list."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from tollway.api.wire import Health, ModelList, ModelRead
from tollway.runtime import Runtime

__all__ = ["get_model", "health", "list_models"]


@get("/health", sync_to_thread=False, summary="Check liveness")
def health() -> Health:
    """200 once the server accepts requests; no key needed."""
    return Health(status="ok")


@get("/v1/models", summary="List the served models")
async def list_models(request: Request[Any, Any, Any]) -> ModelList:
    """The served models, in OpenAI's list format."""
    runtime: Runtime = request.app.state.runtime
    await runtime.auth.authenticate(request.headers.get("authorization"))
    return ModelList(data=[ModelRead.of(name) for name in runtime.router.models])


@get("/v1/models/{model_id:path}", summary="Get a served model")
async def get_model(request: Request[Any, Any, Any], model_id: str) -> ModelRead:
    """One served model (404 `model_not_found` for any other name)."""
    runtime: Runtime = request.app.state.runtime
    await runtime.auth.authenticate(request.headers.get("authorization"))
    # A path parameter keeps its leading slash; model names may hold slashes ("org/model").
    return ModelRead.of(runtime.router.resolve(model_id.removeprefix("/")).model.name)
