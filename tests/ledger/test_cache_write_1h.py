"""1-hour cache writes through settlement: the usage record, the rollup and `ledger verify` (both engines)."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import msgspec
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.accounts import AccountStore
from tollway.billing.biller import Biller, Hold
from tollway.billing.credits import credit
from tollway.db.schema import usage_daily
from tollway.ledger import Ledger
from tollway.ledger.rebuild import rebuild_rollup
from tollway.ledger.verify import verify_ledger
from tollway.pricing import PriceBook, make_price, worst_case_nanos
from tollway.tokens import TokenCounter
from tollway.usage import Usage

from .conftest import reserve

USD = 1_000_000_000
PRICE = make_price(
    "claude-like", 0, input="3", cached_input="0.30", cache_write="3.75", cache_write_1h="6", output="15"
)


def context(stream: bool = False) -> Any:
    """The parts of a RequestContext that `Biller.settle` reads."""
    return SimpleNamespace(
        route=SimpleNamespace(model=SimpleNamespace(name=PRICE.model, target=PRICE.model)),
        upstream=SimpleNamespace(name="anthropic"),
        call=SimpleNamespace(stream=stream),
        upstream_model=None,
        surface=SimpleNamespace(operation="messages"),
        started_us=1,
    )


async def test_settle_records_1h_writes_and_the_rollup_sums_them(
    engine: AsyncEngine, ledger: Ledger, accounts: AccountStore
) -> None:
    ws = (await accounts.create_workspace("cache")).id
    key = (await accounts.create_key(ws, "k", None, "total")).key.id
    await credit(ledger, ws, 10 * USD, None, None)
    biller = Biller(ledger, PriceBook([PRICE]), TokenCounter(()), "inst_test")
    usages = {
        # (3000*3 + 2000*0.30 + 2000*3.75 + 3000*6 + 500*15) / 1e6 USD
        "req_1": (
            Usage(prompt=10_000, completion=500, cached=2_000, cache_write=5_000, cache_write_1h=3_000),
            42_600_000,
        ),
        # only 5-minute writes: 1000 at 3.75, 100 at 15
        "req_2": (Usage(prompt=1_000, completion=100, cache_write=1_000), 5_250_000),
        # only 1-hour writes: 1000 at 6
        "req_3": (Usage(prompt=1_000, completion=0, cache_write=1_000, cache_write_1h=1_000), 6_000_000),
    }
    for rid, (usage, cost) in usages.items():
        hold = worst_case_nanos(PRICE, usage.prompt, usage.completion)
        await reserve(ledger, ws, key, rid, hold)
        settled = await biller.settle(Hold(rid, ws, key, hold, PRICE), context(), "completed", usage)
        assert settled.cost_nano == cost
        record = await ledger.usage_record(rid)
        assert record is not None
        assert (record.cache_write_tokens, record.cache_write_1h_tokens) == (
            usage.cache_write,
            usage.cache_write_1h,
        )
        assert record.cost_nano == cost
        rates = msgspec.json.decode(record.rates)
        assert (rates["cache_write"], rates["cache_write_1h"]) == ("3.75", "6")

    async with engine.connect() as conn:
        d = usage_daily.c
        rows = (
            await conn.execute(
                select(d.calls, d.cache_write_tokens, d.cache_write_1h_tokens, d.cost_nano).where(
                    d.workspace_id == ws
                )
            )
        ).all()
    assert [tuple(row) for row in rows] == [(3, 7_000, 4_000, 53_850_000)]
    report = await verify_ledger(engine)
    assert report.ok, report.mismatches
    assert report.usage_records == 3

    # A rollup that disagrees with the records on 1-hour writes is reported, and a rebuild repairs it.
    async with engine.begin() as conn:
        await conn.execute(
            update(usage_daily).where(usage_daily.c.workspace_id == ws).values(cache_write_1h_tokens=1)
        )
    report = await verify_ledger(engine)
    assert len(report.mismatches) == 1
    assert "'cache_write_1h_tokens': 1" in report.mismatches[0]
    # (PostgreSQL's sums are Decimals: 4000 or Decimal('4000'))
    assert re.search(r"'cache_write_1h_tokens': (Decimal\(')?4000\b", report.mismatches[0])
    assert await rebuild_rollup(engine) == 1
    assert (await verify_ledger(engine)).ok


async def test_records_without_1h_writes_default_to_zero(ledger: Ledger, accounts: AccountStore) -> None:
    ws = (await accounts.create_workspace("plain")).id
    key = (await accounts.create_key(ws, "k", None, "total")).key.id
    await credit(ledger, ws, USD, None, None)
    biller = Biller(ledger, PriceBook([PRICE]), TokenCounter(()), "inst_test")
    await reserve(ledger, ws, key, "req_p", USD // 10)
    await biller.settle(
        Hold("req_p", ws, key, USD // 10, PRICE), context(), "completed", Usage(prompt=10, completion=1)
    )
    record = await ledger.usage_record("req_p")
    assert record is not None and record.cache_write_1h_tokens == 0
