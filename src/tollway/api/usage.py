"""Client usage routes: the caller's own workspace only.

The reports are the dicts `tollway.reports` builds (the CLI prints the same); `ResponseSpec`
documents each one's shape (`tollway.api.wire_reports`).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from tollway.api.openapi import documented, responds
from tollway.api.wire_reports import (
    DailyReport,
    DaysQuery,
    LogQuery,
    PeriodQuery,
    StatsReport,
    UsageLogPage,
    UsageRecordRead,
    UsageSummary,
)
from tollway.runtime import Runtime

__all__ = ["credits_daily", "credits_log", "credits_stats", "usage_record", "usage_summary"]


async def _caller(request: Request[Any, Any, Any]) -> tuple[Runtime, str, dict[str, str]]:
    runtime: Runtime = request.app.state.runtime
    principal = await runtime.auth.authenticate(request.headers.get("authorization"))
    return runtime, principal.workspace_id, dict(request.query_params.items())


@get(
    "/v1/usage",
    summary="Summarize usage over a period",
    opt=documented(query=PeriodQuery),
    responses=responds(UsageSummary, "The report."),
)
async def usage_summary(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Totals for the period and a breakdown per `operation_type` and model."""
    runtime, workspace_id, query = await _caller(request)
    return await runtime.reports.summary(workspace_id, query, "/v1/usage")


@get(
    "/v1/usage/requests/{request_id:str}",
    summary="Get one request's usage record",
    responses=responds(UsageRecordRead, "The usage record."),
)
async def usage_record(request: Request[Any, Any, Any], request_id: str) -> dict[str, Any]:
    """Tokens by class and source, rates applied, cost, model, upstream, stream, end state, timestamps."""
    runtime, workspace_id, _ = await _caller(request)
    return await runtime.reports.request(workspace_id, request_id)


@get(
    "/v1/credits/usage",
    summary="Usage statistics per surface and model",
    opt=documented(query=DaysQuery),
    responses=responds(StatsReport, "The report."),
)
async def credits_stats(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """One row per `operation_type` and model over the last `days` UTC days."""
    runtime, workspace_id, query = await _caller(request)
    return await runtime.reports.stats(workspace_id, query)


@get(
    "/v1/credits/usage/daily",
    summary="Usage per UTC day",
    opt=documented(query=DaysQuery),
    responses=responds(DailyReport, "The report."),
)
async def credits_daily(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """One row per UTC day over the last `days` days."""
    runtime, workspace_id, query = await _caller(request)
    return await runtime.reports.daily(workspace_id, query)


@get(
    "/v1/credits/usage/log",
    summary="List requests",
    opt=documented(query=LogQuery),
    responses=responds(UsageLogPage, "A page of requests."),
)
async def credits_log(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Individual billed requests, newest first."""
    runtime, workspace_id, query = await _caller(request)
    return await runtime.reports.log(workspace_id, query)
