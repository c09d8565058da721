"""Running the ledger's statements on a connection: one small interface, two implementations.

`SqliteSql` wraps a plain `sqlite3` connection owned by the ledger thread; its
methods are coroutines that never suspend, so a transaction body written
against `Sql` runs there synchronously (see `committer.drive`).
`AsyncpgSql` wraps the asyncpg connection under a pooled SQLAlchemy
connection (PostgreSQL's request path: asyncpg prepares each statement once
per connection).  `DriverSql` runs the same text through an SQLAlchemy
`AsyncConnection` without compiling anything (maintenance, either engine).

Errors keep SQLAlchemy's types (`IntegrityError`, `OperationalError`, ...) on
both paths, so callers catch one family whatever ran the statement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from tollway.ledger.rollup import KEY as ROLLUP_KEY
from tollway.ledger.sql import ROLLUP_UPSERT, Statement

__all__ = ["AsyncpgSql", "DriverSql", "Row", "Sql", "SqliteSql", "pg_translate", "translate"]

Row = Sequence[Any]


class Sql(Protocol):
    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`: where one statement may do the work of several."""
        ...

    async def one(self, statement: Statement, *args: Any) -> Row | None: ...

    async def all(self, statement: Statement, *args: Any) -> list[Row]: ...

    async def run(self, statement: Statement, *args: Any) -> None: ...

    async def insert(self, statement: Statement, *args: Any) -> int:
        """Insert one row (`statement` answers its id on PostgreSQL, as RETURNING); its id."""
        ...

    async def rollup(self, row: tuple[Any, ...]) -> None:
        """Add a usage record's share (`rollup.rollup_row`) to the daily rollup, in this transaction."""
        ...


_KEYED = len(ROLLUP_KEY)


def translate(sql: str, args: Sequence[Any], error: sqlite3.Error) -> sa_exc.DBAPIError:
    """The SQLAlchemy exception SQLAlchemy itself would raise for this sqlite3 error."""
    kind: type[sa_exc.DBAPIError]
    if isinstance(error, sqlite3.IntegrityError):
        kind = sa_exc.IntegrityError
    elif isinstance(error, sqlite3.OperationalError):
        kind = sa_exc.OperationalError
    else:
        kind = sa_exc.DBAPIError
    return kind(sql, tuple(args), error)


def pg_translate(sql: str, args: Sequence[Any], error: Exception) -> sa_exc.DBAPIError:
    """The SQLAlchemy exception for an asyncpg error (its `sqlstate` stays readable on `.orig`)."""
    if isinstance(error, asyncpg.IntegrityConstraintViolationError):
        return sa_exc.IntegrityError(sql, tuple(args), error)
    return sa_exc.DBAPIError(sql, tuple(args), error)


class SqliteSql:
    dialect = "sqlite"

    def __init__(self, connection: sqlite3.Connection) -> None:
        # One cursor for the transaction's statements: `Connection.execute` makes (and frees) a
        # cursor per statement.  Each statement's rows are read at once, before the next runs.
        self._statements = connection.cursor()
        self._execute = self._statements.execute
        # What the jobs of one transaction share (the ledger keeps its writers here, so a batch's
        # jobs for one workspace read its heads once); cleared when a job's writes are undone.
        self.shared: dict[str, Any] = {}
        # The rollup's shares of the transaction's usage records, summed per rollup row: written
        # once per row (`flush_rollup`) before the commit, not once per record.  Nothing in a
        # ledger transaction reads the rollup; only reports do, after the commit.
        self.pending_rollup: dict[tuple[Any, ...], list[int]] = {}

    def _cursor(self, statement: Statement, args: tuple[Any, ...]) -> sqlite3.Cursor:
        try:
            return self._execute(statement.sqlite, args)
        except sqlite3.Error as error:
            raise translate(statement.sqlite, args, error) from error

    async def one(self, statement: Statement, *args: Any) -> Row | None:
        row: Row | None = self._cursor(statement, args).fetchone()
        return row

    async def all(self, statement: Statement, *args: Any) -> list[Row]:
        return self._cursor(statement, args).fetchall()

    async def run(self, statement: Statement, *args: Any) -> None:
        self._cursor(statement, args)

    async def insert(self, statement: Statement, *args: Any) -> int:
        rowid = self._cursor(statement, args).lastrowid
        assert rowid is not None
        return rowid

    async def rollup(self, row: tuple[Any, ...]) -> None:
        key = row[:_KEYED]
        sums = self.pending_rollup.get(key)
        if sums is None:
            self.pending_rollup[key] = list(row[_KEYED:])
        else:
            for i, figure in enumerate(row[_KEYED:]):
                sums[i] += figure

    def close(self) -> None:
        """The transaction is over: its cursor is closed (no statement of it stays open) and what its
        jobs shared let go (the writers refer back to this object)."""
        self._statements.close()
        self.shared.clear()

    def flush_rollup(self) -> None:
        """Upsert the pending rollup rows (the committer calls it before COMMIT or RELEASE)."""
        for key, sums in self.pending_rollup.items():
            self._cursor(ROLLUP_UPSERT, (*key, *sums))
        self.pending_rollup.clear()


class DriverSql:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        self._dialect = connection.dialect.name

    @property
    def dialect(self) -> str:
        return self._dialect

    async def one(self, statement: Statement, *args: Any) -> Row | None:
        result = await self._connection.exec_driver_sql(statement.text(self._dialect), args)
        return result.first()

    async def all(self, statement: Statement, *args: Any) -> list[Row]:
        result = await self._connection.exec_driver_sql(statement.text(self._dialect), args)
        return list(result.all())

    async def run(self, statement: Statement, *args: Any) -> None:
        await self._connection.exec_driver_sql(statement.text(self._dialect), args)

    async def insert(self, statement: Statement, *args: Any) -> int:
        result = await self._connection.exec_driver_sql(statement.text(self._dialect), args)
        if self._dialect == "sqlite":
            rowid = result.lastrowid
        else:
            row = result.first()
            assert row is not None
            rowid = row[0]
        return int(rowid)

    async def rollup(self, row: tuple[Any, ...]) -> None:
        await self.run(ROLLUP_UPSERT, *row)


class AsyncpgSql:
    dialect = "postgresql"

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection
        self.writes = 0  # statements run that may have written (all but SELECTs)

    def _count(self, statement: Statement) -> None:
        if not statement.postgresql.startswith("SELECT"):
            self.writes += 1

    async def one(self, statement: Statement, *args: Any) -> Row | None:
        self._count(statement)
        try:
            row: Row | None = await self._connection.fetchrow(statement.postgresql, *args)
        except asyncpg.PostgresError as error:
            raise pg_translate(statement.postgresql, args, error) from error
        return row

    async def all(self, statement: Statement, *args: Any) -> list[Row]:
        self._count(statement)
        try:
            rows: list[Row] = await self._connection.fetch(statement.postgresql, *args)
        except asyncpg.PostgresError as error:
            raise pg_translate(statement.postgresql, args, error) from error
        return rows

    async def run(self, statement: Statement, *args: Any) -> None:
        self._count(statement)
        try:
            await self._connection.execute(statement.postgresql, *args)
        except asyncpg.PostgresError as error:
            raise pg_translate(statement.postgresql, args, error) from error

    async def insert(self, statement: Statement, *args: Any) -> int:
        row = await self.one(statement, *args)
        assert row is not None
        return int(row[0])

    async def rollup(self, row: tuple[Any, ...]) -> None:
        await self.run(ROLLUP_UPSERT, *row)
