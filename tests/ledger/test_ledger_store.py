"""The ledger store over a real SQLite file: running figures, paging, key totals, hash links,
what the database itself refuses, and crediting through `credit()`."""

from __future__ import annotations

import asyncio
import itertools
import threading

import msgspec
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.dbs import is_postgres
from tollway.accounts import AccountStore
from tollway.billing.credits import credit
from tollway.billing.recovery import Recovery
from tollway.errors import Conflict, InsufficientCredit, InvalidRequest
from tollway.ledger import GENESIS, Balance, Draft, Entry, Head, KeyHead, Ledger, LedgerWriter, chain
from tollway.ledger.chain import entry_hash

from .conftest import release, reserve, settle

# Processes "on another machine": only their heartbeat says whether they live.
ELSEWHERE = "another-host/test"

# SQLite names the column in a unique violation, PostgreSQL the index.
UNIQUE_RESERVATION = r"ledger_entries\.reservation_id|ux_ledger_reserve|ux_ledger_settlement"

USD = 1_000_000_000  # nano-USD


async def _workspace(accounts: AccountStore, name: str = "acme") -> tuple[str, str, str]:
    ws = (await accounts.create_workspace(name)).id
    k1 = (await accounts.create_key(ws, "one", None, "total")).key.id
    k2 = (await accounts.create_key(ws, "two", None, "total")).key.id
    return ws, k1, k2


async def _all_entries(ledger: Ledger, ws: str) -> list[Entry]:
    """Oldest first."""
    return list(reversed(await ledger.entries(ws, limit=10_000)))


async def _key_head(ledger: Ledger, ws: str, key_id: str) -> KeyHead:
    async with ledger.write(ws) as writer:
        return await writer.key_head(key_id)


async def _key_spent_before(ledger: Ledger, ws: str, key_id: str, before_us: int) -> int:
    async with ledger.write(ws) as writer:
        return await writer.key_spent_before(key_id, before_us)


# -- running figures ---------------------------------------------------------------------------


async def test_empty_workspace_has_zero_balance(ledger: Ledger, accounts: AccountStore) -> None:
    ws, _, _ = await _workspace(accounts)
    assert await ledger.balance(ws) == Balance(0, 0)
    assert await ledger.entries(ws, limit=10) == []
    async with ledger.write(ws) as writer:
        head = await writer.head()
    assert (head.ws_seq, head.balance_nano, head.held_nano, head.hash) == (0, 0, 0, GENESIS)


async def test_running_balance_and_held(ledger: Ledger, accounts: AccountStore) -> None:
    ws, k1, k2 = await _workspace(accounts)
    first = (await credit(ledger, ws, 10 * USD, "c1", None)).entry
    assert (first.kind, first.ws_seq, first.balance_nano, first.held_nano) == ("credit", 1, 10 * USD, 0)

    r1 = await reserve(ledger, ws, k1, "req_1", 3 * USD, owner="inst_a")
    assert (r1.ws_seq, r1.amount_nano, r1.balance_nano, r1.held_nano) == (2, 0, 10 * USD, 3 * USD)
    r2 = await reserve(ledger, ws, k2, "req_2", 2 * USD)
    assert (r2.balance_nano, r2.held_nano) == (10 * USD, 5 * USD)
    assert (await ledger.balance(ws)).available_nano == 5 * USD

    debit = await settle(ledger, ws, k1, "req_1", 3 * USD, 1 * USD)
    assert (debit.kind, debit.amount_nano, debit.hold_nano) == ("debit", -1 * USD, -3 * USD)
    assert (debit.balance_nano, debit.held_nano) == (9 * USD, 2 * USD)

    rel = await release(ledger, ws, k2, "req_2", 2 * USD)
    assert (rel.kind, rel.amount_nano, rel.balance_nano, rel.held_nano) == ("release", 0, 9 * USD, 0)

    assert await ledger.balance(ws) == Balance(9 * USD, 0)
    entries = await _all_entries(ledger, ws)
    assert [e.ws_seq for e in entries] == [1, 2, 3, 4, 5]
    assert [e.kind for e in entries] == ["credit", "reserve", "reserve", "debit", "release"]
    assert sum(e.amount_nano for e in entries) == 9 * USD
    assert sum(e.hold_nano for e in entries) == 0
    # What append returned is what was stored.
    assert entries == [first, r1, r2, debit, rel]

    record = await ledger.usage_record("req_1")
    assert record is not None
    assert (record.workspace_id, record.key_id, record.cost_nano) == (ws, k1, 1 * USD)
    assert await ledger.usage_record("req_2") is None


