"""Rate limits through `Biller.reserve` / `settle` / `release` on a real database (both engines).

Counts are exact because they are judged and written inside the workspace's
write transaction; the concurrent cases race real transactions.
"""

from __future__ import annotations

import asyncio
import re
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.accounts import AccountStore
from tollway.auth import Principal
from tollway.billing.biller import Biller, Hold
from tollway.billing.credits import credit
from tollway.billing.recovery import Recovery
from tollway.config import load_settings
from tollway.db.schema import ledger_entries, rate_admissions, rate_buckets
from tollway.errors import AuthenticationFailed, RateLimitExceeded
from tollway.ledger import Ledger
from tollway.ledger.driver import DriverSql
from tollway.limits import RateLimits, prune_admissions
from tollway.pipeline.routing import Router
from tollway.surfaces.chat_completions import parse_chat_request
from tollway.tokens import TokenCounter
from tollway.usage import Usage

USD = 1_000_000_000
BODY = b'{"model": "demo", "max_tokens": 40, "messages": [{"role": "user", "content": "hi"}]}'


class Setup:
    def __init__(self, ledger: Ledger, accounts: AccountStore) -> None:
        self.ledger = ledger
        self.accounts = accounts
        self.settings = load_settings(None, environ={})
        self.biller = Biller(ledger, self.settings.prices, TokenCounter(("o200k_base",)), "inst_test")
        self.route = Router(self.settings).resolve("demo")
        self.call = parse_chat_request(BODY)
        self.tokens = self.call.prompt_bound() + 40
        self.ids = 0

    async def workspace(self, limits: RateLimits = RateLimits()) -> str:
        ws = (await self.accounts.create_workspace("limits", limits=limits)).id
        await credit(self.ledger, ws, 100 * USD, None, None)
        return ws

    async def key(self, ws: str, limits: RateLimits = RateLimits()) -> Principal:
        key = (await self.accounts.create_key(ws, "k", None, "total", limits)).key
        return Principal(key.id, key.name, ws, None, "total")

    async def reserve(self, principal: Principal) -> Hold:
        self.ids += 1
        return await self.biller.reserve(
            principal, self.route, self.call, f"req_{self.ids}_{principal.key_id}"
        )

    async def settle(self, hold: Hold, usage: Usage) -> None:
        ctx: Any = SimpleNamespace(
            route=self.route,
            upstream=SimpleNamespace(name="demo"),
            call=self.call,
            upstream_model=None,
            surface=SimpleNamespace(operation="chat.completions"),
            started_us=1,
        )
        await self.biller.settle(hold, ctx, "completed", usage)


@pytest.fixture(name="setup")
def fixture_setup(ledger: Ledger, accounts: AccountStore) -> Setup:
    return Setup(ledger, accounts)


async def entry_count(engine: AsyncEngine, ws: str) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(select(func.count()).where(ledger_entries.c.workspace_id == ws))
    return int(count or 0)


async def test_requests_per_minute_admits_the_limit_then_refuses_with_retry_after(
    setup: Setup, engine: AsyncEngine
) -> None:
    ws = await setup.workspace()
    principal = await setup.key(ws, RateLimits(requests_per_minute=3))
    remaining = []
    for _ in range(3):
        hold = await setup.reserve(principal)
        remaining.append(hold.rate_headers["x-ratelimit-remaining-requests"])
        assert hold.rate_headers["x-ratelimit-limit-requests"] == "3"
        await setup.settle(hold, Usage(prompt=5, completion=2))
    assert remaining == ["2", "1", "0"]
    before = await entry_count(engine, ws)
    with pytest.raises(RateLimitExceeded) as refused:
        await setup.reserve(principal)
    assert refused.value.status == 429 and refused.value.code == "rate_limit_exceeded"
    assert refused.value.message == "Rate limit reached for this key: 3 of 3 requests per minute used."
    # The oldest of the three leaves the window 60 s after the second it was admitted in.
    assert refused.value.headers["retry-after"] in {"59", "60"}
    assert 58_000 < int(refused.value.headers["retry-after-ms"]) <= 60_000
    assert await entry_count(engine, ws) == before  # a refusal writes nothing


