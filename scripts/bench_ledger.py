"""Database time of billing per request, and whether it grows with the ledger.

    python scripts/bench_ledger.py [--requests 2000] [--prior 1000,1000000] [--postgres URL]

For each prior size, a fresh database gets a workspace whose ledger already
holds that many entries (reserve/debit pairs with their usage records and
rollup, a valid hash chain, bulk-loaded); then `--requests` sequential
reserve + settle pairs per database go through `Biller`, the request path's
own code, in eight rounds that alternate between the databases.
Prints the median and p99 of reserve, settle and both, and the ratio of the
largest prior size to the smallest.  `--postgres` takes an admin URL
(`postgresql+asyncpg://...`) and runs the same on a fresh database there.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.accounts import AccountStore
from tollway.auth import Principal
from tollway.billing.biller import Biller
from tollway.billing.credits import credit
from tollway.clock import now_us
from tollway.config import load_settings
from tollway.db import create_engine, upgrade
from tollway.ledger import Draft, Entry, Ledger, UsageRecord, chain
from tollway.ledger.rollup import KEY, SUMMED, rollup_row
from tollway.ledger.sql import ENTRY_COLUMNS
from tollway.pipeline.context import RequestContext
from tollway.pipeline.routing import Router
from tollway.surfaces.chat_completions import CHAT_COMPLETIONS, parse_chat_request
from tollway.tokens import TokenCounter
from tollway.usage import Usage

BODY = msgspec.json.encode(
    {"model": "demo", "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 64}
)
USAGE_COLUMNS = UsageRecord.__struct_fields__


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def history(
    workspace_id: str, key_id: str, start: Entry, count: int
) -> tuple[list[Entry], list[UsageRecord], dict[tuple[Any, ...], list[int]]]:
    """`count` entries after `start`: reserve/debit pairs one millisecond apart, ending now."""
    head, key_head = start.head(), start.key_head()
    entries: list[Entry] = []
    records: list[UsageRecord] = []
    rollup: dict[tuple[Any, ...], list[int]] = {}
    pairs = count // 2
    t0 = now_us() - pairs * 1000
    for i in range(pairs):
        rid = f"req_prior_{i}"
        at = t0 + i * 1000
        reserve = chain(
            head,
            key_head,
            Draft(
                workspace_id=workspace_id,
                kind="reserve",
                hold_nano=200_000,
                key_id=key_id,
                reservation_id=rid,
                owner="inst_prior",
                created_at=at,
            ),
        )
        debit = chain(
            reserve.head(),
            reserve.key_head(),
            Draft(
                workspace_id=workspace_id,
                kind="debit",
                amount_nano=-6_150,
                hold_nano=-200_000,
                key_id=key_id,
                reservation_id=rid,
                created_at=at + 500,
            ),
        )
        head, key_head = debit.head(), debit.key_head()
        entries += (reserve, debit)
        record = UsageRecord(
            id=rid,
            workspace_id=workspace_id,
            key_id=key_id,
            model="demo",
            upstream="demo",
            price_id="demo@prior",
            stream=False,
            end_state="completed",
            prompt_tokens=9,
            completion_tokens=8,
            cached_tokens=0,
            cache_write_tokens=0,
            reasoning_tokens=0,
            prompt_source="upstream",
            completion_source="upstream",
            estimated=False,
            rates="{}",
            cost_nano=6_150,
            started_at=at,
            finished_at=at + 500,
        )
        records.append(record)
        row = rollup_row(record)
        sums = rollup.setdefault(row[: len(KEY)], [0] * len(SUMMED))
        for n, value in enumerate(row[len(KEY) :]):
            sums[n] += int(value)  # type: ignore[call-overload]
    return entries, records, rollup


async def load_history(engine: AsyncEngine, workspace_id: str, key_id: str, count: int) -> None:
    ledger = Ledger(engine)
    try:
        start = await credit(ledger, workspace_id, 10**15, None, None)
    finally:
        ledger.close()
    entries, records, rollup = history(workspace_id, key_id, start.entry, count)
    entry_rows = [tuple(getattr(e, c) for c in ENTRY_COLUMNS) for e in entries]
    usage_rows = [tuple(getattr(r, c) for c in USAGE_COLUMNS) for r in records]
    rollup_rows = [(*k, *v) for k, v in rollup.items()]
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            await raw.copy_records_to_table("ledger_entries", records=entry_rows, columns=ENTRY_COLUMNS)
            await raw.copy_records_to_table("usage_records", records=usage_rows, columns=USAGE_COLUMNS)
            await raw.copy_records_to_table("usage_daily", records=rollup_rows, columns=(*KEY, *SUMMED))
            # As a long-lived, autovacuumed table would be (hint bits set, statistics current).
            await raw.execute("VACUUM ANALYZE")
        return

    def bulk() -> None:
        db = sqlite3.connect(str(engine.url.database), isolation_level=None)

        def insert(table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
            marks = ", ".join("?" * len(columns))
            db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

        db.execute("BEGIN")
        insert("ledger_entries", ENTRY_COLUMNS, entry_rows)
        insert("usage_records", USAGE_COLUMNS, usage_rows)
        insert("usage_daily", (*KEY, *SUMMED), rollup_rows)
        db.execute("COMMIT")
        db.execute("ANALYZE")
        db.close()

    await asyncio.to_thread(bulk)


class Workspace:
    """A fresh database whose workspace already holds `prior` ledger entries, ready to bill."""

    def __init__(self, url: str, prior: int) -> None:
        self.url = url
        self.prior = prior
        self.reserve_ms: list[float] = []
        self.settle_ms: list[float] = []
        self.count = 0

    async def open(self) -> None:
        settings = load_settings(None, environ={})
        self.engine = create_engine(self.url)
        await upgrade(self.engine)
        store = AccountStore(self.engine)
        workspace = await store.create_workspace("bench")
        key = await store.create_key(workspace.id, "bench", None, "total")
        loading = time.perf_counter()
        await load_history(self.engine, workspace.id, key.key.id, self.prior - 1)
        self.load_seconds = time.perf_counter() - loading
        self.ledger = Ledger(self.engine)
        self.biller = Biller(self.ledger, settings.prices, TokenCounter(()), "inst_bench")
        self.route = Router(settings).resolve("demo")
        self.principal = Principal(
            key_id=key.key.id,
            key_name="bench",
            workspace_id=workspace.id,
            spend_limit_nano=None,
            spend_limit_period="total",
        )
        await self.pairs(50, record=False)  # warm-up

    async def pairs(self, count: int, *, record: bool = True) -> None:
        """`count` sequential reserve + settle pairs through `Biller`, the request path's own code."""
        usage = Usage(prompt=9, completion=8)
        for _ in range(count):
            self.count += 1
            rid = f"req_{self.count}"
            chat = parse_chat_request(BODY)
            started = time.perf_counter()
            hold = await self.biller.reserve(self.principal, self.route, chat, rid)
            reserved = time.perf_counter()
            ctx = RequestContext(
                request_id=rid,
                principal=self.principal,
                route=self.route,
                surface=CHAT_COMPLETIONS,
                call=chat,
                upstream=self.route.upstreams[0],
                started_us=0,
                price=hold.price,
            )
            await self.biller.settle(hold, ctx, "completed", usage)
            done = time.perf_counter()
            if record:
                self.reserve_ms.append((reserved - started) * 1e3)
                self.settle_ms.append((done - reserved) * 1e3)

    async def close(self) -> None:
        self.ledger.close()
        await self.engine.dispose()

    def report(self) -> dict[str, float]:
        both = [a + b for a, b in zip(self.reserve_ms, self.settle_ms, strict=True)]
        return {
            "prior_entries": self.prior,
            "load_seconds": round(self.load_seconds, 1),
            "reserve_p50_ms": round(statistics.median(self.reserve_ms), 3),
            "settle_p50_ms": round(statistics.median(self.settle_ms), 3),
            "both_p50_ms": round(statistics.median(both), 3),
            "both_p99_ms": round(pct(both, 0.99), 3),
        }


