"""PostgreSQL's lock-and-heads function (migration 0010): the same statements as the ledger's, and
heads read after the lock is granted, never from a snapshot taken while waiting for it."""

from __future__ import annotations

import asyncio
import importlib
import re
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.dbs import is_postgres
from tollway.accounts import AccountStore
from tollway.billing.credits import credit
from tollway.db import create_engine, upgrade
from tollway.ledger import Draft, Ledger
from tollway.ledger.sql import HEADS, LOCK_WORKSPACE

migration = importlib.import_module("tollway.db.migrations.versions.0010_pg_lock_heads")


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_the_function_runs_the_ledgers_own_statements() -> None:
    body = migration.LOCK_HEADS_FUNCTION.split("$fn$")[1]
    lock, heads, rest = (_words(part) for part in body.split(";"))
    assert lock == LOCK_WORKSPACE.postgresql
    assert heads == HEADS.postgresql  # $1 the workspace, $2 the key: the function's own arguments
    assert rest == ""


@pytest.fixture(name="engine")
async def fixture_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.mark.skipif(not is_postgres(), reason="a PostgreSQL function")
async def test_heads_are_read_after_the_lock_is_granted(engine: AsyncEngine) -> None:
    accounts = AccountStore(engine)
    ws = (await accounts.create_workspace("lock")).id
    key = (await accounts.create_key(ws, "k", None, "total")).key.id
    ledger = Ledger(engine)
    await credit(ledger, ws, 1_000, None, None)
    entered = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with ledger.write(ws) as writer:  # takes the workspace's lock
            await writer.append(
                Draft(workspace_id=ws, kind="reserve", hold_nano=300, key_id=key, reservation_id="r1")
            )
            entered.set()
            await release.wait()

    holding = asyncio.ensure_future(holder())
    await entered.wait()
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        async with driver.transaction():
            waiting = asyncio.ensure_future(driver.fetch("SELECT * FROM tollway_lock_heads($1, $2)", ws, key))
            await asyncio.sleep(0.2)
            assert not waiting.done()  # blocked on the holder's lock
            release.set()
            await holding
            rows = [tuple(row) for row in await waiting]
    assert rows[0][:3] == (2, 1_000, 300)  # the holder's reservation, committed while this waited
    assert rows[1][1:3] == (0, 300)
    assert rows[1][0] is None and rows[1][3] is None