async def test_max_concurrent_counts_requests_in_flight(setup: Setup) -> None:
    ws = await setup.workspace()
    principal = await setup.key(ws, RateLimits(max_concurrent=2))
    first, second = await setup.reserve(principal), await setup.reserve(principal)
    assert first.rate_headers == {}  # OpenAI's headers speak of requests and tokens per minute only
    with pytest.raises(RateLimitExceeded) as refused:
        await setup.reserve(principal)
    assert refused.value.headers["retry-after"] == "1"
    assert "2 of 2 concurrent requests are in flight" in refused.value.message
    await setup.biller.release(first)
    third = await setup.reserve(principal)
    await setup.settle(second, Usage(prompt=1, completion=1))
    await setup.settle(third, Usage(prompt=1, completion=1))
    await setup.reserve(principal)


async def test_tokens_per_minute_counts_bounds_until_settled_to_actual_tokens(setup: Setup) -> None:
    ws = await setup.workspace()
    principal = await setup.key(ws, RateLimits(tokens_per_minute=2 * setup.tokens + 5))
    first = await setup.reserve(principal)
    assert first.rate_headers["x-ratelimit-remaining-tokens"] == str(setup.tokens + 5)
    second = await setup.reserve(principal)
    assert second.rate_headers["x-ratelimit-remaining-tokens"] == "5"
    with pytest.raises(RateLimitExceeded) as refused:
        await setup.reserve(principal)
    assert refused.value.type == "tokens"
    await setup.settle(first, Usage(prompt=3, completion=2))  # now counts 5 tokens, not its bound
    third = await setup.reserve(principal)
    assert third.rate_headers["x-ratelimit-remaining-tokens"] == str(
        2 * setup.tokens + 5 - 5 - 2 * setup.tokens
    )


async def test_settlement_adjusts_the_tokens_of_the_key_and_of_its_workspace(
    setup: Setup, engine: AsyncEngine
) -> None:
    """Both subjects metered: each bucket moves from the bound to the tokens used."""
    ws = await setup.workspace(RateLimits(tokens_per_minute=10**6))
    principal = await setup.key(ws, RateLimits(tokens_per_minute=10**6))
    other = await setup.key(ws)  # counted in the workspace's bucket only
    first, second, third = [await setup.reserve(p) for p in (principal, principal, other)]
    await setup.settle(first, Usage(prompt=7, completion=3))
    await setup.settle(third, Usage(prompt=2, completion=2))

    async with engine.connect() as conn:
        rows = (await conn.execute(select(rate_buckets))).all()
    tokens: dict[str, int] = {}
    for row in rows:
        tokens[row.subject] = tokens.get(row.subject, 0) + row.tokens
    assert tokens == {principal.key_id: 10 + setup.tokens, ws: 10 + setup.tokens + 4}
    await setup.settle(second, Usage(prompt=1, completion=0))
    async with engine.connect() as conn:
        total = await conn.scalar(
            select(func.sum(rate_buckets.c.tokens)).where(rate_buckets.c.subject == principal.key_id)
        )
    assert total == 11


async def test_a_request_larger_than_the_token_limit_is_told_it_can_never_fit(setup: Setup) -> None:
    ws = await setup.workspace()
    principal = await setup.key(ws, RateLimits(tokens_per_minute=setup.tokens - 1))
    with pytest.raises(RateLimitExceeded) as refused:
        await setup.reserve(principal)
    assert refused.value.headers["x-should-retry"] == "false"
    assert f"needs up to {setup.tokens} tokens" in refused.value.message


