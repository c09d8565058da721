"""Appending to and reading the ledger.  Nothing here updates or deletes a money row.

Writes for a workspace are serialised: SQLite takes its write lock at
`BEGIN IMMEDIATE`; PostgreSQL locks the workspace's row.  Within that lock
the writer reads the workspace's head once and chains each entry after it.
The writer speaks plain SQL (`sql.py`) through `driver.Sql`, so the same code
runs on the SQLite ledger thread and on an asyncpg connection.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from time import perf_counter
from typing import Any, TypeVar

import asyncpg
import msgspec
from msgspec import Struct
from msgspec.structs import astuple
from sqlalchemy import select
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.clock import now_us
from tollway.db.engine import is_sqlite, write_connection
from tollway.db.schema import ledger_entries, usage_records
from tollway.ledger.batches import Batches, Job
from tollway.ledger.chain import Draft, Entry, Head, KeyHead, chain
from tollway.ledger.committer import GroupCommitter
from tollway.ledger.driver import AsyncpgSql, DriverSql, Row, Sql, SqliteSql, pg_translate
from tollway.ledger.record import UsageRecord
from tollway.ledger.rollup import rollup_row
from tollway.ledger.sql import (
    CREDIT_BY_KEY,
    ENTRY_COLUMNS,
    HEAD,
    HEADS,
    INSERT_ENTRY,
    INSERT_USAGE,
    KEY_HEAD,
    KEY_SPENT_BEFORE,
    LOCK_HEADS,
    LOCK_WORKSPACE,
    RESERVATION_ENTRIES,
    SETTLE_PG,
)

__all__ = ["Balance", "Ledger", "LedgerWriter", "UsageRecord", "entry_from_row"]

_E = ledger_entries.c
T = TypeVar("T")


class Balance(Struct, frozen=True):
    balance_nano: int
    held_nano: int

    @property
    def available_nano(self) -> int:
        return self.balance_nano - self.held_nano


_RETRY_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected


def _transient(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return sqlstate in _RETRY_SQLSTATES or "database is locked" in str(exc.orig)


def entry_from_row(row: RowMapping | Mapping[str, Any]) -> Entry:
    return Entry(**{name: row[name] for name in Entry.__struct_fields__})


class LedgerWriter:
    """Appends for one workspace inside its write transaction."""

    def __init__(self, sql: Sql, workspace_id: str) -> None:
        self._sql = sql
        self.workspace_id = workspace_id
        self._head: Head | None = None
        self._key_heads: dict[str, KeyHead] = {}

    @property
    def sql(self) -> Sql:
        """The transaction's connection, for writes that belong with the entries (outbox, limits)."""
        return self._sql

    async def head(self, key_id: str | None = None) -> Head:
        """The workspace's head; with `key_id`, that key's head is read in the same statement."""
        if self._head is None:
            if key_id is not None and key_id not in self._key_heads:
                self.prime(key_id, await self._sql.all(HEADS, self.workspace_id, key_id))
            else:
                found = await self._sql.one(HEAD, self.workspace_id)
                self._head = Head() if found is None else Head(found[0], found[1], found[2], found[3])
        assert self._head is not None
        return self._head

    def prime(self, key_id: str, rows: list[Row]) -> None:
        """The heads from rows shaped as `HEADS` returns them (the workspace's, then the key's)."""
        self._head, self._key_heads[key_id] = Head(), KeyHead()
        for row in rows:
            if row[0] is not None:
                self._head = Head(row[0], row[1], row[2], row[3])
            else:
                self._key_heads[key_id] = KeyHead(row[1], row[2])

    async def key_head(self, key_id: str) -> KeyHead:
        if key_id not in self._key_heads:
            row = await self._sql.one(KEY_HEAD, key_id)
            self._key_heads[key_id] = KeyHead() if row is None else KeyHead(row[0], row[1])
        return self._key_heads[key_id]

    async def key_spent_before(self, key_id: str, before_us: int) -> int:
        """The key's all-time spend as it stood at `before_us` (0 if it had no entries yet)."""
        row = await self._sql.one(KEY_SPENT_BEFORE, key_id, before_us)
        return 0 if row is None else int(row[0])

    async def append(self, draft: Draft) -> Entry:
        entry = await self._chain(draft)
        entry_id = await self._sql.insert(INSERT_ENTRY, *astuple(entry)[:-1])  # every column but the id
        return self._advance(entry, entry_id)

    async def append_with_usage(self, record: UsageRecord, draft: Draft) -> Entry:
        """`record_usage(record)` then `append(draft)`: on PostgreSQL, one statement."""
        if self._sql.dialect != "postgresql":
            await self.record_usage(record)
            return await self.append(draft)
        entry = await self._chain(draft)
        row = await self._sql.one(
            SETTLE_PG,
            *astuple(record),
            *rollup_row(record),
            *astuple(entry)[:-1],
        )
        assert row is not None
        return self._advance(entry, row[0])

    async def _chain(self, draft: Draft) -> Entry:
        """The draft as the next entry after the heads."""
        assert draft.workspace_id == self.workspace_id
        head = await self.head(draft.key_id)
        key_head = await self.key_head(draft.key_id) if draft.key_id is not None else None
        return chain(head, key_head, draft, now_us())

    def _advance(self, entry: Entry, entry_id: int) -> Entry:
        """The entry is written: the heads move on to it."""
        self._head = entry.head()
        if entry.key_id is not None:
            self._key_heads[entry.key_id] = entry.key_head()
        return msgspec.structs.replace(entry, id=entry_id)

    async def reservation(self, reservation_id: str) -> tuple[Entry | None, bool]:
        """The reserve entry for `reservation_id` and whether it is already settled or released."""
        entries = [_entry(row) for row in await self._sql.all(RESERVATION_ENTRIES, reservation_id)]
        reserve = next((e for e in entries if e.kind == "reserve"), None)
        return reserve, any(e.kind in ("debit", "release") for e in entries)

    async def credit_by_key(self, idempotency_key: str) -> Entry | None:
        row = await self._sql.one(CREDIT_BY_KEY, self.workspace_id, idempotency_key)
        return None if row is None else _entry(row)

    async def record_usage(self, record: UsageRecord) -> None:
        """The usage record, and its share of the daily rollup, in the caller's transaction."""
        await self._sql.run(INSERT_USAGE, *astuple(record))
        await self._sql.rollup(rollup_row(record))


