"""Async engine construction with the per-engine settings tollway relies on."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

__all__ = ["IMMEDIATE", "configure_sqlite", "create_engine", "is_sqlite", "write_connection"]

# Execution option asking SQLite for `BEGIN IMMEDIATE`: the write lock is
# taken when the transaction starts, so check-then-write sequences cannot
# interleave with another writer (another worker, the CLI).
IMMEDIATE = "tollway_immediate"


def _null(value: None) -> None:
    return None


# The sqlite3 module binds int, float, str and bytearray parameters directly; any other value
# (None, a bool) first goes through its adapter protocol, whose failed `__adapt__` lookup on a
# type formats and discards an AttributeError: ~0.26 µs a parameter, and a ledger entry has
# several NULLs.  Registered adapters are found first (~0.1 µs).  Both bind exactly as before:
# None as NULL, a bool as the integer 0 or 1.  (Process-wide, like every sqlite3 adapter.)
sqlite3.register_adapter(type(None), _null)
sqlite3.register_adapter(bool, int)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(url: str, *, pool_size: int = 20) -> AsyncEngine:
    if is_sqlite(url):
        engine = create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, connect_args={"timeout": 30}
        )
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    # No pre-ping: it would cost a round trip per checkout on the request path; connections
    # are recycled instead, and a dropped one fails its transaction, which is retried.
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800)


async def write_connection(conn: AsyncConnection) -> AsyncConnection:
    """Mark a connection's next transaction as a writer (BEGIN IMMEDIATE on SQLite)."""
    return await conn.execution_options(**{IMMEDIATE: True})


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    configure_sqlite(dbapi_connection)


def configure_sqlite(dbapi_connection: Any) -> None:
    """Settings for every SQLite connection tollway opens (pooled, or the ledger thread's own)."""
    # tollway emits BEGIN itself (see _sqlite_begin); the driver must not.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the single writer; busy_timeout makes a
    # second writer wait instead of failing; synchronous=FULL makes every
    # committed money event survive a power cut, not just a process crash.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(IMMEDIATE) else "BEGIN")