async def test_workspace_limits_count_every_key_of_the_workspace(setup: Setup) -> None:
    ws = await setup.workspace(RateLimits(requests_per_minute=2))
    a, b = await setup.key(ws), await setup.key(ws)
    await setup.reserve(a)
    hold = await setup.reserve(b)
    assert hold.rate_headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(RateLimitExceeded) as refused:
        await setup.reserve(a)
    assert "for this workspace" in refused.value.message
    other = await setup.key(await setup.workspace(RateLimits(requests_per_minute=2)))
    await setup.reserve(other)  # another workspace has its own count


async def test_the_tightest_limit_gives_the_headers(setup: Setup) -> None:
    ws = await setup.workspace(RateLimits(requests_per_minute=10))
    principal = await setup.key(ws, RateLimits(requests_per_minute=100))
    hold = await setup.reserve(principal)
    assert hold.rate_headers["x-ratelimit-limit-requests"] == "10"
    assert hold.rate_headers["x-ratelimit-remaining-requests"] == "9"
    # This request is the window's oldest: it leaves 60 s after the second it came in.
    assert re.fullmatch(r"59(\.\d{1,3})?s|1m0s", hold.rate_headers["x-ratelimit-reset-requests"])


async def test_thirty_concurrent_requests_against_a_limit_of_ten_admit_exactly_ten(setup: Setup) -> None:
    ws = await setup.workspace()
    principal = await setup.key(ws, RateLimits(requests_per_minute=10))
    results = await asyncio.gather(*(setup.reserve(principal) for _ in range(30)), return_exceptions=True)
    assert sum(isinstance(r, Hold) for r in results) == 10
    assert sum(isinstance(r, RateLimitExceeded) for r in results) == 20
    concurrent = await setup.key(ws, RateLimits(max_concurrent=7))
    results = await asyncio.gather(*(setup.reserve(concurrent) for _ in range(30)), return_exceptions=True)
    assert sum(isinstance(r, Hold) for r in results) == 7


async def test_a_patch_applies_at_once_and_null_lifts_the_limit(setup: Setup) -> None:
    ws = await setup.workspace()
    principal = await setup.key(ws, RateLimits(requests_per_minute=1))
    await setup.reserve(principal)
    with pytest.raises(RateLimitExceeded):
        await setup.reserve(principal)
    await setup.accounts.update_key(principal.key_id, {"requests_per_minute": None})
    hold = await setup.reserve(principal)
    assert hold.ticket is None and hold.rate_headers == {}
    await setup.accounts.update_key(principal.key_id, {"requests_per_minute": 0})
    with pytest.raises(RateLimitExceeded):
        await setup.reserve(principal)


async def test_a_key_revoked_elsewhere_is_refused_at_reservation(setup: Setup) -> None:
    ws = await setup.workspace()
    principal = await setup.key(ws)
    await setup.accounts.revoke_key(principal.key_id)  # the caller's cached principal is stale
    with pytest.raises(AuthenticationFailed):
        await setup.reserve(principal)


async def test_settlement_moves_tokens_to_actual_and_ends_the_in_flight_row(
    setup: Setup, engine: AsyncEngine
) -> None:
    ws = await setup.workspace()
    principal = await setup.key(ws, RateLimits(tokens_per_minute=10**6, max_concurrent=5))
    settled, released = await setup.reserve(principal), await setup.reserve(principal)
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(rate_admissions)) == 2
        assert await conn.scalar(select(func.sum(rate_buckets.c.tokens))) == 2 * setup.tokens
    await setup.settle(settled, Usage(prompt=7, completion=3))
    await setup.biller.release(released)
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(rate_admissions)) == 0
        buckets = (await conn.execute(select(rate_buckets))).all()
    assert sum(b.tokens for b in buckets) == 10 and sum(b.requests for b in buckets) == 2
    assert {b.subject for b in buckets} == {principal.key_id}  # the workspace has no limit: no buckets
    recovery = Recovery(engine, setup.ledger, heartbeat=1, dead_after=1, interval=1)
    await recovery.prune()  # younger than the window: kept
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(rate_buckets)) == len(buckets)
    async with engine.begin() as conn:
        await prune_admissions(DriverSql(conn), 10**18)  # as if far in the future
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(rate_buckets)) == 0
