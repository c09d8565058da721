"""Group commit on the SQLite ledger thread: batching, isolation of a failing job, durability
modes, and a caller that goes away mid-write.  Always SQLite: the committer is SQLite's path."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.accounts import AccountStore
from tollway.billing.credits import credit
from tollway.db import create_engine, upgrade
from tollway.errors import InsufficientCredit
from tollway.ledger import Balance, Draft, Entry, Ledger, LedgerWriter
from tollway.ledger import committer as committer_module
from tollway.ledger.committer import GroupCommitter
from tollway.ledger.driver import Sql
from tollway.ledger.record import UsageRecord
from tollway.ledger.sql import Statement, statement
from tollway.ledger.verify import verify_ledger

from .conftest import sqlite_url, usage_record


@pytest.fixture(name="sqlite_engine")
async def fixture_sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(sqlite_url(tmp_path / "committer.db"))
    await upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture(name="sqlite_ledger")
def fixture_sqlite_ledger(sqlite_engine: AsyncEngine) -> Ledger:
    return Ledger(sqlite_engine)


async def _hold_thread(ledger: Ledger) -> tuple[threading.Event, asyncio.Future[None]]:
    """Occupy the ledger thread with a job that blocks until the returned event is set.

    Jobs submitted meanwhile queue up behind it and are taken as one batch.
    """
    entered, gate = threading.Event(), threading.Event()

    async def blocker(writer: LedgerWriter) -> None:
        entered.set()
        assert gate.wait(10)

    blocked = asyncio.ensure_future(ledger.transact("ws_none", blocker))
    assert await asyncio.to_thread(entered.wait, 10)
    return gate, blocked


async def test_waiting_jobs_share_one_commit(sqlite_ledger: Ledger, sqlite_engine: AsyncEngine) -> None:
    ws = (await AccountStore(sqlite_engine).create_workspace("batch")).id
    await credit(sqlite_ledger, ws, 1_000, None, None)
    before = sqlite_ledger.commits
    assert before == 1
    gate, blocked = await _hold_thread(sqlite_ledger)

    async def add(writer: LedgerWriter, n: int) -> Entry:
        return await writer.append(Draft(workspace_id=ws, kind="credit", amount_nano=n))

    jobs = [asyncio.ensure_future(sqlite_ledger.transact(ws, lambda w, n=n: add(w, n))) for n in range(1, 21)]
    await asyncio.sleep(0.02)
    gate.set()
    entries = await asyncio.gather(*jobs)
    await blocked
    # One commit for the blocker's (empty) transaction, one for all twenty.
    assert sqlite_ledger.commits == before + 2
    assert [e.ws_seq for e in entries] == list(range(2, 22))
    assert [e.balance_nano for e in entries] == [1_000 + n * (n + 1) // 2 for n in range(1, 21)]
    assert await sqlite_ledger.balance(ws) == Balance(1_210, 0)
    report = await verify_ledger(sqlite_engine)
    assert report.ok, report


async def test_a_batchs_jobs_for_one_workspace_share_its_writer(
    sqlite_ledger: Ledger, sqlite_engine: AsyncEngine
) -> None:
    """As in a PostgreSQL batch: the heads are read once per workspace, then carried in memory."""
    accounts = AccountStore(sqlite_engine)
    first, second = (await accounts.create_workspace("one")).id, (await accounts.create_workspace("two")).id
    await credit(sqlite_ledger, first, 100, None, None)
    await credit(sqlite_ledger, second, 200, None, None)
    gate, blocked = await _hold_thread(sqlite_ledger)
    writers: list[tuple[str, int]] = []

    async def add(writer: LedgerWriter, ws: str, n: int) -> Entry:
        writers.append((ws, id(writer)))
        return await writer.append(Draft(workspace_id=ws, kind="credit", amount_nano=n))

    plan = [(first, 1), (second, 2), (first, 3), (first, 4), (second, 5)]
    jobs = [
        asyncio.ensure_future(sqlite_ledger.transact(ws, lambda w, ws=ws, n=n: add(w, ws, n)))
        for ws, n in plan
    ]
    await asyncio.sleep(0.02)
    gate.set()
    entries = await asyncio.gather(*jobs)
    await blocked
    assert len({writer for ws, writer in writers if ws == first}) == 1
    assert len({writer for ws, writer in writers if ws == second}) == 1
    assert len({writer for _, writer in writers}) == 2
    assert [(e.workspace_id, e.ws_seq, e.balance_nano) for e in entries] == [
        (first, 2, 101),
        (second, 2, 202),
        (first, 3, 104),
        (first, 4, 108),
        (second, 3, 207),
    ]
    assert (await verify_ledger(sqlite_engine)).ok


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux's")
async def test_the_ledger_thread_does_not_preempt_the_loop_that_wakes_it(sqlite_ledger: Ledger) -> None:
    async def policy(writer: LedgerWriter) -> tuple[int, str]:
        return os.sched_getscheduler(0), threading.current_thread().name

    assert await sqlite_ledger.transact("ws_none", policy) == (os.SCHED_BATCH, "tollway-ledger")
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the caller's thread keeps the default


async def test_a_failing_job_takes_nothing_else_down(
    sqlite_ledger: Ledger, sqlite_engine: AsyncEngine
) -> None:
    accounts = AccountStore(sqlite_engine)
    ws = (await accounts.create_workspace("isolation")).id
    key = (await accounts.create_key(ws, "k", None, "total")).key.id
    await credit(sqlite_ledger, ws, 100, None, None)
    gate, blocked = await _hold_thread(sqlite_ledger)

    async def reserve(writer: LedgerWriter, rid: str, hold: int) -> Entry:
        head = await writer.head()
        if hold > head.available_nano:
            raise InsufficientCredit(f"needs {hold}, available {head.available_nano}")
        return await writer.append(
            Draft(workspace_id=ws, kind="reserve", hold_nano=hold, key_id=key, reservation_id=rid)
        )

    plan = [("req_a", 30), ("req_a", 5), ("req_b", 500), ("req_c", 60), ("req_d", 20)]
    jobs = [
        asyncio.ensure_future(
            sqlite_ledger.transact(ws, lambda w, r=rid, h=hold: reserve(w, r, h), durable=False)
        )
        for rid, hold in plan
    ]
    await asyncio.sleep(0.02)
    gate.set()
    outcomes = await asyncio.gather(*jobs, return_exceptions=True)
    await blocked
    assert isinstance(outcomes[0], Entry) and outcomes[0].held_nano == 30
    assert isinstance(outcomes[1], IntegrityError)  # the same reservation id twice
    assert isinstance(outcomes[2], InsufficientCredit)  # 500 > 70 available
    assert isinstance(outcomes[3], Entry) and outcomes[3].held_nano == 90
    assert isinstance(outcomes[4], InsufficientCredit)  # 20 > 10 available after req_c
    assert await sqlite_ledger.balance(ws) == Balance(100, 90)
    entries = await sqlite_ledger.entries(ws, limit=10)
    assert [(e.ws_seq, e.reservation_id) for e in entries] == [(3, "req_c"), (2, "req_a"), (1, None)]
    assert (await verify_ledger(sqlite_engine)).ok


async def test_a_job_failing_after_it_wrote_is_undone_alone(
    sqlite_ledger: Ledger, sqlite_engine: AsyncEngine
) -> None:
    """The batch runs without savepoints until a job fails after writing; then it runs again with them."""
    ws = (await AccountStore(sqlite_engine).create_workspace("undo")).id
    await credit(sqlite_ledger, ws, 100, None, None)
    before = sqlite_ledger.commits
    gate, blocked = await _hold_thread(sqlite_ledger)
    runs: list[int] = []

    async def add(writer: LedgerWriter, n: int) -> Entry:
        runs.append(n)
        entry = await writer.append(Draft(workspace_id=ws, kind="credit", amount_nano=n))
        if n == 2:
            raise RuntimeError("after writing")
        return entry

    jobs = [asyncio.ensure_future(sqlite_ledger.transact(ws, lambda w, n=n: add(w, n))) for n in (1, 2, 3)]
    await asyncio.sleep(0.02)
    gate.set()
    outcomes = await asyncio.gather(*jobs, return_exceptions=True)
    await blocked
    assert isinstance(outcomes[1], RuntimeError)
    assert [(e.ws_seq, e.amount_nano) for e in outcomes if isinstance(e, Entry)] == [(2, 1), (3, 3)]
    assert runs == [1, 2, 1, 2, 3]  # stopped at the failure, then every job again, each in a savepoint
    assert sqlite_ledger.commits == before + 2  # the blocker's, and the batch's one
    assert await sqlite_ledger.balance(ws) == Balance(104, 0)
    assert (await verify_ledger(sqlite_engine)).ok


def _usage(ws: str, key: str, n: int, model: str = "m") -> UsageRecord:
    return usage_record(
        f"req_{n}",
        ws,
        key,
        1_000 * n,
        model=model,
        prompt_tokens=10 * n,
        completion_tokens=n,
        cached_tokens=n // 2,
        started_at=1_700_000_000_000_000,
        finished_at=1_700_000_000_000_000 + n,
    )


def _traced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements the ledger thread's connection runs, from its next connection on."""
    seen: list[str] = []
    configure = committer_module.configure_sqlite

    def traced(connection: sqlite3.Connection) -> None:
        configure(connection)
        connection.set_trace_callback(seen.append)

    monkeypatch.setattr(committer_module, "configure_sqlite", traced)
    return seen