async def compare(urls: list[tuple[str, int]], requests: int, rounds: int = 8) -> list[dict[str, float]]:
    """Every database measured in turn, round after round, so drift in the machine hits all alike."""
    spaces = [Workspace(url, prior) for url, prior in urls]
    try:
        for space in spaces:
            await space.open()
        for _ in range(rounds):
            for space in spaces:
                await space.pairs(max(1, requests // rounds))
        return [space.report() for space in spaces]
    finally:
        for space in spaces:
            if hasattr(space, "ledger"):
                await space.close()


async def postgres_database(admin_url: str) -> tuple[str, str]:
    import asyncpg

    name = f"tw_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin_url.rsplit("/", 1)[0] + "/" + name, name


async def drop_postgres(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def run(requests: int, priors: list[int], postgres: str | None) -> dict[str, list[dict[str, float]]]:
    folder = Path(tempfile.mkdtemp(prefix="tollway-bench-ledger-"))
    sqlite_urls = [(f"sqlite+aiosqlite:///{folder / f'prior-{prior}.db'}", prior) for prior in priors]
    results = {"sqlite": await compare(sqlite_urls, requests)}
    await asyncio.to_thread(shutil.rmtree, folder)
    print(f"sqlite {results['sqlite']}", file=sys.stderr)
    if postgres:
        databases = [await postgres_database(postgres) for _ in priors]
        try:
            pg_urls = [(url, prior) for (url, _), prior in zip(databases, priors, strict=True)]
            results["postgresql"] = await compare(pg_urls, requests)
        finally:
            for _, name in databases:
                await drop_postgres(postgres, name)
        print(f"postgresql {results['postgresql']}", file=sys.stderr)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--prior", default="1000,1000000", help="comma-separated prior entry counts")
    parser.add_argument("--postgres", help="admin URL of a PostgreSQL server to also run on")
    args = parser.parse_args()
    priors = [int(p) for p in args.prior.split(",")]
    results = asyncio.run(run(args.requests, priors, args.postgres))
    for engine, rows in results.items():
        for row in rows:
            print(
                f"{engine:10s} prior {row['prior_entries']:>9,}: reserve {row['reserve_p50_ms']:.3f} ms"
                f" + settle {row['settle_p50_ms']:.3f} ms = {row['both_p50_ms']:.3f} ms median,"
                f" p99 {row['both_p99_ms']:.3f} ms"
            )
        if len(rows) > 1:
            print(f"{engine:10s} ratio {rows[-1]['both_p50_ms'] / rows[0]['both_p50_ms']:.2f}x")


if __name__ == "__main__":
    main()
