"""The report operations shared by the client routes, the admin routes and the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.clock import iso, now_us
from tollway.db.schema import api_keys, workspaces
from tollway.errors import NotFound
from tollway.ledger.record import UsageRecord
from tollway.reports import queries
from tollway.reports.params import (
    US_PER_DAY,
    Period,
    decode_cursor,
    encode_cursor,
    parse_days,
    parse_filters,
    parse_limit,
    parse_period,
)
from tollway.reports.render import day_row, log_row, record_view, stat_row, summary_view
from tollway.validation import is_id

__all__ = ["Reports"]


class Reports:
    def __init__(self, engine: AsyncEngine, max_range_days: int) -> None:
        self._engine = engine
        self._max_days = max_range_days

    async def summary(self, workspace_id: str | None, query: Mapping[str, str], path: str) -> dict[str, Any]:
        """Period totals and a breakdown per model (per workspace and model across workspaces)."""
        period = parse_period(query, now_us(), self._max_days)
        filters = parse_filters(query)
        names = (
            ("operation_type", "model")
            if workspace_id is not None
            else ("workspace_id", "operation_type", "model")
        )
        async with self._engine.connect() as conn:
            groups = await queries.summarize(conn, period, filters, workspace_id=workspace_id, group=names)
        return summary_view(path, period, filters, groups, names)

    def _recent_days(self, query: Mapping[str, str]) -> tuple[int, Period]:
        """`days` whole UTC days ending with today (today up to now)."""
        days = parse_days(query, self._max_days)
        now = now_us()
        first_day = now // US_PER_DAY - days + 1
        return days, Period(first_day * US_PER_DAY, now)

    async def stats(self, workspace_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        days, period = self._recent_days(query)
        filters = parse_filters(query)
        async with self._engine.connect() as conn:
            groups = await queries.summarize(
                conn, period, filters, workspace_id=workspace_id, group=("operation_type", "model")
            )
        return {
            "stats": [
                stat_row(operation, model, totals) for (operation, model), totals in sorted(groups.items())
            ],
            "period_days": days,
            "period": {"from": iso(period.from_us), "to": iso(period.to_us)},
        }

    async def daily(self, workspace_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        days, period = self._recent_days(query)
        filters = parse_filters(query)
        first_day = period.from_us // US_PER_DAY
        async with self._engine.connect() as conn:
            rows = await queries.daily(conn, workspace_id, first_day, first_day + days, filters)
        return {
            "object": "list",
            "data": [day_row(day, rows[day]) for day in sorted(rows)],
            "period_days": days,
        }

    async def log(self, workspace_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        limit = parse_limit(query)
        cursor = decode_cursor(query.get("cursor"), (int, str))
        before = None if cursor is None else (int(cursor[0]), str(cursor[1]))
        filters = parse_filters(query)
        async with self._engine.connect() as conn:
            records = await queries.log_page(conn, workspace_id, limit + 1, before, filters)
        page, more = records[:limit], len(records) > limit
        return {
            "object": "list",
            "data": [log_row(r) for r in page],
            "has_more": more,
            "next_cursor": encode_cursor(page[-1].finished_at, page[-1].id) if more else None,
        }

    async def request(self, workspace_id: str | None, request_id: str) -> dict[str, Any]:
        """One record's view; outside the caller's workspace it does not exist."""
        _, view = await self.record(workspace_id, request_id)
        return view

    async def record(self, workspace_id: str | None, request_id: str) -> tuple[UsageRecord, dict[str, Any]]:
        """One record (None: in any workspace) and the API's view of it; a 404 outside the workspace."""
        async with self._engine.connect() as conn:
            record = await queries.find_record(conn, workspace_id, request_id) if is_id(request_id) else None
            if record is None:
                raise NotFound(f"No usage record with id '{request_id[:100]}'.", param="request_id")
            name = (
                await conn.execute(select(api_keys.c.name).where(api_keys.c.id == record.key_id))
            ).scalar_one_or_none()
        return record, record_view(record, name)

    async def workspace_names(self) -> dict[str, str]:
        async with self._engine.connect() as conn:
            return {
                row[0]: row[1] for row in (await conn.execute(select(workspaces.c.id, workspaces.c.name)))
            }
