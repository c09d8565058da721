"""Demo data for the console: a few workspaces, keys, credits and requests over several models and days.

    python -m tollway.console.demo_data [--config tollway.toml] [--days 14] [--seed 7]
    scripts/seed-console-demo ...                      (the same)

It writes through the ledger as billing does — for each request a
reservation, then its usage record and the debit that closes it, in one
transaction — so `tollway ledger verify` passes, and the daily rollup the
charts read is filled by the same statement.  The requests' times are spread
over the past `days` UTC days (their ledger entries are stamped now: the
ledger's time follows append order).  Prints the workspaces and the keys'
secrets as JSON (for signing in to the portal).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from collections.abc import Sequence
from typing import Any

from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.accounts import AccountStore
from tollway.billing.credits import credit
from tollway.clock import now_us
from tollway.keys import new_id
from tollway.ledger import Draft, Ledger, UsageRecord
from tollway.limits import RateLimits
from tollway.money import NANOS_PER_USD
from tollway.pricing import Price, PriceBook, cost_nanos, rates_text

__all__ = ["DemoKey", "DemoWorkspace", "main", "seed", "seed_requests"]

US_PER_DAY = 86_400_000_000
_NAMES = ("Acme Research", "Globex Support Bot", "Initech Labs", "Umbrella Analytics", "Hooli Search")
# A few models of each kind, when the price table has them (else the first four it has).
_MODELS = ("gpt-4o-mini", "gpt-4.1", "claude-sonnet-4-5", "o4-mini", "demo")
_ENDS = ("completed",) * 18 + ("client_disconnected", "upstream_broke_off")


class DemoKey(Struct, frozen=True):
    id: str
    name: str
    secret: str


class DemoWorkspace(Struct, frozen=True):
    id: str
    name: str
    keys: list[DemoKey]
    requests: int


async def seed_requests(
    ledger: Ledger,
    workspace_id: str,
    key_ids: Sequence[str],
    prices: Sequence[Price],
    *,
    first_day: int,
    days: int,
    per_day: tuple[int, int],
    rng: random.Random,
) -> int:
    """Billed requests on each of `days` UTC days from `first_day`: returns how many were written."""
    written = 0
    for day in range(first_day, first_day + days):
        for _ in range(rng.randint(*per_day)):
            price = rng.choice(prices)
            prompt = rng.randint(20, 4000)
            cached = rng.choice((0, 0, prompt // 2))
            embedding = "embedding" in price.model
            completion = 0 if embedding else rng.randint(5, 1200)
            reasoning = 0 if embedding else rng.choice((0, 0, completion // 3))
            cost = cost_nanos(price, prompt, completion, cached, 0, reasoning)
            hold = cost + rng.randint(0, 5_000_000)
            # Never in the future: today's requests finish before now.
            latest = min(US_PER_DAY - 10_000_000, now_us() - day * US_PER_DAY - 10_000_000)
            finished = day * US_PER_DAY + rng.randint(0, max(latest, 0))
            key_id = rng.choice(list(key_ids))
            request_id = new_id("req")
            counted = rng.random() < 0.1
            record = UsageRecord(
                id=request_id,
                workspace_id=workspace_id,
                key_id=key_id,
                model=price.model,
                upstream="demo",
                price_id=price.id,
                stream=rng.random() < 0.5,
                end_state=rng.choice(_ENDS),
                prompt_tokens=prompt,
                completion_tokens=completion,
                cached_tokens=cached,
                cache_write_tokens=0,
                reasoning_tokens=reasoning,
                prompt_source="counted" if counted else "upstream",
                completion_source="counted" if counted else "upstream",
                estimated=False,
                rates=rates_text(price),
                cost_nano=cost,
                started_at=finished - rng.randint(200_000, 9_000_000),
                finished_at=finished,
                upstream_model=price.model,
            )
            async with ledger.write(workspace_id) as writer:
                head = await writer.head()
                if head.available_nano < hold:
                    continue  # out of credit: this one was refused (402), nothing billed
                await writer.append(
                    Draft(
                        workspace_id=workspace_id,
                        kind="reserve",
                        hold_nano=hold,
                        key_id=key_id,
                        reservation_id=request_id,
                        owner="demo",
                    )
                )
                await writer.record_usage(record)
                await writer.append(
                    Draft(
                        workspace_id=workspace_id,
                        kind="debit",
                        amount_nano=-cost,
                        hold_nano=-hold,
                        key_id=key_id,
                        reservation_id=request_id,
                    )
                )
            written += 1
    return written


async def seed(
    engine: AsyncEngine,
    prices: PriceBook,
    *,
    workspaces: int = 3,
    days: int = 14,
    per_day: tuple[int, int] = (3, 12),
    models: Sequence[str] | None = None,
    seed: int = 7,
) -> list[DemoWorkspace]:
    """Fill a migrated database with demo workspaces; the same `seed` gives the same figures."""
    rng = random.Random(seed)
    now = now_us()
    in_force = {p.model: p for p in prices.in_force(now)}
    wanted = list(models) if models is not None else [m for m in _MODELS if m in in_force]
    chosen = [in_force[m] for m in wanted if m in in_force] or list(in_force.values())[:4]
    accounts = AccountStore(engine)
    ledger = Ledger(engine)
    today = now // US_PER_DAY
    made = []
    try:
        for index in range(workspaces):
            name = _NAMES[index % len(_NAMES)] + ("" if index < len(_NAMES) else f" {index}")
            workspace = await accounts.create_workspace(name)
            keys = []
            for key_name, limit, period, limits in (
                ("production", None, "total", RateLimits(requests_per_minute=600, tokens_per_minute=200_000)),
                ("staging", 20 * NANOS_PER_USD, "month", RateLimits(max_concurrent=4)),
                ("ci", 2 * NANOS_PER_USD, "day", RateLimits()),
            ):
                created = await accounts.create_key(workspace.id, key_name, limit, period, limits)  # type: ignore[arg-type]
                keys.append(DemoKey(created.key.id, key_name, created.secret))
            await credit(
                ledger,
                workspace.id,
                rng.choice((25, 50, 100, 250)) * NANOS_PER_USD,
                new_id("demo"),
                "Welcome credit",
            )
            count = await seed_requests(
                ledger,
                workspace.id,
                [k.id for k in keys[:2]],
                chosen,
                first_day=today - days + 1,
                days=days,
                per_day=per_day,
                rng=rng,
            )
            await credit(ledger, workspace.id, 10 * NANOS_PER_USD, new_id("demo"), "Top-up")
            if index == 0:
                await credit(
                    ledger, workspace.id, -3 * NANOS_PER_USD, new_id("demo"), "Refund: duplicate top-up"
                )
                await accounts.revoke_key(keys[2].id)
            made.append(DemoWorkspace(workspace.id, name, keys, count))
    finally:
        ledger.close()
    return made


def main(argv: Sequence[str] | None = None) -> int:
    from tollway.config import load_settings
    from tollway.db import create_engine, upgrade

    parser = argparse.ArgumentParser(prog="seed-console-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="tollway.toml (its [database] url is filled); default: built-in")
    parser.add_argument("--workspaces", type=int, default=3)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    settings = load_settings(args.config)

    async def run() -> list[DemoWorkspace]:
        engine = create_engine(settings.config.database.url)
        try:
            await upgrade(engine)
            return await seed(
                engine, settings.prices, workspaces=args.workspaces, days=args.days, seed=args.seed
            )
        finally:
            await engine.dispose()

    made = asyncio.run(run())
    out: list[dict[str, Any]] = [
        {
            "id": w.id,
            "name": w.name,
            "requests": w.requests,
            "keys": [{"id": k.id, "name": k.name, "key": k.secret} for k in w.keys],
        }
        for w in made
    ]
    print(json.dumps({"database": settings.config.database.url, "workspaces": out}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