async def test_reserve_refused_beyond_available(ledger: Ledger, accounts: AccountStore) -> None:
    ws, k1, _ = await _workspace(accounts)
    await credit(ledger, ws, 5 * USD, None, None)
    await reserve(ledger, ws, k1, "req_1", 4 * USD)
    with pytest.raises(InsufficientCredit):
        await reserve(ledger, ws, k1, "req_2", 1 * USD + 1)
    await reserve(ledger, ws, k1, "req_3", 1 * USD)  # exactly what is available
    assert await ledger.balance(ws) == Balance(5 * USD, 5 * USD)
    assert len(await ledger.entries(ws, limit=100)) == 3


async def test_workspaces_are_separate(ledger: Ledger, accounts: AccountStore) -> None:
    a, _, _ = await _workspace(accounts, "a")
    b, _, _ = await _workspace(accounts, "b")
    await credit(ledger, a, 7, None, None)
    await credit(ledger, b, 11, None, None)
    await credit(ledger, a, 1, None, None)
    assert await ledger.balance(a) == Balance(8, 0)
    assert await ledger.balance(b) == Balance(11, 0)
    assert [e.ws_seq for e in await ledger.entries(b, limit=10)] == [1]
    (b1,) = await ledger.entries(b, limit=10)
    assert b1.prev_hash == GENESIS


# -- reading: newest first, paging -------------------------------------------------------------


async def test_entries_newest_first_with_paging(ledger: Ledger, accounts: AccountStore) -> None:
    ws, _, _ = await _workspace(accounts)
    other, _, _ = await _workspace(accounts, "other")
    for i in range(1, 8):
        await credit(ledger, ws, i, None, None)
    await credit(ledger, other, 100, None, None)

    page = await ledger.entries(ws, limit=3)
    assert [e.ws_seq for e in page] == [7, 6, 5]
    assert [e.amount_nano for e in page] == [7, 6, 5]
    page = await ledger.entries(ws, limit=3, before_seq=page[-1].ws_seq)
    assert [e.ws_seq for e in page] == [4, 3, 2]
    page = await ledger.entries(ws, limit=3, before_seq=page[-1].ws_seq)
    assert [e.ws_seq for e in page] == [1]
    assert await ledger.entries(ws, limit=3, before_seq=1) == []
    assert [e.ws_seq for e in await ledger.entries(ws, limit=100, before_seq=100)] == list(range(7, 0, -1))
    assert all(e.workspace_id == ws for e in await ledger.entries(ws, limit=100))


async def test_an_appended_entry_carries_its_rows_id(ledger: Ledger, accounts: AccountStore) -> None:
    """`append` answers the id the database gave the row: through `transact` (SQLite: the ledger
    thread's rowid, no RETURNING; PostgreSQL: RETURNING) and through `write` (SQLAlchemy's driver)."""
    ws, k1, _ = await _workspace(accounts)
    other, _, _ = await _workspace(accounts, "other")

    async def appended(workspace_id: str, amount: int) -> Entry:
        async def work(writer: LedgerWriter) -> Entry:
            return await writer.append(Draft(workspace_id=workspace_id, kind="credit", amount_nano=amount))

        return await ledger.transact(workspace_id, work)

    answered = [
        await appended(ws, 5),
        await appended(other, 6),
        await reserve(ledger, ws, k1, "req_ids", 2),
        await appended(ws, 7),
        await settle(ledger, ws, k1, "req_ids", 2, 1),
    ]
    stored = {(e.workspace_id, e.ws_seq): e for e in await ledger.entries(ws, limit=10)}
    stored |= {(e.workspace_id, e.ws_seq): e for e in await ledger.entries(other, limit=10)}
    assert [stored[e.workspace_id, e.ws_seq] for e in answered] == answered
    ids = [e.id for e in answered]
    assert ids == sorted(ids) and len(set(ids)) == 5


