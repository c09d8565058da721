"""SQLite money transactions on one thread, with group commit.

Every reserve, settle, release and credit of the process is a job for one
database thread.  The thread takes whatever jobs are waiting (up to
`max_batch`), runs them in one `BEGIN IMMEDIATE` transaction, commits once,
and only then answers each job's caller: a response is never sent before its
money event is on disk, but under load one fsync covers many requests.  A job
that fails (refused credit, a unique violation) undoes its own writes and
nothing else: one that wrote nothing has nothing to undo, and a batch in which
a job fails after writing is rolled back and run again with a savepoint per
job (`_run`).

Durability is chosen per commit.  The connection runs with
`synchronous=NORMAL`, so a commit of nothing but reservations (`durable=False`)
survives a crash of the process, not of the machine; any other job makes the
thread `fdatasync` the WAL after the COMMIT, before it answers anyone.  That
is the very sync `synchronous=FULL` does at the end of a commit (in WAL mode
FULL differs from NORMAL only there, and only the WAL is synced), without a
`PRAGMA synchronous` switch each time the kind of commit changes (about
20 µs a request at c=1).  A reservation lost with the machine is harmless:
the request it guarded died too, and WAL keeps commits in order, so the
chain stays whole and the next durable commit makes every earlier one durable.

Several processes (`--workers`) writing one database file each have a
ledger thread.  They take turns through an exclusive `flock` on a lock file
beside the database (`<database>-ledger-lock`) around each batch: a waiting
thread is woken the moment the other lets go, where SQLite's own busy handler
would sleep a millisecond or more before trying again (the CLI's money writes
run on a ledger thread of their own, so they take turns too).  Writers outside
a ledger thread (maintenance) still meet SQLite's lock and its busy timeout.
The WAL is synced after the lock is released: the sync makes this process's
commit durable whatever the other appends meanwhile.

The jobs of one transaction share the ledger's writer for each workspace (`SqliteSql.shared`),
so a batch reads a workspace's heads once, as a PostgreSQL batch does, and their usage records'
shares of the daily rollup are summed per rollup row and upserted once per row before the COMMIT
(`SqliteSql.flush_rollup`; with savepoints, before each job's RELEASE).  A job body is the same
coroutine the asynchronous path runs; on this thread its statements complete
without suspending, so `drive` runs it to its end.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Coroutine
from queue import Empty, SimpleQueue
from typing import Any, Generic, TypeVar

from tollway.db.engine import configure_sqlite
from tollway.ledger.driver import SqliteSql, translate
from tollway.ledger.outcome import deliver

__all__ = ["GroupCommitter", "drive"]

T = TypeVar("T")
Work = Callable[[SqliteSql], Awaitable[T]]


class _Job(Generic[T]):
    __slots__ = ("abandoned", "durable", "future", "loop", "work")

    def __init__(
        self,
        work: Work[T],
        durable: bool,
        loop: asyncio.AbstractEventLoop,
        abandoned: Callable[[T], None] | None,
    ) -> None:
        self.work = work
        self.durable = durable
        self.loop = loop
        self.abandoned = abandoned
        self.future: asyncio.Future[T] = loop.create_future()

    def deliver(self, ok: bool, value: Any) -> None:
        deliver(self.future, self.abandoned, ok, value)


def _deliver(answered: list[tuple[_Job[Any], bool, Any]]) -> None:
    for job, ok, value in answered:
        job.deliver(ok, value)


def drive(coroutine: Awaitable[T]) -> T:
    """Run a coroutine that never suspends to its result, synchronously."""
    assert isinstance(coroutine, Coroutine)
    try:
        coroutine.send(None)
    except StopIteration as stop:
        result: T = stop.value
        return result
    coroutine.close()
    raise RuntimeError("a ledger transaction body may only await the ledger writer")


class GroupCommitter:
    def __init__(self, path: str, *, max_batch: int = 128) -> None:
        self._path = path
        self._max_batch = max_batch
        self._queue: SimpleQueue[_Job[Any] | None] = SimpleQueue()
        self._wal: int | None = None  # a descriptor of the WAL file, opened after the first commit
        self._wal_mode = True
        self.commits = 0  # for tests and benchmarks: how many transactions were committed
        self.syncs = 0  # ... and how many of them waited for the disk
        self._thread = threading.Thread(target=self._serve, name="tollway-ledger", daemon=True)
        self._started = False
        self._lock = threading.Lock()

    async def run(
        self, work: Work[T], *, durable: bool = True, abandoned: Callable[[T], None] | None = None
    ) -> T:
        """Run `work` in the next commit.  If the caller is cancelled meanwhile, the work still
        runs; when it succeeds, `abandoned` gets its result (on the caller's loop)."""
        if not self._started:
            with self._lock:
                if not self._started:
                    self._thread.start()
                    self._started = True
        job = _Job(work, durable, asyncio.get_running_loop(), abandoned)
        self._queue.put(job)
        return await job.future

    def close(self) -> None:
        with self._lock:
            if self._started:
                self._queue.put(None)
                self._thread.join()
                self._started = False

    def _serve(self) -> None:
        _no_wakeup_preemption()
        connection: sqlite3.Connection | None = None
        turns = _turns(self._path)
        try:
            while (job := self._queue.get()) is not None:
                batch = [job]
                stop = False
                while len(batch) < self._max_batch:
                    try:
                        more = self._queue.get_nowait()
                    except Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    batch.append(more)
                try:
                    if connection is None:
                        connection = self._connect()
                    if turns is not None:
                        fcntl.flock(turns, fcntl.LOCK_EX)
                except Exception as error:
                    # The database could not be opened, or the lock file not locked: this batch
                    # fails with the error and the next one tries again.  Dying here instead would
                    # leave every later money write of the process waiting for an answer forever.
                    self._disconnect(connection)
                    connection = None
                    self._answer(batch, [(False, _translated(error))] * len(batch), False)
                    if stop:
                        break
                    continue
                try:
                    outcomes, sync = self._commit(connection, batch)
                finally:
                    if turns is not None:
                        fcntl.flock(turns, fcntl.LOCK_UN)
                self._answer(batch, outcomes, sync)
                if stop:
                    break
        finally:
            if turns is not None:
                os.close(turns)
            self._disconnect(connection)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self._path, timeout=30, check_same_thread=False)
        try:
            configure_sqlite(connection)
            (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
            self._wal_mode = str(mode).lower() == "wal"
            if self._wal_mode:  # durable commits sync the WAL themselves; otherwise every commit is FULL
                connection.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            connection.close()
            raise
        return connection

    def _disconnect(self, connection: sqlite3.Connection | None) -> None:
        """Close the connection and the WAL's descriptor (closing the last connection may remove the
        WAL file: a descriptor kept past it would sync a file nobody writes any more)."""
        if connection is not None:
            connection.close()
        if self._wal is not None:
            os.close(self._wal)
            self._wal = None

    def _sync(self) -> None:
        """Make every commit so far durable: what `synchronous=FULL` does after each commit."""
        if self._wal is None:
            # The WAL exists once something was committed, and stays while this connection is open
            # (SQLite removes it only when the last connection closes); later resets reuse it.
            self._wal = os.open(self._path + "-wal", os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fdatasync(self._wal)
        except OSError as error:  # what SQLite itself reports when its sync fails
            raise sqlite3.OperationalError(f"disk I/O error: syncing the WAL failed ({error})") from error
        self.syncs += 1

    def _run(
        self, connection: sqlite3.Connection, batch: list[_Job[Any]], *, savepoints: bool
    ) -> list[tuple[bool, Any]] | None:
        """Each job's outcome, in one open transaction; None if it was rolled back to run again.

        Without savepoints a job that fails before writing anything (a refusal, the common
        failure) leaves nothing to undo; one that fails after writing rolls the whole
        transaction back, and the batch runs again with a savepoint per job.  That saves two
        statements per job (each a GIL hand-off under load) on every batch without such a failure.
        """
        connection.execute("BEGIN IMMEDIATE")
        sql = SqliteSql(connection)
        try:
            return self._jobs(connection, sql, batch, savepoints)
        finally:
            sql.close()

    @staticmethod
    def _jobs(
        connection: sqlite3.Connection, sql: SqliteSql, batch: list[_Job[Any]], savepoints: bool
    ) -> list[tuple[bool, Any]] | None:
        """`_run`'s jobs, in the transaction it opened."""
        outcomes: list[tuple[bool, Any]] = []
        for job in batch:
            if savepoints:
                connection.execute("SAVEPOINT job")
            changes = connection.total_changes
            try:
                value = drive(job.work(sql))
                if savepoints:
                    sql.flush_rollup()  # the job's share, under its own savepoint
                outcomes.append((True, value))
            except Exception as error:
                if not connection.in_transaction:
                    raise  # SQLite rolled the whole transaction back: the batch failed
                if savepoints:
                    connection.execute("ROLLBACK TO job")
                    sql.shared.clear()  # what the jobs shared may have moved on with the undone writes
                    sql.pending_rollup.clear()  # ... and the failed job's rollup shares
                elif connection.total_changes != changes and len(batch) > 1:
                    connection.execute("ROLLBACK")
                    return None
                outcomes.append((False, error))
            if savepoints:
                connection.execute("RELEASE job")
        # Every share of the rollup comes with a usage record's INSERT, a write: a job that added
        # one and then failed sent the batch round again with savepoints (or, alone, is rolled back).
        sql.flush_rollup()
        return outcomes

    def _commit(
        self, connection: sqlite3.Connection, batch: list[_Job[Any]]
    ) -> tuple[list[tuple[bool, Any]], bool]:
        """Each job's outcome, and whether the commit must be synced before anyone is answered."""
        try:
            outcomes = self._run(connection, batch, savepoints=False)
            if outcomes is None:  # a job failed after writing: again, each job in its own savepoint
                outcomes = self._run(connection, batch, savepoints=True)
            assert outcomes is not None
            if any(ok for ok, _ in outcomes):
                connection.execute("COMMIT")
                self.commits += 1
                return outcomes, self._wal_mode and any(job.durable for job in batch)
            connection.execute("ROLLBACK")
            return outcomes, False
        except Exception as error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            return [(False, _translated(error))] * len(batch), False

    def _answer(self, batch: list[_Job[Any]], outcomes: list[tuple[bool, Any]], sync: bool) -> None:
        if sync:
            try:
                self._sync()
            except Exception as error:
                outcomes = [(False, _translated(error))] * len(batch)
        # One wake-up per event loop for the whole batch (a write to its self-pipe each), not per job.
        answers: dict[asyncio.AbstractEventLoop, list[tuple[_Job[Any], bool, Any]]] = {}
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            answers.setdefault(job.loop, []).append((job, ok, value))
        for loop, answered in answers.items():
            try:
                loop.call_soon_threadsafe(_deliver, answered)
            except RuntimeError:  # the callers' event loop is closed: nobody is waiting
                pass


def _no_wakeup_preemption() -> None:
    """Linux: this thread, woken by a job, waits for the CPU instead of taking it (`SCHED_BATCH`).

    The event loop puts a job in the queue and carries on; woken at once, this thread would
    preempt it only to block on the GIL the loop still holds, and switch back: two context
    switches per batch for nothing, on the one CPU a pinned worker has.  As a batch thread it
    runs when the loop next waits (and gets its fair share under load, as before).
    """
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None:
        return
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))
    except OSError:  # refused (a sandbox): the default policy only costs the switches
        pass


def _turns(path: str) -> int | None:
    """The lock file the ledger threads of several processes take turns on (None: SQLite's lock only)."""
    try:
        return os.open(path + "-ledger-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o660)
    except OSError:  # e.g. another user's file: SQLite's own lock and busy timeout still serialise
        return None


def _translated(error: Exception) -> Exception:
    return translate("COMMIT", (), error) if isinstance(error, sqlite3.Error) else error
