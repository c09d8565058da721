"""`tollway ledger verify`: recompute every derived figure from the immutable rows.

Checks, per workspace in append order: the sequence has no gap or
duplicate; each entry's running balance, held amount and key totals equal
what its predecessors imply; each hash links to the previous entry and
matches the entry's own fields.  Across the ledger: every settlement closes
a reservation that exists, at most once, for the amount it held; every debit
has its usage record with the same cost and every usage record its debit;
the daily usage rollup equals the sums of the records.
"""

from __future__ import annotations

from typing import Any

from msgspec import Struct
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tollway.db.schema import ledger_entries, usage_daily, usage_records
from tollway.ledger.chain import Draft, Entry, Head, KeyHead, chain
from tollway.ledger.rollup import KEY as ROLLUP_KEY
from tollway.ledger.rollup import SUMMED, US_PER_DAY
from tollway.ledger.store import entry_from_row

__all__ = ["Report", "recomputed_rollup", "verify_ledger"]

_COMPARED = ("ws_seq", "balance_nano", "held_nano", "key_spent_nano", "key_held_nano", "prev_hash", "hash")


class Report(Struct):
    workspaces: int = 0
    entries: int = 0
    usage_records: int = 0
    open_reservations: int = 0
    mismatches: list[str] = []

    @property
    def ok(self) -> bool:
        return not self.mismatches


def _where(entry: Entry) -> str:
    return f"workspace {entry.workspace_id} entry #{entry.ws_seq} (id {entry.id}, {entry.kind})"


def _draft(entry: Entry) -> Draft:
    return Draft(
        workspace_id=entry.workspace_id,
        kind=entry.kind,  # type: ignore[arg-type]
        amount_nano=entry.amount_nano,
        hold_nano=entry.hold_nano,
        key_id=entry.key_id,
        reservation_id=entry.reservation_id,
        owner=entry.owner,
        idempotency_key=entry.idempotency_key,
        note=entry.note,
        created_at=entry.created_at,
    )


class _Walk:
    def __init__(self, report: Report) -> None:
        self.report = report
        self.workspace: str | None = None
        self.head = Head()
        self.keys: dict[str, KeyHead] = {}
        self.reserves: dict[str, Entry] = {}
        self.closings: dict[str, Entry] = {}
        self.debits: dict[str, Entry] = {}

    def entry(self, entry: Entry) -> None:
        report = self.report
        report.entries += 1
        if entry.workspace_id != self.workspace:
            self.workspace, self.head = entry.workspace_id, Head()
            report.workspaces += 1
        key_head = self.keys.get(entry.key_id) if entry.key_id else None
        expected = chain(self.head, key_head, _draft(entry))
        for name in _COMPARED:
            stored, wanted = getattr(entry, name), getattr(expected, name)
            if stored != wanted:
                report.mismatches.append(f"{_where(entry)}: {name} is {stored!r}, recomputed {wanted!r}")
        # Carry on from the stored figures, so one bad row is reported once, not on every later row.
        self.head = entry.head()
        if entry.key_id:
            self.keys[entry.key_id] = entry.key_head()
        self._reservation(entry)

    def _reservation(self, entry: Entry) -> None:
        rid = entry.reservation_id
        if entry.kind in ("credit", "adjustment"):
            if rid is not None or entry.hold_nano != 0 or entry.key_id is not None:
                self.report.mismatches.append(
                    f"{_where(entry)}: a credit must not touch reservations or keys"
                )
            return
        if rid is None:
            self.report.mismatches.append(f"{_where(entry)}: no reservation id")
            return
        if entry.kind == "reserve":
            if rid in self.reserves:
                self.report.mismatches.append(f"{_where(entry)}: reservation {rid} reserved twice")
            if entry.hold_nano <= 0 or entry.amount_nano != 0:
                self.report.mismatches.append(f"{_where(entry)}: a reserve must hold a positive amount only")
            self.reserves[rid] = entry
            return
        if rid in self.closings:
            self.report.mismatches.append(f"{_where(entry)}: reservation {rid} settled twice")
        self.closings[rid] = entry
        reserve = self.reserves.get(rid)
        if reserve is None:
            self.report.mismatches.append(f"{_where(entry)}: closes reservation {rid}, which was never made")
        elif entry.hold_nano != -reserve.hold_nano or entry.key_id != reserve.key_id:
            self.report.mismatches.append(
                f"{_where(entry)}: releases {-entry.hold_nano} of reservation {rid}, "
                f"which held {reserve.hold_nano}"
            )
        if entry.kind == "debit":
            self.debits[rid] = entry
        elif entry.amount_nano != 0:
            self.report.mismatches.append(f"{_where(entry)}: a release must not move the balance")


def recomputed_rollup() -> Select[Any]:
    """The daily rollup as the usage records imply it."""
    u = usage_records.c
    day = u.finished_at.op("/")(US_PER_DAY)
    return select(
        u.workspace_id,
        day.label("day"),
        u.operation_type,
        u.model,
        u.key_id,
        func.count().label("calls"),
        *(func.sum(u[name]).label(name) for name in SUMMED[1:]),
    ).group_by(u.workspace_id, day, u.operation_type, u.model, u.key_id)


async def _check_rollup(conn: AsyncConnection, report: Report) -> None:
    keys = len(ROLLUP_KEY)
    expected = {
        tuple(row[:keys]): tuple(row[keys:]) for row in (await conn.execute(recomputed_rollup())).all()
    }
    d = usage_daily.c
    stored = (await conn.execute(select(*(d[n] for n in ROLLUP_KEY), *(d[n] for n in SUMMED)))).all()
    for row in stored:
        group, sums = tuple(row[:keys]), tuple(row[keys:])
        wanted = expected.pop(group, None)
        if wanted != sums:
            report.mismatches.append(
                f"usage rollup {group[0]} day {group[1]} {group[2]} model {group[3]} key {group[4]}: "
                f"stored {dict(zip(SUMMED, sums, strict=True))}, records give "
                f"{None if wanted is None else dict(zip(SUMMED, wanted, strict=True))}"
            )
    for group in expected:
        report.mismatches.append(
            f"usage rollup {group[0]} day {group[1]} {group[2]} model {group[3]} key {group[4]}: missing"
        )


async def verify_ledger(engine: AsyncEngine) -> Report:
    report = Report(mismatches=[])
    walk = _Walk(report)
    query = select(ledger_entries).order_by(ledger_entries.c.workspace_id, ledger_entries.c.ws_seq)
    async with engine.connect() as conn:
        result = await conn.stream(query)
        async for row in result.mappings():
            walk.entry(entry_from_row(row))
        usage = await conn.stream(
            select(usage_records.c.id, usage_records.c.workspace_id, usage_records.c.cost_nano)
        )
        async for request_id, workspace_id, cost in usage:
            report.usage_records += 1
            debit = walk.debits.pop(request_id, None)
            if debit is None:
                report.mismatches.append(f"usage record {request_id}: no debit in the ledger")
            elif debit.amount_nano != -cost or debit.workspace_id != workspace_id:
                report.mismatches.append(
                    f"usage record {request_id}: costs {cost} nano-USD but {_where(debit)} debits "
                    f"{-debit.amount_nano}"
                )
        await _check_rollup(conn, report)
    for request_id, debit in walk.debits.items():
        report.mismatches.append(f"{_where(debit)}: debit for {request_id} has no usage record")
    report.open_reservations = len(set(walk.reserves) - set(walk.closings))
    return report