# -- key totals --------------------------------------------------------------------------------


async def test_key_totals(ledger: Ledger, accounts: AccountStore) -> None:
    ws, k1, k2 = await _workspace(accounts)
    assert await _key_head(ledger, ws, k1) == KeyHead(0, 0)
    c = (await credit(ledger, ws, 100, None, None)).entry
    assert (c.key_id, c.key_spent_nano, c.key_held_nano) == (None, None, None)

    e = await reserve(ledger, ws, k1, "r1", 30)
    assert (e.key_spent_nano, e.key_held_nano) == (0, 30)
    e = await reserve(ledger, ws, k1, "r2", 20)
    assert (e.key_spent_nano, e.key_held_nano) == (0, 50)
    e = await reserve(ledger, ws, k2, "r3", 10)
    assert (e.key_spent_nano, e.key_held_nano) == (0, 10)  # k2 has its own totals

    e = await settle(ledger, ws, k1, "r1", 30, 12)
    assert (e.key_spent_nano, e.key_held_nano) == (12, 20)  # a debit counts as spending
    e = await release(ledger, ws, k1, "r2", 20)
    assert (e.key_spent_nano, e.key_held_nano) == (12, 0)  # a release does not
    e = await settle(ledger, ws, k2, "r3", 10, 0)
    assert (e.key_spent_nano, e.key_held_nano) == (0, 0)  # a zero-cost debit spends nothing

    # A credit or adjustment in between carries no key and leaves key totals alone.
    await credit(ledger, ws, -5, None, "refund")
    e = await reserve(ledger, ws, k1, "r4", 40)
    assert (e.key_spent_nano, e.key_held_nano) == (12, 40)
    e = await settle(ledger, ws, k1, "r4", 40, 40)
    assert (e.key_spent_nano, e.key_held_nano) == (52, 0)

    assert await _key_head(ledger, ws, k1) == KeyHead(52, 0)
    assert await _key_head(ledger, ws, k2) == KeyHead(0, 0)
    assert await ledger.balance(ws) == Balance(100 - 12 - 5 - 40, 0)


async def test_key_spent_before(ledger: Ledger, accounts: AccountStore) -> None:
    ws, k1, k2 = await _workspace(accounts)
    await credit(ledger, ws, 1000, None, None)
    e_res1 = await reserve(ledger, ws, k1, "r1", 100)
    e_deb1 = await settle(ledger, ws, k1, "r1", 100, 60)
    e_res2 = await reserve(ledger, ws, k1, "r2", 100)
    e_deb2 = await settle(ledger, ws, k1, "r2", 100, 25)
    times = [e.created_at for e in (e_res1, e_deb1, e_res2, e_deb2)]
    assert times == sorted(times) and len(set(times)) == 4

    assert await _key_spent_before(ledger, ws, k1, e_res1.created_at) == 0  # no entry yet
    assert await _key_spent_before(ledger, ws, k1, e_deb1.created_at) == 0
    assert await _key_spent_before(ledger, ws, k1, e_deb1.created_at + 1) == 60
    assert await _key_spent_before(ledger, ws, k1, e_deb2.created_at) == 60
    assert await _key_spent_before(ledger, ws, k1, e_deb2.created_at + 1) == 85
    assert await _key_spent_before(ledger, ws, k1, 2**62) == 85
    assert await _key_spent_before(ledger, ws, k2, 2**62) == 0  # a key with no entries


async def test_key_spent_before_is_the_latest_debits_figure_whatever_follows_it(
    ledger: Ledger, accounts: AccountStore
) -> None:
    """Reservations and releases carry the spend of the debit before them, so reading debits alone
    (migration 0011's partial index) gives the figure any latest entry would."""
    ws, k1, _ = await _workspace(accounts)
    await credit(ledger, ws, 1000, None, None)
    await reserve(ledger, ws, k1, "r1", 100)
    e_deb1 = await settle(ledger, ws, k1, "r1", 100, 40)
    e_res2 = await reserve(ledger, ws, k1, "r2", 100)
    e_rel2 = await release(ledger, ws, k1, "r2", 100)
    e_res3 = await reserve(ledger, ws, k1, "r3", 100)
    assert (e_res2.key_spent_nano, e_rel2.key_spent_nano, e_res3.key_spent_nano) == (40, 40, 40)

    for moment in (e_deb1.created_at + 1, e_res2.created_at + 1, e_rel2.created_at + 1, 2**62):
        assert await _key_spent_before(ledger, ws, k1, moment) == 40
    assert await _key_spent_before(ledger, ws, k1, e_deb1.created_at) == 0


