"""Appending to and reading the ledger.  Nothing here updates or deletes a money row.

Writes for a workspace are serialised: SQLite takes its write lock at
`BEGIN IMMEDIATE`; PostgreSQL locks the workspace's row.  Within that lock
the writer reads the workspace's head once and chains each entry after it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import msgspec
from msgspec import Struct
from sqlalchemy import Engine, Executable, insert, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.clock import now_us
from tollway.db.engine import IMMEDIATE, create_sync_engine, is_sqlite, write_connection
from tollway.db.schema import ledger_entries, usage_records, workspaces
from tollway.ledger.chain import Draft, Entry, Head, KeyHead, chain
from tollway.ledger.record import UsageRecord
from tollway.ledger.rollup import rollup_upsert

__all__ = ["Balance", "Ledger", "LedgerWriter", "UsageRecord", "entry_from_row"]

_E = ledger_entries.c
T = TypeVar("T")
Execute = Callable[[Executable], Awaitable[Any]]


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

    def __init__(self, execute: Execute, dialect: str, workspace_id: str) -> None:
        self._execute = execute
        self._dialect = dialect
        self.workspace_id = workspace_id
        self._head: Head | None = None
        self._key_heads: dict[str, KeyHead] = {}

    async def head(self) -> Head:
        if self._head is None:
            row = (
                await self._execute(
                    select(_E.ws_seq, _E.balance_nano, _E.held_nano, _E.hash)
                    .where(_E.workspace_id == self.workspace_id)
                    .order_by(_E.ws_seq.desc())
                    .limit(1)
                )
            ).first()
            self._head = Head() if row is None else Head(row[0], row[1], row[2], row[3])
        return self._head

    async def key_head(self, key_id: str) -> KeyHead:
        if key_id not in self._key_heads:
            row = (
                await self._execute(
                    select(_E.key_spent_nano, _E.key_held_nano)
                    .where(_E.key_id == key_id)
                    .order_by(_E.id.desc())
                    .limit(1)
                )
            ).first()
            self._key_heads[key_id] = KeyHead() if row is None else KeyHead(row[0], row[1])
        return self._key_heads[key_id]

    async def key_spent_before(self, key_id: str, before_us: int) -> int:
        """The key's all-time spend as it stood at `before_us` (0 if it had no entries yet)."""
        row = (
            await self._execute(
                select(_E.key_spent_nano)
                .where(_E.key_id == key_id, _E.created_at < before_us)
                .order_by(_E.created_at.desc(), _E.id.desc())
                .limit(1)
            )
        ).first()
        return 0 if row is None else int(row[0])

    async def append(self, draft: Draft) -> Entry:
        assert draft.workspace_id == self.workspace_id
        draft = msgspec.structs.replace(draft, created_at=now_us())
        key_head = await self.key_head(draft.key_id) if draft.key_id is not None else None
        entry = chain(await self.head(), key_head, draft)
        values = {name: getattr(entry, name) for name in Entry.__struct_fields__ if name != "id"}
        result = await self._execute(insert(ledger_entries).values(**values))
        entry_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
        self._head = entry.head()
        if draft.key_id is not None:
            self._key_heads[draft.key_id] = entry.key_head()
        return Entry(**{**{n: getattr(entry, n) for n in Entry.__struct_fields__}, "id": entry_id})

    async def reservation(self, reservation_id: str) -> tuple[Entry | None, bool]:
        """The reserve entry for `reservation_id` and whether it is already settled or released."""
        rows = (
            (await self._execute(select(ledger_entries).where(_E.reservation_id == reservation_id)))
            .mappings()
            .all()
        )
        reserve = next((entry_from_row(r) for r in rows if r["kind"] == "reserve"), None)
        return reserve, any(r["kind"] in ("debit", "release") for r in rows)

    async def credit_by_key(self, idempotency_key: str) -> Entry | None:
        row = (
            (
                await self._execute(
                    select(ledger_entries).where(
                        _E.workspace_id == self.workspace_id, _E.idempotency_key == idempotency_key
                    )
                )
            )
            .mappings()
            .first()
        )
        return None if row is None else entry_from_row(row)

    async def record_usage(self, record: UsageRecord) -> None:
        """The usage record, and its share of the daily rollup, in the caller's transaction."""
        values = {name: getattr(record, name) for name in UsageRecord.__struct_fields__}
        await self._execute(insert(usage_records).values(**values))
        await self._execute(rollup_upsert(self._dialect, record))


