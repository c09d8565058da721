"""Report queries.  Whole UTC days come from the daily rollup; the partial days at the
edges of a period from the usage records themselves (an index range), so every total
is exact to the nano-dollar and none sums raw history over whole days."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from msgspec import Struct
from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from tollway.db.schema import usage_daily, usage_records
from tollway.ledger.driver import DriverSql
from tollway.ledger.record import UsageRecord
from tollway.ledger.rollup import SUMMED
from tollway.ledger.sql import KEY_HEAD, KEY_SPENT_BEFORE
from tollway.reports.params import US_PER_DAY, Filters, Period

__all__ = ["Totals", "daily", "daily_by_model", "find_record", "key_spend", "log_page", "summarize"]

_U = usage_records.c
_D = usage_daily.c
_TOKENS = SUMMED[1:]  # everything but the call count


class Totals(Struct):
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nano: int = 0

    def add(self, values: Sequence[Any]) -> None:
        for name, value in zip(SUMMED, values, strict=True):
            setattr(self, name, getattr(self, name) + int(value or 0))


def _record_filters(workspace_id: str | None, filters: Filters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if workspace_id is not None:
        conditions.append(_U.workspace_id == workspace_id)
    if filters.model is not None:
        conditions.append(_U.model == filters.model)
    if filters.key_id is not None:
        conditions.append(_U.key_id == filters.key_id)
    return conditions


def _rollup_filters(workspace_id: str | None, filters: Filters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if workspace_id is not None:
        conditions.append(_D.workspace_id == workspace_id)
    if filters.model is not None:
        conditions.append(_D.model == filters.model)
    if filters.key_id is not None:
        conditions.append(_D.key_id == filters.key_id)
    return conditions


def _split(period: Period) -> tuple[int, int, list[tuple[int, int]]]:
    """Whole days [first_day, end_day) inside the period, and the partial edges as time ranges."""
    first_day = -(-period.from_us // US_PER_DAY)
    end_day = period.to_us // US_PER_DAY
    if first_day >= end_day:
        return 0, 0, [(period.from_us, period.to_us)]
    edges = [(period.from_us, first_day * US_PER_DAY), (end_day * US_PER_DAY, period.to_us)]
    return first_day, end_day, [(lo, hi) for lo, hi in edges if lo < hi]


async def summarize(
    conn: AsyncConnection,
    period: Period,
    filters: Filters,
    *,
    workspace_id: str | None,
    group: Sequence[str] = ("model",),
) -> dict[tuple[str, ...], Totals]:
    """Totals per `group` (columns among workspace_id, model, key_id) over the period."""
    groups: dict[tuple[str, ...], Totals] = {}
    first_day, end_day, edges = _split(period)
    if first_day < end_day:
        keys = [_D[name] for name in group]
        query = (
            select(*keys, *(func.sum(_D[name]) for name in SUMMED))
            .where(_D.day >= first_day, _D.day < end_day, *_rollup_filters(workspace_id, filters))
            .group_by(*keys)
        )
        for row in (await conn.execute(query)).all():
            groups.setdefault(tuple(row[: len(keys)]), Totals()).add(row[len(keys) :])
    if edges:
        keys = [_U[name] for name in group]
        in_edges = or_(*(and_(_U.finished_at >= lo, _U.finished_at < hi) for lo, hi in edges))
        query = (
            select(*keys, func.count(), *(func.sum(_U[name]) for name in _TOKENS))
            .where(in_edges, *_record_filters(workspace_id, filters))
            .group_by(*keys)
        )
        for row in (await conn.execute(query)).all():
            groups.setdefault(tuple(row[: len(keys)]), Totals()).add(row[len(keys) :])
    return groups


async def daily(
    conn: AsyncConnection, workspace_id: str, first_day: int, end_day: int, filters: Filters
) -> dict[int, Totals]:
    """Totals per UTC day number in [first_day, end_day), zero-filled."""
    query = (
        select(_D.day, *(func.sum(_D[name]) for name in SUMMED))
        .where(_D.day >= first_day, _D.day < end_day, *_rollup_filters(workspace_id, filters))
        .group_by(_D.day)
    )
    days = {day: Totals() for day in range(first_day, end_day)}
    for row in (await conn.execute(query)).all():
        days[int(row[0])].add(row[1:])
    return days


def _record(row: Any) -> UsageRecord:
    return UsageRecord(**{name: row[name] for name in UsageRecord.__struct_fields__})


async def log_page(
    conn: AsyncConnection, workspace_id: str, limit: int, before: tuple[int, str] | None, filters: Filters
) -> list[UsageRecord]:
    """Records newest first, strictly after the (finished_at, id) cursor position."""
    query: Select[Any] = select(usage_records).where(*_record_filters(workspace_id, filters))
    if before is not None:
        at, request_id = before
        query = query.where(or_(_U.finished_at < at, and_(_U.finished_at == at, _U.id < request_id)))
    query = query.order_by(_U.finished_at.desc(), _U.id.desc()).limit(limit)
    return [_record(row) for row in (await conn.execute(query)).mappings().all()]


async def find_record(conn: AsyncConnection, workspace_id: str | None, request_id: str) -> UsageRecord | None:
    query = select(usage_records).where(_U.id == request_id)
    if workspace_id is not None:
        query = query.where(_U.workspace_id == workspace_id)
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else _record(row)


async def daily_by_model(
    conn: AsyncConnection, workspace_id: str, first_day: int, end_day: int
) -> dict[tuple[int, str], Totals]:
    """Totals per (UTC day number, model) in [first_day, end_day), from the rollup alone (the charts)."""
    query = (
        select(_D.day, _D.model, *(func.sum(_D[name]) for name in SUMMED))
        .where(_D.workspace_id == workspace_id, _D.day >= first_day, _D.day < end_day)
        .group_by(_D.day, _D.model)
    )
    cells: dict[tuple[int, str], Totals] = {}
    for row in (await conn.execute(query)).all():
        cells.setdefault((int(row[0]), str(row[1])), Totals()).add(row[2:])
    return cells


async def key_spend(conn: AsyncConnection, key_id: str, since_us: int | None) -> int:
    """A key's settled spend (nano-USD) since `since_us` (None: all time), as its spend limit counts it:
    the ledger's own statements for the key's head and its spend at a moment, as a reservation reads them."""
    sql = DriverSql(conn)
    head = await sql.one(KEY_HEAD, key_id)
    spent = 0 if head is None else int(head[0] or 0)
    if since_us is None or spent == 0:
        return spent
    before = await sql.one(KEY_SPENT_BEFORE, key_id, since_us)
    return spent - (0 if before is None else int(before[0]))