# -- hash links --------------------------------------------------------------------------------


async def test_hash_chain(ledger: Ledger, accounts: AccountStore) -> None:
    ws, k1, _ = await _workspace(accounts)
    other, k_other, _ = await _workspace(accounts, "other")
    await credit(ledger, ws, 100, "c1", "first")
    await credit(ledger, other, 100, None, None)
    await reserve(ledger, ws, k1, "r1", 50, owner="inst_x")
    await reserve(ledger, other, k_other, "r2", 50)
    await settle(ledger, ws, k1, "r1", 50, 10)
    await credit(ledger, ws, -1, None, "fix")
    for workspace in (ws, other):
        entries = await _all_entries(ledger, workspace)
        assert entries[0].prev_hash == GENESIS
        for prev, entry in itertools.pairwise(entries):
            assert entry.prev_hash == prev.hash
        for entry in entries:
            assert entry.hash == entry_hash(entry)
            assert len(entry.hash) == 64
        assert len({e.hash for e in entries}) == len(entries)
    async with ledger.write(ws) as writer:
        assert (await writer.head()).hash == (await _all_entries(ledger, ws))[-1].hash


# -- what the database refuses -----------------------------------------------------------------


def _append_only(exc: BaseException) -> bool:
    return isinstance(exc, IntegrityError | DBAPIError) and "append-only" in str(exc)


async def _some_money(ledger: Ledger, accounts: AccountStore) -> str:
    ws, k1, _ = await _workspace(accounts)
    await credit(ledger, ws, 100, None, None)
    await reserve(ledger, ws, k1, "req_1", 50)
    await settle(ledger, ws, k1, "req_1", 50, 20)
    return ws


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET amount_nano = amount_nano + 1",
        "UPDATE ledger_entries SET note = 'edited' WHERE ws_seq = 1",
        "DELETE FROM ledger_entries",
        "DELETE FROM ledger_entries WHERE kind = 'debit'",
        "UPDATE usage_records SET cost_nano = 0",
        "DELETE FROM usage_records",
    ],
)
async def test_money_tables_are_append_only(
    engine: AsyncEngine, ledger: Ledger, accounts: AccountStore, statement: str
) -> None:
    ws = await _some_money(ledger, accounts)
    before = await _all_entries(ledger, ws)
    record = await ledger.usage_record("req_1")
    with pytest.raises(DBAPIError) as excinfo:
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    assert _append_only(excinfo.value), excinfo.value
    assert await _all_entries(ledger, ws) == before
    assert await ledger.usage_record("req_1") == record


async def test_second_settlement_refused(ledger: Ledger, accounts: AccountStore) -> None:
    ws, k1, _ = await _workspace(accounts)
    await credit(ledger, ws, 100, None, None)
    await reserve(ledger, ws, k1, "req_1", 50)
    await settle(ledger, ws, k1, "req_1", 50, 20)
    before = await ledger.balance(ws)
    again = [
        Draft(
            workspace_id=ws, kind="debit", amount_nano=-20, hold_nano=-50, key_id=k1, reservation_id="req_1"
        ),
        Draft(workspace_id=ws, kind="release", hold_nano=-50, key_id=k1, reservation_id="req_1"),
    ]
    for draft in again:
        with pytest.raises(IntegrityError, match=UNIQUE_RESERVATION):
            async with ledger.write(ws) as writer:
                await writer.append(draft)
    # Also through the settle path (whose usage record is refused first: same request id).
    with pytest.raises(IntegrityError):
        await settle(ledger, ws, k1, "req_1", 50, 20)
    assert await ledger.balance(ws) == before
    assert len(await ledger.entries(ws, limit=100)) == 3