class Ledger:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sqlite = is_sqlite(str(engine.url))
        # SQLite money transactions run whole on one database thread (see _SqliteThread).
        self._thread = _SqliteThread(engine) if self._sqlite else None

    def close(self) -> None:
        if self._thread is not None:
            self._thread.close()

    @asynccontextmanager
    async def write(self, workspace_id: str) -> AsyncIterator[LedgerWriter]:
        """One atomic, serialised write transaction for a workspace."""
        async with self._engine.connect() as conn:
            await write_connection(conn)
            async with conn.begin():
                if not self._sqlite:
                    # FOR NO KEY UPDATE serialises ledger writers of this workspace without
                    # blocking foreign-key checks (e.g. creating one of its keys).
                    await conn.execute(
                        select(workspaces.c.id)
                        .where(workspaces.c.id == workspace_id)
                        .with_for_update(key_share=True)
                    )
                yield LedgerWriter(conn.execute, conn.dialect.name, workspace_id)

    async def transact(self, workspace_id: str, work: Callable[[LedgerWriter], Awaitable[T]]) -> T:
        """Run `work` in one write transaction, again if the engine asks for a retry.

        Locks are taken in one fixed order (only the workspace's), so deadlocks are not
        expected; a serialisation failure, a deadlock report or SQLite's busy timeout still
        gets up to three more attempts with a short random backoff.
        """
        for attempt in range(4):
            try:
                if self._thread is not None:
                    return await self._thread.run(workspace_id, work)
                async with self.write(workspace_id) as writer:
                    return await work(writer)
            except DBAPIError as exc:
                if attempt == 3 or not _transient(exc):
                    raise
                await asyncio.sleep(random.uniform(0.005, 0.05) * (attempt + 1))
        raise AssertionError("unreachable")

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


class _SqliteThread:
    """One thread that runs each SQLite money transaction from BEGIN to COMMIT in a single hop.

    Through aiosqlite every statement is several thread hops; here a whole
    reserve or settle is one.  The transaction body is the same coroutine the
    async path runs: the writer's methods complete without suspending, so the
    coroutine is driven to its end right here on the database thread.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._url = engine.url.set(drivername="sqlite")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tollway-ledger")
        self._sync_engine: Engine | None = None

    def _engine(self) -> Engine:
        if self._sync_engine is None:
            self._sync_engine = create_sync_engine(self._url)
        return self._sync_engine

    async def run(self, workspace_id: str, work: Callable[[LedgerWriter], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._transaction, workspace_id, work)

    def _transaction(self, workspace_id: str, work: Callable[[LedgerWriter], Awaitable[T]]) -> T:
        with self._engine().connect() as conn:
            conn.execution_options(**{IMMEDIATE: True})
            with conn.begin():

                async def execute(statement: Executable) -> Any:
                    return conn.execute(statement)

                return _drive(work(LedgerWriter(execute, "sqlite", workspace_id)))

    def close(self) -> None:
        if self._sync_engine is not None:
            self._executor.submit(self._sync_engine.dispose).result()
        self._executor.shutdown(wait=True)


def _drive(coroutine: Awaitable[T]) -> T:
    """Run a coroutine that never suspends to its result, synchronously."""
    assert isinstance(coroutine, Coroutine)
    try:
        coroutine.send(None)
    except StopIteration as stop:
        result: T = stop.value
        return result
    coroutine.close()
    raise RuntimeError("a ledger transaction body may only await the ledger writer")
