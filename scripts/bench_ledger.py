"""Database time of billing per request: reserve + settle against a real SQLite file.

    python scripts/bench_ledger.py [--requests 2000] [--prior 1000]

Prints the median and p99 of reserve, settle and both together, after
`--prior` earlier reserve+settle pairs in the same workspace (ledger growth),
and the time of the same request path without billing (nothing written).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import msgspec

from tollway.accounts import AccountStore
from tollway.auth import Principal
from tollway.billing.biller import Biller
from tollway.billing.credits import credit
from tollway.chat.context import ChatContext
from tollway.chat.request import parse_chat_request
from tollway.chat.routing import Router
from tollway.config import load_settings
from tollway.db import create_engine, upgrade
from tollway.ledger import Ledger
from tollway.tokens import TokenCounter
from tollway.usage import Usage

BODY = msgspec.json.encode(
    {"model": "demo", "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 64}
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(requests: int, prior: int) -> None:
    settings = load_settings(None, environ={})
    folder = Path(tempfile.mkdtemp())
    engine = create_engine(f"sqlite+aiosqlite:///{folder / 'bench.db'}")
    await upgrade(engine)
    store = AccountStore(engine)
    workspace = await store.create_workspace("bench")
    key = await store.create_key(workspace.id, "bench", None, "total")
    ledger = Ledger(engine)
    await credit(ledger, workspace.id, 10**15, None, None)
    biller = Biller(ledger, settings.prices, TokenCounter(("o200k_base",)), "inst_bench")
    router = Router(settings)
    route = router.resolve("demo")
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
    for i in range(prior + requests):
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
        if i >= prior:
            reserve_t.append((reserved - started) * 1e3)
            settle_t.append((done - reserved) * 1e3)
    both = [a + b for a, b in zip(reserve_t, settle_t, strict=True)]
    print(f"prior entries: {2 * prior + 1}, measured requests: {requests}")
    for name, values in (("reserve", reserve_t), ("settle", settle_t), ("reserve+settle", both)):
        print(f"  {name:15s} median {statistics.median(values):.3f} ms  p99 {pct(values, 0.99):.3f} ms")
    await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--prior", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.prior))