async def test_release_then_debit_refused(ledger: Ledger, accounts: AccountStore) -> None:
    ws, k1, _ = await _workspace(accounts)
    await credit(ledger, ws, 100, None, None)
    await reserve(ledger, ws, k1, "req_1", 50)
    await release(ledger, ws, k1, "req_1", 50)
    with pytest.raises(IntegrityError, match=UNIQUE_RESERVATION):
        await settle(ledger, ws, k1, "req_1", 50, 20)
    with pytest.raises(IntegrityError, match=UNIQUE_RESERVATION):
        await release(ledger, ws, k1, "req_1", 50)
    # The refused settle took its usage record down with it.
    assert await ledger.usage_record("req_1") is None
    assert await ledger.balance(ws) == Balance(100, 0)


async def test_second_reserve_same_id_refused(ledger: Ledger, accounts: AccountStore) -> None:
    ws, k1, k2 = await _workspace(accounts)
    await credit(ledger, ws, 100, None, None)
    await reserve(ledger, ws, k1, "req_1", 10)
    with pytest.raises(IntegrityError, match=UNIQUE_RESERVATION):
        await reserve(ledger, ws, k2, "req_1", 20)
    assert await ledger.balance(ws) == Balance(100, 10)


async def test_idempotency_key_unique_per_workspace(ledger: Ledger, accounts: AccountStore) -> None:
    ws, _, _ = await _workspace(accounts)
    other, _, _ = await _workspace(accounts, "other")

    async def raw_credit(workspace: str, amount: int) -> Entry:
        async with ledger.write(workspace) as writer:
            return await writer.append(
                Draft(workspace_id=workspace, kind="credit", amount_nano=amount, idempotency_key="pay_1")
            )

    await raw_credit(ws, 5)
    with pytest.raises(IntegrityError, match=r"idempotency_key|ux_ledger_idempotency"):
        await raw_credit(ws, 5)
    with pytest.raises(IntegrityError, match=r"idempotency_key|ux_ledger_idempotency"):
        await raw_credit(ws, 6)
    await raw_credit(other, 5)  # the same key in another workspace is another payment
    assert await ledger.balance(ws) == Balance(5, 0)
    assert await ledger.balance(other) == Balance(5, 0)


# -- credit() ----------------------------------------------------------------------------------


async def test_credit_replay_is_idempotent(ledger: Ledger, accounts: AccountStore) -> None:
    ws, _, _ = await _workspace(accounts)
    first = await credit(ledger, ws, 5 * USD, "pay_1", "invoice 1")
    assert first.created
    assert first.entry_balance == Balance(5 * USD, 0)
    await credit(ledger, ws, 1 * USD, "pay_2", None)

    replay = await credit(ledger, ws, 5 * USD, "pay_1", "invoice 1")
    assert not replay.created
    assert replay.entry == first.entry
    assert replay.entry_balance == Balance(5 * USD, 0)  # the figures right after the first credit
    assert await ledger.balance(ws) == Balance(6 * USD, 0)
    assert len(await ledger.entries(ws, limit=100)) == 2

    # Without a key every call credits.
    await credit(ledger, ws, 1, None, None)
    await credit(ledger, ws, 1, None, None)
    assert await ledger.balance(ws) == Balance(6 * USD + 2, 0)


async def test_credit_key_reused_for_other_amount(ledger: Ledger, accounts: AccountStore) -> None:
    ws, _, _ = await _workspace(accounts)
    await credit(ledger, ws, 5 * USD, "pay_1", None)
    with pytest.raises(Conflict) as excinfo:
        await credit(ledger, ws, 6 * USD, "pay_1", None)
    assert excinfo.value.code == "idempotency_key_reused"
    assert excinfo.value.status == 409
    assert await ledger.balance(ws) == Balance(5 * USD, 0)


