"""Database time of billing per request, and whether it grows with the ledger.

    python scripts/bench_ledger.py [--requests 2000] [--prior 1000,1000000] [--postgres URL]

For each prior size, a fresh database gets a workspace whose ledger already
holds that many entries (reserve/debit pairs with their usage records and
rollup, a valid hash chain, bulk-loaded), and then `--requests` sequential
reserve + settle pairs go through `Biller`, the request path's own code.
Prints the median and p99 of reserve, settle and both, and the ratio of the
largest prior size to the smallest.  `--postgres` takes an admin URL
(`postgresql+asyncpg://...`) and runs the same on a fresh database there.
"""

from __future__ import annotations

import argparse
import asyncio
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
from tollway.chat.context import ChatContext
from tollway.chat.request import parse_chat_request
from tollway.chat.routing import Router
from tollway.clock import now_us
from tollway.config import load_settings
from tollway.db import create_engine, upgrade
from tollway.ledger import Draft, Entry, Ledger, UsageRecord, chain
from tollway.ledger.rollup import KEY, SUMMED, rollup_row
from tollway.ledger.sql import ENTRY_COLUMNS
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


async def measure(url: str, requests: int, prior: int) -> dict[str, float]:
    settings = load_settings(None, environ={})
    engine = create_engine(url)
    await upgrade(engine)
    store = AccountStore(engine)
    workspace = await store.create_workspace("bench")
    key = await store.create_key(workspace.id, "bench", None, "total")
    loading = time.perf_counter()
    await load_history(engine, workspace.id, key.key.id, prior - 1)
    loaded = time.perf_counter() - loading
    ledger = Ledger(engine)
    biller = Biller(ledger, settings.prices, TokenCounter(("o200k_base",)), "inst_bench")
    route = Router(settings).resolve("demo")
    principal = Principal(
        key_id=key.key.id,
        key_name="bench",
        workspace_id=workspace.id,
        spend_limit_nano=None,
        spend_limit_period="total",
    )
    usage = Usage(prompt=9, completion=8)
    reserve_t: list[float] = []
    settle_t: list[float] = []
    for i in range(requests + 50):
        chat = parse_chat_request(BODY)
        started = time.perf_counter()
        hold = await biller.reserve(principal, route, chat, f"req_{i}")
        reserved = time.perf_counter()
        ctx = ChatContext(
            request_id=f"req_{i}",
            principal=principal,
            route=route,
            chat=chat,
            upstream=route.upstreams[0],
            started_us=0,
        )
        await biller.settle(hold, ctx, "completed", usage)
        done = time.perf_counter()
        if i >= 50:  # warm-up
            reserve_t.append((reserved - started) * 1e3)
            settle_t.append((done - reserved) * 1e3)
    ledger.close()
    await engine.dispose()
    both = [a + b for a, b in zip(reserve_t, settle_t, strict=True)]
    return {
        "prior_entries": prior,
        "load_seconds": round(loaded, 1),
        "reserve_p50_ms": round(statistics.median(reserve_t), 3),
        "settle_p50_ms": round(statistics.median(settle_t), 3),
        "both_p50_ms": round(statistics.median(both), 3),
        "both_p99_ms": round(pct(both, 0.99), 3),
    }


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
    results: dict[str, list[dict[str, float]]] = {"sqlite": []}
    folder = Path(tempfile.mkdtemp(prefix="tollway-bench-ledger-"))
    for prior in priors:
        path = folder / f"prior-{prior}.db"
        results["sqlite"].append(await measure(f"sqlite+aiosqlite:///{path}", requests, prior))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)  # noqa: ASYNC240 (between measurements)
        print(f"sqlite {results['sqlite'][-1]}", file=sys.stderr)
    if postgres:
        results["postgresql"] = []
        for prior in priors:
            url, name = await postgres_database(postgres)
            try:
                results["postgresql"].append(await measure(url, requests, prior))
            finally:
                await drop_postgres(postgres, name)
            print(f"postgresql {results['postgresql'][-1]}", file=sys.stderr)
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
