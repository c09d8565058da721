"""Fixtures for the events suites: a real, migrated database per test (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.accounts import AccountStore
from tollway.db import create_engine, upgrade
from tollway.events import Outbox, Subscription
from tollway.ledger.driver import DriverSql

HOOK = "http://receiver.test/hook"
OTHER = "http://other.test/hook"


@pytest.fixture(name="engine")
async def fixture_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture(name="outbox")
def fixture_outbox() -> Outbox:
    return Outbox([Subscription(webhook=HOOK, events=frozenset({"credit.added", "key.revoked"}))])


@pytest.fixture(name="workspace_id")
async def fixture_workspace_id(engine: AsyncEngine) -> str:
    return (await AccountStore(engine).create_workspace("events")).id


async def emit(
    engine: AsyncEngine, outbox: Outbox, type: str, workspace_id: str | None, data: dict[str, Any]
) -> str:
    """One event in a transaction of its own, as a cause would write it."""
    async with engine.begin() as conn:
        return await outbox.emit(DriverSql(conn), type, workspace_id, data)
