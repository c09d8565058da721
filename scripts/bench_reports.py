"""Report speed on a big ledger: a workspace with N usage records on SQLite.

    python scripts/bench_reports.py [--records 1000000] [--days 90] [--rounds 50]

Builds a SQLite database with N usage records spread over the last `--days`
days (bulk-inserted, then the daily rollup rebuilt from them with the same
code `tollway ledger rebuild-rollup` uses), starts `tollway serve` on it and
times the report routes over HTTP from this process. The records have no
ledger entries: this measures reads only (`ledger verify` would flag them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from loopback import free_port

from tollway.accounts import AccountStore
from tollway.db import create_engine, upgrade
from tollway.ledger.rebuild import rebuild_rollup

US_PER_DAY = 86_400_000_000


async def prepare(path: Path, records: int, days: int) -> tuple[str, str]:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade(engine)
    store = AccountStore(engine)
    workspace = await store.create_workspace("big")
    keys = [await store.create_key(workspace.id, f"k{i}", None, "total") for i in range(3)]
    await engine.dispose()
    now = time.time_ns() // 1000
    rng = random.Random(1)
    models = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3"]
    conn = sqlite3.connect(path)
    started = time.perf_counter()
    batch = []
    for i in range(records):
        at = now - rng.randrange(days * US_PER_DAY)
        prompt, completion = rng.randint(10, 4000), rng.randint(1, 1000)
        batch.append(
            (
                f"req_{i:012d}",
                workspace.id,
                keys[i % 3].key.id,
                models[i % 4],
                "up",
                "p",
                i % 2,
                "completed",
                prompt,
                completion,
                prompt // 4,
                0,
                completion // 5,
                "upstream",
                "upstream",
                0,
                "{}",
                prompt * 150 + completion * 600,
                at - 500_000,
                at,
                0,
                models[i % 4],
                "chat.completions",
                0,
            )
        )
        if len(batch) == 50_000:
            conn.executemany("insert into usage_records values (" + ",".join("?" * 24) + ")", batch)
            batch.clear()
    if batch:
        conn.executemany("insert into usage_records values (" + ",".join("?" * 24) + ")", batch)
    conn.commit()
    conn.close()
    print(f"inserted {records} records in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    rollup_rows = await rebuild_rollup(engine)
    await engine.dispose()
    print(f"rollup rows: {rollup_rows}", file=sys.stderr)
    return workspace.id, keys[0].secret


def timed(client: httpx.Client, path: str, params: dict[str, str], rounds: int) -> dict[str, float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(path, params=params)
        samples.append((time.perf_counter() - started) * 1e3)
        assert response.status_code == 200, response.text
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 2),
        "p99_ms": round(samples[int(0.99 * (rounds - 1))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tollway-bench-"))
    db = folder / "big.db"
    _, key = asyncio.run(prepare(db, args.records, args.days))
    (folder / "tollway.toml").write_text(f'[database]\nurl = "sqlite+aiosqlite:///{db}"\n')
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tollway",
            "serve",
            "--config",
            str(folder / "tollway.toml"),
            "--port",
            str(port),
        ],
        env={**os.environ, "TOLLWAY_ADMIN_TOKEN": "bench"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        with httpx.Client(base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=30) as client:
            results = {
                "records": args.records,
                "days": args.days,
                "GET /v1/usage (last 30 days)": timed(client, "/v1/usage", {}, args.rounds),
                "GET /v1/usage (90 days, model filter)": timed(
                    client,
                    "/v1/usage",
                    {"from": "2000-01-01", "model": "o3"} | _recent(args.days),
                    args.rounds,
                ),
                "GET /v1/credits/usage?days=30": timed(
                    client, "/v1/credits/usage", {"days": "30"}, args.rounds
                ),
                "GET /v1/credits/usage/daily?days=90": timed(
                    client, "/v1/credits/usage/daily", {"days": "90"}, args.rounds
                ),
                "GET /v1/credits/usage/log?limit=100": timed(
                    client, "/v1/credits/usage/log", {"limit": "100"}, args.rounds
                ),
            }
        print(json.dumps(results, indent=2))
    finally:
        server.terminate()
        server.wait()


def _recent(days: int) -> dict[str, str]:
    start = time.time() - days * 86_400 + 60
    return {"from": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))}


if __name__ == "__main__":
    main()
