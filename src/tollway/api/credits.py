"""Client money routes: prices, balance and the ledger of the caller's own workspace."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from tollway.api.openapi import documented
from tollway.api.schemas import BalanceRead, EntryRead
from tollway.api.wire import EntryPage, PriceList, PriceRead
from tollway.api.wire_reports import PageQuery
from tollway.clock import now_us
from tollway.reports.params import decode_cursor, encode_cursor, parse_limit
from tollway.runtime import Runtime

__all__ = ["balance", "ledger_page", "pricing"]


@get("/v1/pricing", summary="List the prices in force")
async def pricing(request: Request[Any, Any, Any]) -> PriceList:
    """The prices in force for each served model: rates, request fee, `effective_from`."""
    runtime: Runtime = request.app.state.runtime
    await runtime.auth.authenticate(request.headers.get("authorization"))
    served = set(runtime.router.models)
    prices = runtime.settings.prices.in_force(now_us())
    return PriceList(data=[PriceRead.of(price) for price in prices if price.model in served])


@get("/v1/credits/balance", summary="Get the balance")
async def balance(request: Request[Any, Any, Any]) -> BalanceRead:
    """The workspace's balance, what requests in flight hold, and what is available."""
    runtime: Runtime = request.app.state.runtime
    principal = await runtime.auth.authenticate(request.headers.get("authorization"))
    return BalanceRead.of(await runtime.ledger.balance(principal.workspace_id))


@get("/v1/credits/ledger", summary="List ledger entries", opt=documented(query=PageQuery))
async def ledger_page(request: Request[Any, Any, Any]) -> EntryPage:
    """The workspace's ledger entries, newest first, each with its signed amount and the balance after it."""
    runtime: Runtime = request.app.state.runtime
    principal = await runtime.auth.authenticate(request.headers.get("authorization"))
    query = dict(request.query_params.items())
    limit = parse_limit(query)
    cursor = decode_cursor(query.get("cursor"), (str, int))
    before = None if cursor is None else int(cursor[1])
    entries = await runtime.ledger.entries(principal.workspace_id, limit + 1, before)
    page, more = entries[:limit], len(entries) > limit
    return EntryPage(
        data=[EntryRead.of(e) for e in page],
        has_more=more,
        next_cursor=encode_cursor("seq", page[-1].ws_seq) if more else None,
    )