async def _rollup(engine: AsyncEngine) -> list[tuple[object, ...]]:
    async with engine.connect() as conn:
        rows = await conn.exec_driver_sql(
            "SELECT model, calls, prompt_tokens, completion_tokens, cached_tokens, cost_nano"
            " FROM usage_daily ORDER BY model"
        )
        return [tuple(row) for row in rows]


async def _rollup_mismatches(engine: AsyncEngine) -> list[str]:
    """What `tollway ledger verify` finds wrong with the rollup against the records (these records
    have no debits: the checks of the entries are not this test's)."""
    return [m for m in (await verify_ledger(engine)).mismatches if m.startswith("usage rollup")]


async def test_a_batchs_usage_records_upsert_each_rollup_row_once(
    sqlite_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six records on two rollup rows in one batch: six INSERTs, two upserts of the summed shares."""
    seen = _traced(monkeypatch)
    ledger = Ledger(sqlite_engine)
    accounts = AccountStore(sqlite_engine)
    ws = (await accounts.create_workspace("rollup")).id
    key = (await accounts.create_key(ws, "k", None, "total")).key.id
    gate, blocked = await _hold_thread(ledger)
    plan = [(1, "a"), (2, "b"), (3, "a"), (4, "a"), (5, "b"), (6, "a")]
    jobs = [
        asyncio.ensure_future(ledger.transact(ws, lambda w, n=n, m=m: w.record_usage(_usage(ws, key, n, m))))
        for n, m in plan
    ]
    await asyncio.sleep(0.02)
    seen.clear()
    gate.set()
    await asyncio.gather(*jobs)
    await blocked
    # (The trace reports a statement again for each trigger program it runs: count distinct texts.)
    assert len({s for s in seen if s.startswith("INSERT INTO usage_records")}) == 6
    assert sum(s.startswith("INSERT INTO usage_daily") for s in seen) == 2
    # a: 1+3+4+6 = 14, b: 2+5 = 7; cached n // 2 per record
    assert await _rollup(sqlite_engine) == [
        ("a", 4, 140, 14, 0 + 1 + 2 + 3, 14_000),
        ("b", 2, 70, 7, 1 + 2, 7_000),
    ]
    assert await _rollup_mismatches(sqlite_engine) == []
    # A later batch adds to the rows already written.
    await ledger.transact(ws, lambda w: w.record_usage(_usage(ws, key, 7, "b")))
    assert await _rollup(sqlite_engine) == [("a", 4, 140, 14, 6, 14_000), ("b", 3, 140, 14, 6, 14_000)]
    assert await _rollup_mismatches(sqlite_engine) == []
    ledger.close()


async def test_a_failed_jobs_rollup_shares_are_undone_with_its_record(sqlite_engine: AsyncEngine) -> None:
    """A job that records usage and then fails: its record and its share of the rollup go; the
    others' stay (the batch's second run, with a savepoint per job, writes each job's share)."""
    ledger = Ledger(sqlite_engine)
    accounts = AccountStore(sqlite_engine)
    ws = (await accounts.create_workspace("rollup-undo")).id
    key = (await accounts.create_key(ws, "k", None, "total")).key.id
    gate, blocked = await _hold_thread(ledger)

    async def record(writer: LedgerWriter, n: int) -> None:
        await writer.record_usage(_usage(ws, key, n))
        if n == 2:
            raise RuntimeError("after writing")

    jobs = [asyncio.ensure_future(ledger.transact(ws, lambda w, n=n: record(w, n))) for n in (1, 2, 3)]
    await asyncio.sleep(0.02)
    gate.set()
    outcomes = await asyncio.gather(*jobs, return_exceptions=True)
    await blocked
    assert outcomes[0] is None and isinstance(outcomes[1], RuntimeError) and outcomes[2] is None
    assert await _rollup(sqlite_engine) == [("m", 2, 40, 4, 0 + 1, 4_000)]
    assert await _rollup_mismatches(sqlite_engine) == []
    # Alone in its batch, the failing job leaves nothing behind either.
    with pytest.raises(RuntimeError):
        await ledger.transact(ws, lambda w: record(w, 2))
    assert await _rollup(sqlite_engine) == [("m", 2, 40, 4, 1, 4_000)]
    assert await _rollup_mismatches(sqlite_engine) == []
    ledger.close()


async def test_reservations_alone_commit_without_waiting_for_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(sqlite_url(tmp_path / "sync.db"))
    await upgrade(engine)
    committer = GroupCommitter(str(tmp_path / "sync.db"))
    pragma = Statement(postgresql="", sqlite="PRAGMA synchronous")
    insert = Statement(
        postgresql="",
        sqlite="INSERT INTO instances (id, host, pid, started_at, heartbeat_at) VALUES (?, 1, 1, 0, 0)",
    )
    synced: list[int] = []
    real_fdatasync = os.fdatasync

    def fdatasync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real_fdatasync(fd)

    async def level(sql: Sql, name: str) -> int:
        await sql.run(insert, name)
        row = await sql.one(pragma)
        assert row is not None
        return int(row[0])

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    wal = tmp_path / "sync.db-wal"
    try:
        # The connection stays NORMAL; a durable commit syncs the WAL itself once COMMIT is done.
        assert await committer.run(lambda sql: level(sql, "a"), durable=False) == 1
        assert synced == [] and committer.syncs == 0
        assert await committer.run(lambda sql: level(sql, "b")) == 1
        assert synced == [wal.stat().st_ino] and committer.syncs == 1
        assert await committer.run(lambda sql: level(sql, "c"), durable=False) == 1
        assert committer.syncs == 1 and committer.commits == 3
    finally:
        committer.close()
        await engine.dispose()


async def test_a_cancelled_caller_does_not_stop_its_commit(
    sqlite_ledger: Ledger, sqlite_engine: AsyncEngine
) -> None:
    ws = (await AccountStore(sqlite_engine).create_workspace("cancel")).id
    gate, blocked = await _hold_thread(sqlite_ledger)

    async def add(writer: LedgerWriter) -> Entry:
        return await writer.append(Draft(workspace_id=ws, kind="credit", amount_nano=9))

    job = asyncio.ensure_future(sqlite_ledger.transact(ws, add))
    await asyncio.sleep(0.01)
    job.cancel()
    gate.set()
    await blocked
    with pytest.raises(asyncio.CancelledError):
        await job
    await sqlite_ledger.transact(ws, lambda writer: writer.head())  # the thread is still serving
    assert await sqlite_ledger.balance(ws) == Balance(9, 0)


async def test_a_database_that_cannot_be_opened_fails_each_write_and_is_tried_again(tmp_path: Path) -> None:
    """The ledger thread answers every write with the error instead of dying (which would leave this
    write and every later one of the process waiting forever), and opens the database once it can."""
    folder = tmp_path / "not-yet"
    committer = GroupCommitter(str(folder / "ledger.db"))

    async def one(sql: Sql) -> object:
        return await sql.one(statement("SELECT 41 + 1"))

    try:
        for _ in range(2):
            with pytest.raises(OperationalError, match="unable to open database file"):
                await asyncio.wait_for(committer.run(one), 10)
        folder.mkdir()
        assert await asyncio.wait_for(committer.run(one), 10) == (42,)
        assert committer.commits == 1
    finally:
        committer.close()


async def test_two_processes_ledger_threads_take_turns_on_the_lock_file(tmp_path: Path) -> None:
    """`--workers`: each process's ledger thread holds the lock file through its whole transaction,
    so the other's waits in the kernel (woken at once) instead of in SQLite's sleeping busy handler."""
    path = tmp_path / "turns.db"
    engine = create_engine(sqlite_url(path))
    await upgrade(engine)
    first, second = GroupCommitter(str(path)), GroupCommitter(str(path))
    insert = Statement(
        postgresql="",
        sqlite="INSERT INTO instances (id, host, pid, started_at, heartbeat_at) VALUES (?, 1, 1, 0, 0)",
    )
    entered, gate = threading.Event(), threading.Event()

    async def hold(sql: Sql) -> None:
        await sql.run(insert, "first")
        entered.set()
        assert gate.wait(10)

    async def add(sql: Sql) -> None:
        await sql.run(insert, "second")

    holding = asyncio.ensure_future(first.run(hold))
    assert await asyncio.to_thread(entered.wait, 10)
    probe = os.open(str(path) + "-ledger-lock", os.O_RDWR)  # made by the ledger thread as it starts
    try:
        with pytest.raises(BlockingIOError):  # held for the transaction
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        waiting = asyncio.ensure_future(second.run(add))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        gate.set()
        await asyncio.gather(holding, waiting)
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # and let go after it
        fcntl.flock(probe, fcntl.LOCK_UN)
        async with engine.connect() as conn:
            rows = (await conn.exec_driver_sql("SELECT id FROM instances ORDER BY id")).all()
        assert [row[0] for row in rows] == ["first", "second"]
        assert first.commits == second.commits == 1
    finally:
        os.close(probe)
        first.close()
        second.close()
        await engine.dispose()
