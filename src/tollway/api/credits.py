"""Client money routes: prices, balance and the ledger of the caller's own workspace."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from litestar import Request, get

from tollway.api.schemas import BalanceRead, EntryRead
from tollway.clock import iso, now_us
from tollway.errors import InvalidRequest
from tollway.runtime import Runtime

__all__ = ["balance", "ledger_page", "pricing"]

_MAX_LIMIT = 100


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


def _limit(raw: str | None) -> int:
    if raw is None:
        return 20
    if not raw.isdigit() or not 1 <= int(raw) <= _MAX_LIMIT:
        raise InvalidRequest(f"limit must be an integer from 1 to {_MAX_LIMIT}.", param="limit")
    return int(raw)


def _cursor(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        value = base64.urlsafe_b64decode(raw.encode() + b"=" * (-len(raw) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        value = ""
    if not value.startswith("seq:") or not value[4:].isdigit():
        raise InvalidRequest("cursor is not one this API returned.", param="cursor")
    return int(value[4:])


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


@get("/v1/credits/ledger")
async def ledger_page(request: Request[Any, Any, Any]) -> dict[str, object]:
    runtime: Runtime = request.app.state.runtime
    principal = await runtime.auth.authenticate(request.headers.get("authorization"))
    limit = _limit(request.query_params.get("limit"))
    before = _cursor(request.query_params.get("cursor"))
    entries = await runtime.ledger.entries(principal.workspace_id, limit + 1, before)
    page, more = entries[:limit], len(entries) > limit
    return {
        "object": "list",
        "data": [EntryRead.of(e) for e in page],
        "has_more": more,
        "next_cursor": encode_cursor(page[-1].ws_seq) if more else None,
    }
