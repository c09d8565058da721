"""What the pages show, read the way the API reads it (the same queries, the same integers).

Handlers call these and render; nothing here knows about HTML.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from msgspec import Struct

from tollway.accounts import ApiKey, Workspace
from tollway.billing.periods import period_start_us
from tollway.db import create_engine
from tollway.errors import NotFound
from tollway.ledger import Balance, Entry
from tollway.ledger.verify import Report, verify_ledger
from tollway.pricing import Price
from tollway.reports import queries
from tollway.reports.params import US_PER_DAY, Filters, Period, decode_cursor, encode_cursor
from tollway.reports.queries import Totals
from tollway.runtime import Runtime
from tollway.validation import is_id

__all__ = [
    "KeyRow",
    "Page",
    "Usage",
    "key_rows",
    "ledger_page",
    "prices_in_force",
    "request_page",
    "run_verify",
    "usage",
    "workspace",
    "workspaces",
]

PAGE_SIZE = 20


class Usage(Struct, frozen=True, kw_only=True):
    days: Sequence[int]
    models: list[str]
    per_model: dict[str, Totals]
    total: Totals
    cost: dict[tuple[int, str], int]
    tokens: dict[tuple[int, str], int]


class KeyRow(Struct, frozen=True):
    key: ApiKey
    spent_nano: int  # in the key's current spend-limit period


class Page(Struct, frozen=True):
    items: list[Any]
    next_cursor: str | None


async def workspaces(runtime: Runtime) -> list[tuple[Workspace, Balance]]:
    found = await runtime.accounts.list_workspaces()
    return [(w, await runtime.ledger.balance(w.id)) for w in found]


async def workspace(runtime: Runtime, workspace_id: str) -> tuple[Workspace, Balance]:
    found = await runtime.accounts.get_workspace(workspace_id) if is_id(workspace_id) else None
    if found is None:
        raise NotFound(f"No workspace with id '{workspace_id[:100]}'.", param="workspace_id")
    return found, await runtime.ledger.balance(found.id)


async def usage(runtime: Runtime, workspace_id: str, first_day: int, end_day: int) -> Usage:
    """The period's totals per model (as GET /v1/usage sums them) and its day-by-model cells (the rollup)."""
    period = Period(first_day * US_PER_DAY, end_day * US_PER_DAY)
    async with runtime.engine.connect() as conn:
        groups = await queries.summarize(conn, period, Filters(), workspace_id=workspace_id, group=("model",))
        cells = await queries.daily_by_model(conn, workspace_id, first_day, end_day)
    per_model = {key[0]: totals for key, totals in groups.items()}
    total = Totals()
    for totals in per_model.values():
        total.add([getattr(totals, name) for name in Totals.__struct_fields__])
    return Usage(
        days=range(first_day, end_day),
        models=sorted(per_model),
        per_model=per_model,
        total=total,
        cost={cell: t.cost_nano for cell, t in cells.items()},
        tokens={cell: t.prompt_tokens + t.completion_tokens for cell, t in cells.items()},
    )


async def request_page(runtime: Runtime, workspace_id: str, cursor: str | None) -> Page:
    """The request log, newest first, with the API's cursor (GET /v1/credits/usage/log)."""
    decoded = decode_cursor(cursor or None, (int, str))
    before = None if decoded is None else (int(decoded[0]), str(decoded[1]))
    async with runtime.engine.connect() as conn:
        records = await queries.log_page(conn, workspace_id, PAGE_SIZE + 1, before, Filters())
    page = records[:PAGE_SIZE]
    more = len(records) > PAGE_SIZE
    return Page(page, encode_cursor(page[-1].finished_at, page[-1].id) if more else None)


async def ledger_page(runtime: Runtime, workspace_id: str, cursor: str | None) -> Page:
    """Ledger entries newest first, with the API's cursor (GET /v1/credits/ledger)."""
    decoded = decode_cursor(cursor or None, (str, int))
    before = None if decoded is None else int(decoded[1])
    entries: list[Entry] = await runtime.ledger.entries(workspace_id, PAGE_SIZE + 1, before)
    page = entries[:PAGE_SIZE]
    more = len(entries) > PAGE_SIZE
    return Page(page, encode_cursor("seq", page[-1].ws_seq) if more else None)


async def key_rows(runtime: Runtime, workspace_id: str, now: int) -> list[KeyRow]:
    """The workspace's keys, each with its spend in its current period (what its limit counts)."""
    keys = await runtime.accounts.list_keys(workspace_id)
    rows = []
    async with runtime.engine.connect() as conn:
        for key in keys:
            since = period_start_us(key.spend_limit_period, now)
            rows.append(KeyRow(key, await queries.key_spend(conn, key.id, since)))
    return rows


def prices_in_force(runtime: Runtime, now: int) -> list[Price]:
    """The prices in force for the served models, as GET /v1/pricing lists them."""
    served = set(runtime.router.models)
    return [price for price in runtime.settings.prices.in_force(now) if price.model in served]


async def run_verify(runtime: Runtime, lock: asyncio.Lock) -> Report:
    """`tollway ledger verify`, on a thread with its own loop and engine: the server keeps serving.

    One run at a time per process (`lock`); it reads, so it never blocks a writer for long.
    """
    url = runtime.settings.config.database.url

    async def verify() -> Report:
        engine = create_engine(url, pool_size=1)
        try:
            return await verify_ledger(engine)
        finally:
            await engine.dispose()

    async with lock:
        return await asyncio.to_thread(asyncio.run, verify())
