"""Client usage routes: the caller's own workspace only."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from tollway.runtime import Runtime

__all__ = ["credits_daily", "credits_log", "credits_stats", "usage_record", "usage_summary"]


async def _caller(request: Request[Any, Any, Any]) -> tuple[Runtime, str, dict[str, str]]:
    runtime: Runtime = request.app.state.runtime
    principal = await runtime.auth.authenticate(request.headers.get("authorization"))
    return runtime, principal.workspace_id, dict(request.query_params.items())


@get("/v1/usage")
async def usage_summary(request: Request[Any, Any, Any]) -> dict[str, Any]:
    runtime, workspace_id, query = await _caller(request)
    return await runtime.reports.summary(workspace_id, query, "/v1/usage")


@get("/v1/usage/requests/{request_id:str}")
async def usage_record(request: Request[Any, Any, Any], request_id: str) -> dict[str, Any]:
    runtime, workspace_id, _ = await _caller(request)
    return await runtime.reports.request(workspace_id, request_id)


@get("/v1/credits/usage")
async def credits_stats(request: Request[Any, Any, Any]) -> dict[str, Any]:
    runtime, workspace_id, query = await _caller(request)
    return await runtime.reports.stats(workspace_id, query)


@get("/v1/credits/usage/daily")
async def credits_daily(request: Request[Any, Any, Any]) -> dict[str, Any]:
    runtime, workspace_id, query = await _caller(request)
    return await runtime.reports.daily(workspace_id, query)


@get("/v1/credits/usage/log")
async def credits_log(request: Request[Any, Any, Any]) -> dict[str, Any]:
    runtime, workspace_id, query = await _caller(request)
    return await runtime.reports.log(workspace_id, query)
