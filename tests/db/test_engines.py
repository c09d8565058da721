"""Schema and engine guarantees on whichever engine is under test (TOLLWAY_TEST_DATABASE)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.dbs import is_postgres
from tests.ledger.conftest import usage_record
from tollway.accounts import AccountStore
from tollway.billing.credits import credit
from tollway.db import create_engine, ensure_current, upgrade
from tollway.db.engine import _null
from tollway.errors import SchemaOutdated
from tollway.ledger import Ledger


@pytest.fixture(name="engine")
async def fixture_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET amount_nano = amount_nano + 1",
        "DELETE FROM ledger_entries",
        "UPDATE usage_records SET cost_nano = 0",
        "DELETE FROM usage_records",
    ],
)
async def test_the_database_refuses_changes_to_money(engine: AsyncEngine, statement: str) -> None:
    await upgrade(engine)
    workspace = await AccountStore(engine).create_workspace("w")
    await credit(Ledger(engine), workspace.id, 5, None, None)
    async with Ledger(engine).write(workspace.id) as writer:  # a record, so row triggers have a row
        await writer.record_usage(usage_record("req_1", workspace.id, "key_1", 3))
    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    assert (await Ledger(engine).balance(workspace.id)).balance_nano == 5


@pytest.mark.skipif(
    not is_postgres(), reason="TRUNCATE bypasses row triggers; PostgreSQL has statement triggers"
)
@pytest.mark.parametrize("table", ["ledger_entries", "usage_records"])
async def test_postgres_refuses_truncate(engine: AsyncEngine, table: str) -> None:
    await upgrade(engine)
    with pytest.raises(DBAPIError, match="append-only: TRUNCATE refused"):
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {table}"))


async def test_an_old_schema_is_refused_until_upgraded(engine: AsyncEngine) -> None:
    await upgrade(engine, "0002")
    with pytest.raises(
        SchemaOutdated, match=r"schema revision 0002, this tollway needs 0012: run `tollway db"
    ):
        await ensure_current(engine)
    await upgrade(engine)
    await ensure_current(engine)


def test_sqlite_binds_none_and_bools_through_tollways_adapters_as_it_would_without() -> None:
    assert sqlite3.adapters[(type(None), sqlite3.PrepareProtocol)] is _null
    assert sqlite3.adapters[(bool, sqlite3.PrepareProtocol)] is int
    connection = sqlite3.connect(":memory:")
    try:
        row = connection.execute(
            "SELECT ? IS NULL, typeof(?), ?, typeof(?), ?", (None, None, True, False, False)
        ).fetchone()
    finally:
        connection.close()
    assert row == (1, "null", 1, "integer", 0)
