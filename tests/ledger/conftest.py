"""Fixtures and helpers for the ledger suites: a real, migrated database per test (SQLite or PostgreSQL).

The helpers write the same entry shapes `Biller` writes, so these suites can
drive the ledger without a ChatContext:

    reserve  Draft(kind="reserve", hold_nano=+H, key_id, reservation_id, owner)
    settle   one transaction: record_usage(UsageRecord(id=rid, cost_nano=C)) +
             Draft(kind="debit", amount_nano=-C, hold_nano=-H, key_id, reservation_id=rid)
    release  Draft(kind="release", hold_nano=-H, key_id, reservation_id=rid)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from msgspec.structs import replace
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.accounts import AccountStore
from tollway.clock import now_us
from tollway.db import create_engine, upgrade
from tollway.errors import InsufficientCredit
from tollway.ledger import Draft, Entry, Ledger, UsageRecord


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(name="db_path")
def fixture_db_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture(name="engine")
async def fixture_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture(name="ledger")
def fixture_ledger(engine: AsyncEngine) -> Ledger:
    return Ledger(engine)


@pytest.fixture(name="accounts")
def fixture_accounts(engine: AsyncEngine) -> AccountStore:
    return AccountStore(engine)


def usage_record(rid: str, workspace_id: str, key_id: str, cost: int, **figures: Any) -> UsageRecord:
    """A usage record of `cost` nano-USD; `figures` override any other field."""
    now = now_us()
    record = UsageRecord(
        id=rid,
        workspace_id=workspace_id,
        key_id=key_id,
        model="demo",
        upstream="demo",
        price_id="demo@test",
        stream=False,
        end_state="complete",
        prompt_tokens=10,
        completion_tokens=5,
        cached_tokens=0,
        cache_write_tokens=0,
        reasoning_tokens=0,
        prompt_source="upstream",
        completion_source="upstream",
        estimated=False,
        rates="{}",
        cost_nano=cost,
        started_at=now,
        finished_at=now,
    )
    return replace(record, **figures) if figures else record


async def reserve(
    ledger: Ledger, workspace_id: str, key_id: str, rid: str, hold: int, owner: str | None = None
) -> Entry:
    """Check-then-reserve as `Biller._reserve` does it, inside one write transaction."""
    async with ledger.write(workspace_id) as writer:
        head = await writer.head()
        if hold > head.available_nano:
            raise InsufficientCredit(f"needs {hold}, available {head.available_nano}")
        return await writer.append(
            Draft(
                workspace_id=workspace_id,
                kind="reserve",
                hold_nano=hold,
                key_id=key_id,
                reservation_id=rid,
                owner=owner,
            )
        )


async def settle(ledger: Ledger, workspace_id: str, key_id: str, rid: str, hold: int, cost: int) -> Entry:
    async with ledger.write(workspace_id) as writer:
        await writer.record_usage(usage_record(rid, workspace_id, key_id, cost))
        return await writer.append(
            Draft(
                workspace_id=workspace_id,
                kind="debit",
                amount_nano=-cost,
                hold_nano=-hold,
                key_id=key_id,
                reservation_id=rid,
            )
        )


async def release(ledger: Ledger, workspace_id: str, key_id: str, rid: str, hold: int) -> Entry:
    async with ledger.write(workspace_id) as writer:
        return await writer.append(
            Draft(
                workspace_id=workspace_id,
                kind="release",
                hold_nano=-hold,
                key_id=key_id,
                reservation_id=rid,
            )
        )
