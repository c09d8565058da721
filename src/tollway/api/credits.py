"""Client money routes: prices, balance and the ledger of the caller's own workspace."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from tollway.api.schemas import BalanceRead, EntryRead
from tollway.clock import iso, now_us
from tollway.reports.params import decode_cursor, encode_cursor, parse_limit
from tollway.runtime import Runtime

__all__ = ["balance", "ledger_page", "pricing"]


@get("/v1/pricing")
async def pricing(request: Request[Any, Any, Any]) -> dict[str, object]:
    runtime: Runtime = request.app.state.runtime
    await runtime.auth.authenticate(request.headers.get("authorization"))
    served = set(runtime.router.models)
    data = [
        {
            "model": price.model,
            "currency": "USD",
            "unit": "per_million_tokens",
            "input": str(price.input),
            "cached_input": str(price.cached_input),
            "cache_write": str(price.cache_write),
            "cache_write_1h": str(price.cache_write_1h),
            "output": str(price.output),
            "reasoning": str(price.reasoning),
            "request": str(price.request),
            "effective_from": iso(price.effective_from_us),
            "price_id": price.id,
        }
        for price in runtime.settings.prices.in_force(now_us())
        if price.model in served
    ]
    return {"object": "list", "data": data}


@get("/v1/credits/balance")
async def balance(request: Request[Any, Any, Any]) -> BalanceRead:
    runtime: Runtime = request.app.state.runtime
    principal = await runtime.auth.authenticate(request.headers.get("authorization"))
    return BalanceRead.of(await runtime.ledger.balance(principal.workspace_id))


@get("/v1/credits/ledger")
async def ledger_page(request: Request[Any, Any, Any]) -> dict[str, object]:
    runtime: Runtime = request.app.state.runtime
    principal = await runtime.auth.authenticate(request.headers.get("authorization"))
    query = dict(request.query_params.items())
    limit = parse_limit(query)
    cursor = decode_cursor(query.get("cursor"), (str, int))
    before = None if cursor is None else int(cursor[1])
    entries = await runtime.ledger.entries(principal.workspace_id, limit + 1, before)
    page, more = entries[:limit], len(entries) > limit
    return {
        "object": "list",
        "data": [EntryRead.of(e) for e in page],
        "has_more": more,
        "next_cursor": encode_cursor("seq", page[-1].ws_seq) if more else None,
    }