async def test_credit_rejects_zero_and_unexplained_negative(ledger: Ledger, accounts: AccountStore) -> None:
    ws, _, _ = await _workspace(accounts)
    await credit(ledger, ws, 5 * USD, None, None)
    with pytest.raises(InvalidRequest) as zero:
        await credit(ledger, ws, 0, None, None)
    assert zero.value.param == "amount_usd"
    for note in (None, "", "   "):
        with pytest.raises(InvalidRequest) as negative:
            await credit(ledger, ws, -1, None, note)
        assert negative.value.param == "note"
    assert await ledger.balance(ws) == Balance(5 * USD, 0)
    assert len(await ledger.entries(ws, limit=100)) == 1


async def test_negative_adjustment(ledger: Ledger, accounts: AccountStore) -> None:
    ws, k1, _ = await _workspace(accounts)
    await credit(ledger, ws, 10 * USD, None, None)
    await reserve(ledger, ws, k1, "req_1", 4 * USD)
    # Available is 6: taking 6 + 1 nano would leave it negative, even though the balance is 10.
    with pytest.raises(Conflict) as excinfo:
        await credit(ledger, ws, -6 * USD - 1, None, "refund")
    assert excinfo.value.code == "insufficient_credit"
    assert await ledger.balance(ws) == Balance(10 * USD, 4 * USD)

    result = await credit(ledger, ws, -6 * USD, "refund_1", "refund")
    assert result.created
    assert (result.entry.kind, result.entry.amount_nano, result.entry.note) == (
        "adjustment",
        -6 * USD,
        "refund",
    )
    assert await ledger.balance(ws) == Balance(4 * USD, 4 * USD)
    # Its replay is recognised (not refused as going below zero).
    replay = await credit(ledger, ws, -6 * USD, "refund_1", "refund")
    assert not replay.created and replay.entry == result.entry
    with pytest.raises(Conflict):
        await credit(ledger, ws, -1, None, "one more")
    assert await ledger.balance(ws) == Balance(4 * USD, 4 * USD)


# -- crash recovery ----------------------------------------------------------------------------


async def test_reap_releases_only_dead_processes(
    engine: AsyncEngine, ledger: Ledger, accounts: AccountStore
) -> None:
    ws, k1, k2 = await _workspace(accounts)
    await credit(ledger, ws, 100, None, None)
    reaper = Recovery(engine, ledger, heartbeat=0.05, dead_after=0.2, interval=1)
    live = Recovery(engine, ledger, heartbeat=0.05, dead_after=0.2, interval=1, host=ELSEWHERE)
    dead = Recovery(engine, ledger, heartbeat=0.05, dead_after=0.2, interval=1, host=ELSEWHERE)
    for instance in (reaper, live, dead):
        await instance.register()
    await reserve(ledger, ws, k1, "by_dead_1", 10, owner=dead.instance_id)
    await reserve(ledger, ws, k2, "by_dead_2", 20, owner=dead.instance_id)
    await reserve(ledger, ws, k1, "by_dead_settled", 5, owner=dead.instance_id)
    await settle(ledger, ws, k1, "by_dead_settled", 5, 3)
    await reserve(ledger, ws, k1, "by_live", 30, owner=live.instance_id)
    await reserve(ledger, ws, k1, "by_reaper", 15, owner=reaper.instance_id)
    await reserve(ledger, ws, k2, "by_nobody", 1)
    # Everyone is fresh: beaten just now (the reservations above may take longer than `dead_after`
    # on a busy machine, the first statements of a process compiling their SQL).
    for instance in (reaper, live, dead):
        await instance.beat()
    assert await reaper.reap() == 0

    await asyncio.sleep(0.3)
    await live.beat()
    assert await reaper.reap() == 2
    assert await reaper.reap() == 0  # the dead process is marked reaped

    entries = await _all_entries(ledger, ws)
    releases = {e.reservation_id: e for e in entries if e.kind == "release"}
    assert set(releases) == {"by_dead_1", "by_dead_2"}
    assert releases["by_dead_1"].hold_nano == -10 and releases["by_dead_1"].key_id == k1
    assert releases["by_dead_2"].hold_nano == -20 and releases["by_dead_2"].key_id == k2
    assert all(e.amount_nano == 0 for e in releases.values())
    assert await ledger.balance(ws) == Balance(97, 30 + 15 + 1)
    # The live process can still settle its reservation.
    await settle(ledger, ws, k1, "by_live", 30, 30)
    assert await ledger.balance(ws) == Balance(67, 15 + 1)


