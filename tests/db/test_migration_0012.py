"""0012 writes SQLite's kind check as comparisons: the same rows admitted and refused, no ephemeral index."""

from __future__ import annotations

import contextlib
import re
import sqlite3

import pytest
from alembic import command
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.db.test_migration_0007 import _alembic
from tests.dbs import is_postgres
from tests.ledger.conftest import release, reserve, settle
from tollway.accounts import AccountStore
from tollway.billing.credits import credit
from tollway.db import create_engine, upgrade
from tollway.ledger import Ledger
from tollway.ledger.sql import INSERT_ENTRY, statement
from tollway.ledger.verify import verify_ledger

KINDS = ["credit", "reserve", "debit", "reserve", "release", "adjustment"]


async def _table_sql(conn: AsyncConnection) -> str:
    query = "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'ledger_entries'"
    return str((await conn.exec_driver_sql(query)).scalar_one())


async def _bogus_entry(conn: AsyncConnection, ws: str) -> None:
    """An entry no ledger code would write: of a kind that does not exist (and nothing else wrong)."""
    bogus = statement(
        "INSERT INTO ledger_entries (workspace_id, ws_seq, kind, amount_nano, hold_nano, balance_nano,"
        " held_nano, created_at, prev_hash, hash) VALUES ($1, 999, 'refund', 0, 0, 0, 0, 1, 'x', 'y')"
    )
    await conn.exec_driver_sql(bogus.text(conn.dialect.name), (ws,))


async def _every_kind(ledger: Ledger, ws: str, key: str, tag: str) -> list[str]:
    await credit(ledger, ws, 1000, None, None)
    await reserve(ledger, ws, key, f"{tag}1", 100)
    await settle(ledger, ws, key, f"{tag}1", 100, 30)
    await reserve(ledger, ws, key, f"{tag}2", 100)
    await release(ledger, ws, key, f"{tag}2", 100)
    await credit(ledger, ws, -5, None, "correction")
    return [e.kind for e in await ledger.entries(ws, limit=6)][::-1]


async def test_0012_admits_every_kind_refuses_any_other_and_goes_back(database_url: str) -> None:
    engine: AsyncEngine = create_engine(database_url)
    try:
        await upgrade(engine, "0011")
        accounts, ledger = AccountStore(engine), Ledger(engine)
        ws = (await accounts.create_workspace("acme")).id
        key = (await accounts.create_key(ws, "k", None, "total")).key.id
        assert await _every_kind(ledger, ws, key, "before") == KINDS
        if not is_postgres():
            async with engine.connect() as conn:
                original = await _table_sql(conn)
            assert "CHECK (kind IN ('credit', 'adjustment', 'reserve', 'debit', 'release'))" in original

        await upgrade(engine)
        assert await _every_kind(ledger, ws, key, "after") == KINDS
        with pytest.raises(IntegrityError, match=r"(?i)check constraint.*ck_kind|ck_kind.*check"):
            async with engine.begin() as conn:
                await _bogus_entry(conn, ws)
        report = await verify_ledger(engine)
        assert (report.ok, report.entries, report.open_reservations) == (True, 12, 0)
        if not is_postgres():
            async with engine.connect() as conn:
                rewritten = await _table_sql(conn)
                assert (await conn.exec_driver_sql("PRAGMA integrity_check")).scalar_one() == "ok"
            assert rewritten == original.replace(
                "kind IN ('credit', 'adjustment', 'reserve', 'debit', 'release')",
                "kind = 'credit' OR kind = 'adjustment' OR kind = 'reserve' OR kind = 'debit'"
                " OR kind = 'release'",
            )
        ledger.close()

        async with engine.begin() as conn:  # and back: 0002's text again, the same rows refused
            await conn.run_sync(lambda c: command.downgrade(_alembic(c), "0011"))
        if not is_postgres():
            async with engine.connect() as conn:
                assert await _table_sql(conn) == original
        with pytest.raises(IntegrityError, match=r"(?i)check constraint.*ck_kind|ck_kind.*check"):
            async with engine.begin() as conn:
                await _bogus_entry(conn, ws)
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.mark.skipif(is_postgres(), reason="SQLite's programs")
async def test_an_entrys_insert_builds_no_ephemeral_index_on_sqlite(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine, "0011")
        path = database_url.split("///", 1)[1]
        arguments = [None] * max(int(n) for n in re.findall(r"\?(\d+)", INSERT_ENTRY.sqlite))

        def opcodes() -> list[str]:
            with contextlib.closing(sqlite3.connect(path)) as con:
                return [row[1] for row in con.execute("EXPLAIN " + INSERT_ENTRY.sqlite, arguments)]

        assert opcodes().count("OpenEphemeral") == 1  # 0002's IN list
        await upgrade(engine)
        assert opcodes().count("OpenEphemeral") == 0
    finally:
        await engine.dispose()
