"""Per-workspace batches on PostgreSQL (ledger/batches.py): the jobs waiting behind a transaction
share the next one; a failing job takes nothing else down; a cancelled caller is handled as on
SQLite's ledger thread.  PostgreSQL only: SQLite batches on its ledger thread (test_committer.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.dbs import is_postgres
from tollway.accounts import AccountStore
from tollway.billing.credits import credit
from tollway.errors import InsufficientCredit
from tollway.ledger import Balance, Draft, Entry, Ledger, LedgerWriter
from tollway.ledger.verify import verify_ledger

pytestmark = pytest.mark.skipif(not is_postgres(), reason="PostgreSQL's batches (SQLite: test_committer.py)")


async def _hold(ledger: Ledger, ws: str) -> tuple[asyncio.Event, asyncio.Future[None]]:
    """A transaction of the workspace that stays open until the returned event is set."""
    entered, gate = asyncio.Event(), asyncio.Event()

    async def blocker(writer: LedgerWriter) -> None:
        entered.set()
        await gate.wait()

    blocked = asyncio.ensure_future(ledger.transact(ws, blocker))
    await entered.wait()
    return gate, blocked


async def _behind(
    ledger: Ledger, ws: str, works: list[Callable[[LedgerWriter], Awaitable[Any]]], key: str | None = None
) -> list[Any]:
    """Each work submitted while the workspace's transaction is under way; their outcomes."""
    gate, blocked = await _hold(ledger, ws)
    jobs = [asyncio.ensure_future(ledger.transact(ws, work, key_id=key)) for work in works]
    await asyncio.sleep(0.05)
    assert not any(job.done() for job in jobs)
    gate.set()
    outcomes = await asyncio.gather(*jobs, return_exceptions=True)
    await blocked
    return outcomes


async def test_waiting_jobs_share_one_transaction(ledger: Ledger, engine: AsyncEngine) -> None:
    ws = (await AccountStore(engine).create_workspace("batch")).id
    await credit(ledger, ws, 1_000, None, None)
    assert ledger.batched == 0

    async def add(writer: LedgerWriter, n: int) -> Entry:
        return await writer.append(Draft(workspace_id=ws, kind="credit", amount_nano=n))

    entries = await _behind(ledger, ws, [lambda w, n=n: add(w, n) for n in range(1, 21)])
    assert ledger.batched == 1
    assert [e.ws_seq for e in entries] == list(range(2, 22))
    assert [e.balance_nano for e in entries] == [1_000 + n * (n + 1) // 2 for n in range(1, 21)]
    assert await ledger.balance(ws) == Balance(1_210, 0)
    assert (await verify_ledger(engine)).ok


async def test_a_failing_job_takes_nothing_else_down(ledger: Ledger, engine: AsyncEngine) -> None:
    accounts = AccountStore(engine)
    ws = (await accounts.create_workspace("isolation")).id
    key = (await accounts.create_key(ws, "k", None, "total")).key.id
    await credit(ledger, ws, 100, None, None)

    async def reserve(writer: LedgerWriter, rid: str, hold: int) -> Entry:
        head = await writer.head(key)
        if hold > head.available_nano:
            raise InsufficientCredit(f"needs {hold}, available {head.available_nano}")
        return await writer.append(
            Draft(workspace_id=ws, kind="reserve", hold_nano=hold, key_id=key, reservation_id=rid)
        )

    plan = [("req_a", 30), ("req_b", 500), ("req_c", 60), ("req_d", 20)]
    outcomes = await _behind(
        ledger, ws, [lambda w, r=rid, h=hold: reserve(w, r, h) for rid, hold in plan], key
    )
    assert ledger.batched == 1  # refusals raised before writing: the batch stood
    assert isinstance(outcomes[0], Entry) and outcomes[0].held_nano == 30
    assert isinstance(outcomes[1], InsufficientCredit)  # 500 > 70 available
    assert isinstance(outcomes[2], Entry) and outcomes[2].held_nano == 90
    assert outcomes[2].key_held_nano == 90
    assert isinstance(outcomes[3], InsufficientCredit)  # 20 > 10 available after req_c
    assert await ledger.balance(ws) == Balance(100, 90)

    # A statement that fails aborts PostgreSQL's transaction: the batch is rolled back, and each job
    # runs again alone.
    again = [("req_e", 5), ("req_a", 5), ("req_f", 5)]
    outcomes = await _behind(
        ledger, ws, [lambda w, r=rid, h=hold: reserve(w, r, h) for rid, hold in again], key
    )
    assert ledger.batched == 1
    assert isinstance(outcomes[1], IntegrityError)  # req_a is reserved already
    assert [e.reservation_id for e in outcomes if isinstance(e, Entry)] == ["req_e", "req_f"]
    assert await ledger.balance(ws) == Balance(100, 100)
    entries = await ledger.entries(ws, limit=10)
    assert [(e.ws_seq, e.reservation_id) for e in entries] == [
        (5, "req_f"),
        (4, "req_e"),
        (3, "req_c"),
        (2, "req_a"),
        (1, None),
    ]
    assert (await verify_ledger(engine)).ok


async def test_a_job_failing_after_it_wrote_is_undone_alone(ledger: Ledger, engine: AsyncEngine) -> None:
    ws = (await AccountStore(engine).create_workspace("undo")).id
    await credit(ledger, ws, 100, None, None)
    runs: list[int] = []

    async def add(writer: LedgerWriter, n: int) -> Entry:
        runs.append(n)
        entry = await writer.append(Draft(workspace_id=ws, kind="credit", amount_nano=n))
        if n == 2:
            raise RuntimeError("after writing")
        return entry

    outcomes = await _behind(ledger, ws, [lambda w, n=n: add(w, n) for n in (1, 2, 3)])
    assert isinstance(outcomes[1], RuntimeError)
    assert [(e.ws_seq, e.amount_nano) for e in outcomes if isinstance(e, Entry)] == [(2, 1), (3, 3)]
    assert runs == [1, 2, 1, 2, 3]  # stopped at the failure, then every job again in its own transaction
    assert ledger.batched == 0
    assert await ledger.balance(ws) == Balance(104, 0)
    assert (await verify_ledger(engine)).ok


async def test_cancelled_callers(ledger: Ledger, engine: AsyncEngine) -> None:
    """Cancelled before its job started: nothing is written.  Cancelled once it started: the job
    commits and `abandoned` is told what landed."""
    ws = (await AccountStore(engine).create_workspace("cancel")).id
    landed: list[int] = []
    started = asyncio.Event()
    go_on = asyncio.Event()

    async def add(writer: LedgerWriter, n: int, wait: bool = False) -> int:
        if wait:
            started.set()
            await go_on.wait()
        entry = await writer.append(Draft(workspace_id=ws, kind="credit", amount_nano=n))
        return entry.amount_nano

    gate, blocked = await _hold(ledger, ws)
    dropped = asyncio.ensure_future(ledger.transact(ws, lambda w: add(w, 1)))
    kept = asyncio.ensure_future(ledger.transact(ws, lambda w: add(w, 2), abandoned=landed.append))
    await asyncio.sleep(0.05)
    dropped.cancel()
    kept.cancel()
    gate.set()
    await blocked
    await asyncio.sleep(0.1)
    assert landed == [2]

    running = asyncio.ensure_future(
        ledger.transact(ws, lambda w: add(w, 4, wait=True), abandoned=landed.append)
    )
    await started.wait()
    running.cancel()
    go_on.set()
    await asyncio.sleep(0.1)
    assert landed == [2, 4]
    assert await ledger.balance(ws) == Balance(6, 0)
    assert (await verify_ledger(engine)).ok
