"""0011 keeps only debits in `ix_ledger_key_time`; a key's spend at a moment reads the same (both engines)."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest
from alembic import command
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.db.test_migration_0007 import _alembic
from tests.dbs import is_postgres
from tests.ledger.conftest import release, reserve, settle
from tollway.accounts import AccountStore
from tollway.billing.credits import credit
from tollway.db import create_engine, upgrade
from tollway.ledger import Entry, Ledger, LedgerWriter
from tollway.ledger.sql import KEY_SPENT_BEFORE
from tollway.reports.queries import key_spend


async def _index(conn: AsyncConnection) -> str:
    if is_postgres():
        query = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_ledger_key_time'"
    else:
        query = "SELECT sql FROM sqlite_master WHERE name = 'ix_ledger_key_time'"
    return str((await conn.exec_driver_sql(query)).scalar_one())


async def _spent_before(ledger: Ledger, ws: str, key_id: str, moment: int) -> int:
    writer: LedgerWriter
    async with ledger.write(ws) as writer:
        return await writer.key_spent_before(key_id, moment)


async def _key_with_a_debit(engine: AsyncEngine) -> tuple[Ledger, str, str, Entry]:
    """A funded workspace, a key, and one settled request of 30 nano-USD (held 100): the ledger, the
    workspace, the key and the debit."""
    accounts, ledger = AccountStore(engine), Ledger(engine)
    ws = (await accounts.create_workspace("acme")).id
    key = (await accounts.create_key(ws, "k", None, "total")).key.id
    await credit(ledger, ws, 1000, None, None)
    await reserve(ledger, ws, key, "r1", 100)
    return ledger, ws, key, await settle(ledger, ws, key, "r1", 100, 30)


async def test_0011_makes_the_key_time_index_debits_only_and_the_spend_reads_the_same(
    database_url: str,
) -> None:
    engine: AsyncEngine = create_engine(database_url)
    try:
        await upgrade(engine, "0010")
        ledger, ws, key, debit = await _key_with_a_debit(engine)
        await reserve(ledger, ws, key, "r2", 100)
        later = await release(ledger, ws, key, "r2", 100)
        moments = (debit.created_at, debit.created_at + 1, later.created_at + 1)
        before = [await _spent_before(ledger, ws, key, m) for m in moments]
        assert before == [0, 30, 30]
        async with engine.connect() as conn:
            assert "kind" not in await _index(conn)

        await upgrade(engine)
        async with engine.connect() as conn:
            assert "kind = 'debit'" in (await _index(conn)).replace("(", "").replace(")", "").replace(
                "::text", ""
            )
            assert [await key_spend(conn, key, m) for m in moments] == [30, 0, 0]
        assert [await _spent_before(ledger, ws, key, m) for m in moments] == before
        ledger.close()

        async with engine.begin() as conn:  # and back: the index holds every entry again
            await conn.run_sync(lambda c: command.downgrade(_alembic(c), "0010"))
        async with engine.connect() as conn:
            assert "kind" not in await _index(conn)
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.mark.skipif(is_postgres(), reason="SQLite's query plans")
async def test_the_key_spend_readers_use_the_partial_index_on_sqlite(database_url: str) -> None:
    """SQLite uses a partial index only for a query whose WHERE implies the index's: the statement both
    readers run says `kind = 'debit'` as a literal (a bound parameter would not do)."""
    engine = create_engine(database_url)
    statements: list[tuple[str, tuple[object, ...]]] = []

    def seen(conn: object, cursor: object, statement: str, parameters: object, *args: object) -> None:
        if "created_at <" in statement:
            statements.append((statement, tuple(parameters)))  # type: ignore[arg-type]

    try:
        await upgrade(engine)
        ledger, _, key, debit = await _key_with_a_debit(engine)
        ledger.close()
        event.listen(engine.sync_engine, "before_cursor_execute", seen)
        async with engine.connect() as conn:  # the reports' reader
            assert await key_spend(conn, key, debit.created_at + 1) == 0
        statements.append((KEY_SPENT_BEFORE.sqlite, (key, 5)))  # the reservation's
    finally:
        await engine.dispose()
    assert len(statements) == 2
    path = database_url.split("///", 1)[1]
    with contextlib.closing(sqlite3.connect(path)) as con:
        for statement, parameters in statements:
            plan = con.execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
            assert [row[3] for row in plan] == [
                "SEARCH ledger_entries USING INDEX ix_ledger_key_time (key_id=? AND created_at<?)"
            ]