async def test_a_reaped_process_that_comes_back_is_reapable_again(
    engine: AsyncEngine, ledger: Ledger, accounts: AccountStore
) -> None:
    workspace = await accounts.create_workspace("stall")
    await credit(ledger, workspace.id, 100, None, None)
    stalled = Recovery(engine, ledger, heartbeat=1, dead_after=0.05, interval=1, host=ELSEWHERE)
    reaper = Recovery(engine, ledger, heartbeat=1, dead_after=0.05, interval=1)
    await stalled.register()
    await reaper.register()
    await asyncio.sleep(0.1)
    await reaper.beat()
    assert await reaper.reap() == 0  # the stalled process is marked reaped, holding nothing
    await stalled.beat()  # it comes back and reserves
    async with ledger.write(workspace.id) as writer:
        await writer.append(
            Draft(
                workspace_id=workspace.id,
                kind="reserve",
                hold_nano=40,
                key_id="k",
                reservation_id="req_after_stall",
                owner=stalled.instance_id,
            )
        )
    await asyncio.sleep(0.1)  # and then dies for real
    await reaper.beat()
    assert await reaper.reap() == 1
    assert await ledger.balance(workspace.id) == Balance(100, 0)


def test_hash_input_is_unambiguous() -> None:
    base = Draft(workspace_id="ws_1", kind="credit", amount_nano=5, created_at=1)
    none_note = chain(Head(), None, base)
    empty_note = chain(Head(), None, msgspec.structs.replace(base, note=""))
    assert none_note.hash != empty_note.hash
    left = chain(Head(), None, msgspec.structs.replace(base, idempotency_key="k", note="a\x1fb"))
    right = chain(Head(), None, msgspec.structs.replace(base, idempotency_key="k\x1fa", note="b"))
    assert left.hash != right.hash


async def test_on_this_machine_the_kernel_decides(
    engine: AsyncEngine, ledger: Ledger, accounts: AccountStore
) -> None:
    """A process here with a stale heartbeat but alive is not reaped; a gone one is, at once."""
    workspace = await accounts.create_workspace("kernel")
    await credit(ledger, workspace.id, 100, None, None)
    reaper = Recovery(engine, ledger, heartbeat=1, dead_after=0.01, interval=1)
    busy = Recovery(engine, ledger, heartbeat=1, dead_after=0.01, interval=1)  # this very process
    await reaper.register()
    await busy.register()
    async with ledger.write(workspace.id) as writer:
        await writer.append(
            Draft(
                workspace_id=workspace.id,
                kind="reserve",
                hold_nano=40,
                key_id="k",
                reservation_id="req_busy",
                owner=busy.instance_id,
            )
        )
    await asyncio.sleep(0.05)  # its heartbeat is stale, but it runs
    assert await reaper.reap() == 0
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()  # a pid that no longer runs
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE instances SET pid = :pid WHERE id = :id"), {"pid": gone.pid, "id": busy.instance_id}
        )
    assert await reaper.reap() == 1
    assert await ledger.balance(workspace.id) == Balance(100, 0)


async def test_sqlite_transactions_run_whole_on_the_ledger_thread(
    ledger: Ledger, accounts: AccountStore
) -> None:
    workspace = await accounts.create_workspace("thread")
    seen: list[str] = []

    async def work(writer: LedgerWriter) -> Entry:
        seen.append(threading.current_thread().name)
        return await writer.append(Draft(workspace_id=workspace.id, kind="credit", amount_nano=7))

    entry = await ledger.transact(workspace.id, work)
    assert entry.balance_nano == 7
    if is_postgres():
        assert seen == [threading.current_thread().name]  # asyncpg: on the event loop
    else:
        assert seen[0].startswith("tollway-ledger")

        async def suspends(writer: LedgerWriter) -> None:
            await asyncio.sleep(0)

        with pytest.raises(RuntimeError, match="may only await the ledger writer"):
            await ledger.transact(workspace.id, suspends)
    assert await ledger.balance(workspace.id) == Balance(7, 0)