def _when_landed(abandoned: Callable[[T], None]) -> Callable[[asyncio.Future[T]], None]:
    """A done-callback passing a committed transaction's result to `abandoned`."""

    def landed(done: asyncio.Future[T]) -> None:
        if not done.cancelled() and done.exception() is None:
            abandoned(done.result())

    return landed


def _shared_writer(sql: SqliteSql, workspace_id: str) -> LedgerWriter:
    """The workspace's writer in this transaction: the jobs of a batch share its heads, as they do
    in a PostgreSQL batch (a job that fails after writing undoes the batch's or its own writes,
    and the committer then drops what was shared)."""
    writer: LedgerWriter | None = sql.shared.get(workspace_id)
    if writer is None:
        writer = sql.shared[workspace_id] = LedgerWriter(sql, workspace_id)
    return writer


def _entry(row: Row) -> Entry:
    """An entry from a row of ENTRY_COLUMNS followed by the id."""
    return Entry(**dict(zip((*ENTRY_COLUMNS, "id"), row, strict=True)))


class Ledger:
    def __init__(self, engine: AsyncEngine, *, on_commit: Callable[[str, float], None] | None = None) -> None:
        self._engine = engine
        # Told each `transact`'s operation and duration in seconds (the ledger commit metric).
        self._on_commit = on_commit
        self._sqlite = is_sqlite(str(engine.url))
        # SQLite money transactions run on one thread, several to a commit (see committer.py).
        database = engine.url.database
        self._committer = GroupCommitter(database) if self._sqlite and database else None
        # PostgreSQL's are batched per workspace on the event loop (see batches.py).
        self._batches = Batches(self._pg_batch, self._pg_one)

    @property
    def commits(self) -> int | None:
        """Transactions the ledger thread committed so far (SQLite only)."""
        return None if self._committer is None else self._committer.commits

    @property
    def batched(self) -> int | None:
        """Transactions that carried more than one job so far (PostgreSQL only)."""
        return None if self._committer is not None else self._batches.batches

    def close(self) -> None:
        if self._committer is not None:
            self._committer.close()

    @asynccontextmanager
    async def write(self, workspace_id: str) -> AsyncIterator[LedgerWriter]:
        """One atomic, serialised write transaction for a workspace, on the event loop.

        For maintenance and tests; the request path goes through `transact`.
        """
        async with self._engine.connect() as conn:
            await write_connection(conn)  # SQLite: BEGIN IMMEDIATE takes the write lock
            async with conn.begin():
                sql = DriverSql(conn)
                if not self._sqlite:
                    await sql.run(LOCK_WORKSPACE, workspace_id)
                yield LedgerWriter(sql, workspace_id)

    async def transact(
        self,
        workspace_id: str,
        work: Callable[[LedgerWriter], Awaitable[T]],
        *,
        durable: bool = True,
        abandoned: Callable[[T], None] | None = None,
        operation: str = "write",
        key_id: str | None = None,
    ) -> T:
        """`_transact`, timed for `on_commit` under `operation` (retries, a group commit's wait included)."""
        if self._on_commit is None:
            return await self._transact(
                workspace_id, work, durable=durable, abandoned=abandoned, key_id=key_id
            )
        started = perf_counter()
        try:
            return await self._transact(
                workspace_id, work, durable=durable, abandoned=abandoned, key_id=key_id
            )
        finally:
            self._on_commit(operation, perf_counter() - started)

    async def _transact(
        self,
        workspace_id: str,
        work: Callable[[LedgerWriter], Awaitable[T]],
        *,
        durable: bool,
        abandoned: Callable[[T], None] | None,
        key_id: str | None,
    ) -> T:
        """Run `work` in one write transaction, again if the engine asks for a retry.

        `durable=False` lets SQLite commit without waiting for the disk when
        nothing but reservations share the commit (see committer.py).  If the
        caller is cancelled while the transaction is under way and it still
        commits, `abandoned` receives its result, so the caller's cleanup can
        undo what it can no longer see.  Locks are taken in one fixed order
        (only the workspace's), so deadlocks are not expected; a serialisation
        failure, a deadlock report or SQLite's busy timeout still gets up to
        three more attempts with a short random backoff.

        `key_id` names the key whose head the work will need: on PostgreSQL the lock
        statement then reads both heads in the same round trip.
        """
        for attempt in range(4):
            try:
                if self._committer is not None:
                    return await self._committer.run(
                        lambda sql: work(_shared_writer(sql, workspace_id)),
                        durable=durable,
                        abandoned=abandoned,
                    )
                return await self._batches.run(workspace_id, work, key_id, abandoned)
            except DBAPIError as exc:
                if attempt == 3 or not _transient(exc):
                    raise
                await asyncio.sleep(random.uniform(0.005, 0.05) * (attempt + 1))
        raise AssertionError("unreachable")

    async def _pg_one(self, workspace_id: str, job: Job[Any]) -> Any:
        """One job in a transaction of its own: its result, or its failure raised."""
        ((ok, value),) = await self._pg_batch(workspace_id, [job])
        if not ok:
            raise value
        return value

    async def _pg_batch(self, workspace_id: str, jobs: list[Job[Any]]) -> list[tuple[bool, Any]]:
        """The jobs in one transaction, straight on the pooled connection's asyncpg driver, sharing
        its lock and the heads it read.

        A job that fails without writing fails alone; any other failure propagates (the batch
        is rolled back).
        """
        async with self._engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            try:
                async with driver.transaction():
                    sql = AsyncpgSql(driver)
                    writer = LedgerWriter(sql, workspace_id)
                    key_id = next((job.key_id for job in jobs if job.key_id is not None), None)
                    if key_id is None:
                        await sql.run(LOCK_WORKSPACE, workspace_id)
                    else:
                        writer.prime(key_id, await sql.all(LOCK_HEADS, workspace_id, key_id))
                    outcomes: list[tuple[bool, Any]] = []
                    for job in jobs:
                        writes = sql.writes
                        try:
                            outcomes.append((True, await job.work(writer)))
                        except DBAPIError:
                            raise  # the transaction is aborted
                        except Exception as error:
                            if sql.writes != writes:
                                raise
                            outcomes.append((False, error))
                    return outcomes
            except asyncpg.PostgresError as error:  # raised by COMMIT itself
                raise pg_translate("COMMIT", (), error) from error

    async def balance(self, workspace_id: str) -> Balance:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(_E.balance_nano, _E.held_nano)
                    .where(_E.workspace_id == workspace_id)
                    .order_by(_E.ws_seq.desc())
                    .limit(1)
                )
            ).first()
        return Balance(0, 0) if row is None else Balance(row[0], row[1])

    async def entries(self, workspace_id: str, limit: int, before_seq: int | None = None) -> list[Entry]:
        """Newest first; `before_seq` continues after a page."""
        query = select(ledger_entries).where(_E.workspace_id == workspace_id)
        if before_seq is not None:
            query = query.where(_E.ws_seq < before_seq)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query.order_by(_E.ws_seq.desc()).limit(limit))).mappings().all()
        return [entry_from_row(r) for r in rows]

    async def usage_record(self, request_id: str) -> UsageRecord | None:
        async with self._engine.connect() as conn:
            row = (
                (await conn.execute(select(usage_records).where(usage_records.c.id == request_id)))
                .mappings()
                .first()
            )
        return None if row is None else UsageRecord(**{n: row[n] for n in UsageRecord.__struct_fields__})
