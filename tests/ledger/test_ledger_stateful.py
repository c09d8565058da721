"""A Hypothesis state machine over a real SQLite ledger, checked against a plain Python model.

Two workspaces, three keys (two in the first workspace).  Rules credit (with
and without idempotency keys, and negative adjustments), reserve (refused
exactly when the model's available is short), settle, release, retry a
settlement of a closed reservation (refused by the database), and crash: the
reservations owned by a dead process are released by `Recovery.reap()` while
the live process's are left alone.  After every step the database, the model,
the sum of the entries and `verify_ledger` must agree.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from tests.dbs import drop_database, new_database_url
from tollway.accounts import AccountStore
from tollway.billing.credits import credit
from tollway.billing.recovery import Recovery
from tollway.db import create_engine, upgrade
from tollway.db.schema import ledger_entries
from tollway.errors import Conflict, InsufficientCredit
from tollway.ledger import Draft, Ledger
from tollway.ledger.verify import verify_ledger

from .conftest import release, reserve, settle

WORKSPACES = ("a", "b")
KEYS = (("a", "a1"), ("a", "a2"), ("b", "b1"))  # (workspace, key)
IDEMPOTENCY_KEYS = ("pay_1", "pay_2", "pay_3")


@dataclass
class Reservation:
    workspace: str
    key: str
    hold: int
    owner: str


@dataclass
class Model:
    balance: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WORKSPACES, 0))
    open: dict[str, Reservation] = field(default_factory=dict)
    closed: dict[str, Reservation] = field(default_factory=dict)
    spent: dict[str, int] = field(default_factory=lambda: {k: 0 for _, k in KEYS})
    credits: dict[tuple[str, str], int] = field(default_factory=dict)  # (ws, idempotency key) -> amount

    def held(self, ws: str) -> int:
        return sum(r.hold for r in self.open.values() if r.workspace == ws)

    def key_held(self, key: str) -> int:
        return sum(r.hold for r in self.open.values() if r.key == key)

    def available(self, ws: str) -> int:
        return self.balance[ws] - self.held(ws)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = Path(tempfile.mkdtemp(prefix="tollway-ledger-sm-"))
        self.url = new_database_url(self.folder)
        self.engine = create_engine(self.url)
        self.ledger = Ledger(self.engine)
        self.model = Model()
        self.counter = 0
        self.reaper = Recovery(self.engine, self.ledger, heartbeat=1.0, dead_after=1e-6, interval=1.0)
        self.victim = Recovery(
            self.engine, self.ledger, heartbeat=1.0, dead_after=1e-6, interval=1.0, host="another-host/test"
        )
        self.ws: dict[str, str] = {}
        self.keys: dict[str, str] = {}
        self.run(self._setup())

    async def _setup(self) -> None:
        await upgrade(self.engine)
        accounts = AccountStore(self.engine)
        for name in WORKSPACES:
            self.ws[name] = (await accounts.create_workspace(name)).id
        for ws, key in KEYS:
            self.keys[key] = (await accounts.create_key(self.ws[ws], key, None, "total")).key.id
        await self.reaper.register()
        await self.victim.register()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            self.run(self.engine.dispose())
            drop_database(self.url)
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()
            shutil.rmtree(self.folder, ignore_errors=True)

    def _rid(self) -> str:
        self.counter += 1
        return f"req_{self.counter}"

    # -- rules ---------------------------------------------------------------------------------

    @initialize(a=st.integers(10**9, 10**10), b=st.integers(10**9, 10**10))
    def opening_credits(self, a: int, b: int) -> None:
        self._credit("a", a, None, None)
        self._credit("b", b, None, None)

    @rule(
        ws=st.sampled_from(WORKSPACES),
        amount=st.integers(1, 10**10),
        idem=st.none() | st.sampled_from(IDEMPOTENCY_KEYS),
    )
    def credit(self, ws: str, amount: int, idem: str | None) -> None:
        self._credit(ws, amount, idem, None)

    @rule(
        ws=st.sampled_from(WORKSPACES),
        amount=st.integers(-(2 * 10**9), -1),
        idem=st.none() | st.sampled_from(IDEMPOTENCY_KEYS),
    )
    def adjust(self, ws: str, amount: int, idem: str | None) -> None:
        self._credit(ws, amount, idem, "adjustment")

    def _credit(self, ws: str, amount: int, idem: str | None, note: str | None) -> None:
        seen = self.model.credits.get((ws, idem)) if idem is not None else None
        try:
            result = self.run(credit(self.ledger, self.ws[ws], amount, idem, note))
        except Conflict as exc:
            refused = exc.code
        else:
            refused = None
        if refused is not None:
            if seen is not None:
                assert seen != amount
                assert refused == "idempotency_key_reused"
            else:
                assert amount < 0 and self.model.available(ws) + amount < 0
                assert refused == "insufficient_credit"
            return
        if seen is not None:
            assert seen == amount
            assert not result.created
            return
        assert result.created
        assert amount > 0 or self.model.available(ws) + amount >= 0
        self.model.balance[ws] += amount
        if idem is not None:
            self.model.credits[(ws, idem)] = amount

    _reserve_args = {
        "key": st.sampled_from([k for _, k in KEYS]),
        "hold": st.integers(1, 2 * 10**9),
        "edge": st.sampled_from(["as drawn", "as drawn", "all available", "one more"]),
    }

    @rule(**_reserve_args)
    def reserve_by_live(self, key: str, hold: int, edge: str) -> None:
        self._reserve(key, hold, edge, self.reaper.instance_id)

    @rule(**_reserve_args)
    def reserve_by_victim(self, key: str, hold: int, edge: str) -> None:
        self._reserve(key, hold, edge, self.victim.instance_id)

    def _reserve(self, key: str, hold: int, edge: str, owner: str) -> None:
        ws = next(w for w, k in KEYS if k == key)
        if edge != "as drawn" and self.model.available(ws) > 0:
            hold = self.model.available(ws) + (edge == "one more")
        rid = self._rid()
        fits = hold <= self.model.available(ws)
        try:
            entry = self.run(reserve(self.ledger, self.ws[ws], self.keys[key], rid, hold, owner))
        except InsufficientCredit:
            assert not fits
            return
        assert fits
        assert entry.held_nano == self.model.held(ws) + hold
        self.model.open[rid] = Reservation(ws, key, hold, owner)

    @precondition(lambda self: self.model.open)
    @rule(data=st.data())
    def settle(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(sorted(self.model.open)), label="reservation")
        r = self.model.open[rid]
        cost = data.draw(st.integers(0, r.hold) | st.just(r.hold), label="cost")
        entry = self.run(settle(self.ledger, self.ws[r.workspace], self.keys[r.key], rid, r.hold, cost))
        assert entry.key_spent_nano == self.model.spent[r.key] + cost
        self.model.balance[r.workspace] -= cost
        self.model.spent[r.key] += cost
        self.model.closed[rid] = self.model.open.pop(rid)

    @precondition(lambda self: self.model.open)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(sorted(self.model.open)), label="reservation")
        r = self.model.open[rid]
        self.run(release(self.ledger, self.ws[r.workspace], self.keys[r.key], rid, r.hold))
        self.model.closed[rid] = self.model.open.pop(rid)

    @precondition(lambda self: self.model.open)
    @rule()
    def crash(self) -> None:
        """The victim process dies: a live process reaps it, then a fresh victim takes its place."""
        dead = self.victim.instance_id
        orphans = {rid for rid, r in self.model.open.items() if r.owner == dead}
        released = self.run(self.reaper.reap())
        assert released == len(orphans)
        for rid in orphans:
            self.model.closed[rid] = self.model.open.pop(rid)
        # Nothing of the live process (the reaper) was touched; reaping again finds nothing.
        assert self.run(self.reaper.reap()) == 0
        self.victim = Recovery(
            self.engine, self.ledger, heartbeat=1.0, dead_after=1e-6, interval=1.0, host="another-host/test"
        )
        self.run(self.victim.register())

    @precondition(lambda self: self.model.closed)
    @rule(data=st.data(), how=st.sampled_from(["debit", "release", "settle"]))
    def close_again(self, data: st.DataObject, how: str) -> None:
        """Settling or releasing a closed reservation is refused by the database and changes nothing."""
        rid = data.draw(st.sampled_from(sorted(self.model.closed)), label="closed reservation")
        r = self.model.closed[rid]
        ws, key = self.ws[r.workspace], self.keys[r.key]
        before = self.run(self.ledger.balance(ws)), self.run(self.ledger.usage_record(rid))
        if how == "debit":  # the debit entry alone: only the unique index can refuse it
            attempt = self._append(
                Draft(
                    workspace_id=ws,
                    kind="debit",
                    amount_nano=-1,
                    hold_nano=-r.hold,
                    key_id=key,
                    reservation_id=rid,
                )
            )
        elif how == "release":
            attempt = release(self.ledger, ws, key, rid, r.hold)
        else:  # as the biller settles: usage record and debit in one transaction
            attempt = settle(self.ledger, ws, key, rid, r.hold, 1)
        with pytest.raises(IntegrityError) as refused:
            self.run(attempt)
        if how != "settle":
            # SQLite names the column, PostgreSQL the index
            assert any(
                m in str(refused.value) for m in ("ledger_entries.reservation_id", "ux_ledger_settlement")
            )
        assert (self.run(self.ledger.balance(ws)), self.run(self.ledger.usage_record(rid))) == before

    async def _append(self, draft: Draft) -> None:
        async with self.ledger.write(draft.workspace_id) as writer:
            await writer.append(draft)

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def figures_agree(self) -> None:
        self.run(self._check())

    async def _check(self) -> None:
        async with self.engine.connect() as conn:
            sums = {
                ws: (amount, hold)
                for ws, amount, hold in (
                    await conn.execute(
                        select(
                            ledger_entries.c.workspace_id,
                            func.sum(ledger_entries.c.amount_nano),
                            func.sum(ledger_entries.c.hold_nano),
                        ).group_by(ledger_entries.c.workspace_id)
                    )
                ).all()
            }
        for name, ws in self.ws.items():
            balance = await self.ledger.balance(ws)
            assert balance.balance_nano == self.model.balance[name]
            assert balance.held_nano == self.model.held(name)
            assert balance.available_nano >= 0
            assert sums.get(ws, (0, 0)) == (balance.balance_nano, balance.held_nano)
        for ws_name, key in KEYS:
            async with self.ledger.write(self.ws[ws_name]) as writer:
                head = await writer.key_head(self.keys[key])
            assert (head.spent_nano, head.held_nano) == (self.model.spent[key], self.model.key_held(key))
        report = await verify_ledger(self.engine)
        assert report.ok, report.mismatches
        assert report.open_reservations == len(self.model.open)


LedgerMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=20, deadline=None)
TestLedgerMachine = LedgerMachine.TestCase
