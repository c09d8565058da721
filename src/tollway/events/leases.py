"""The delivery rows' state machine, one tiny transaction per step.

    pending ──lease──▶ pending + lease_until ──2xx──▶ delivered
       ▲                        │
       └──── not 2xx: attempts+1, next_attempt_at = now + backoff
                                └──── attempts = max_attempts ──▶ failed

A lease is a conditional UPDATE: it takes only rows still pending, due and
unleased (or leased until a time already past), so of two processes, on one
host or two, racing for a row exactly one gets it.  The lease's end is also
its fencing token: a later lease always ends later (it is taken at a `now`
past the old end), so a process whose lease ran out, and was retaken, finds
its `WHERE lease_until = <mine>` matching nothing and cannot overwrite the
newer attempt's outcome.  Everything lives in the rows: a process killed
mid-attempt leaves a lease that simply expires.

On PostgreSQL, times come from the database's clock, one clock for every
host; on SQLite (one machine) from the host's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from msgspec import Struct
from sqlalchemy import BigInteger, ColumnElement, cast, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.clock import now_us
from tollway.db.engine import write_connection
from tollway.db.schema import event_deliveries, events

__all__ = ["DeliveryQueue", "Leased"]

_D = event_deliveries.c
_E = events.c
_ERROR_CHARS = 500  # the column's width


class Leased(Struct, frozen=True, kw_only=True):
    """A delivery this process holds the lease of, with its event."""

    id: int
    webhook: str
    attempts: int  # attempts made before this one
    lease_until: int
    event_id: str
    type: str
    created_at: int
    data: str


def _available(now: int) -> ColumnElement[bool]:
    return (
        (_D.state == "pending")
        & (_D.next_attempt_at <= now)
        & or_(_D.lease_until.is_(None), _D.lease_until < now)
    )


class DeliveryQueue:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def now(self) -> int:
        """Microseconds since the epoch by the clock every process sharing the database agrees on."""
        if self._engine.dialect.name != "postgresql":
            return now_us()
        seconds: ColumnElement[Any] = func.extract("epoch", func.clock_timestamp())
        async with self._engine.connect() as conn:
            value = (await conn.execute(select(cast(seconds * 1_000_000, BigInteger)))).scalar_one()
        return int(value)

    async def due(self, webhook: str, now: int, limit: int) -> list[int]:
        """Ids of up to `limit` of `webhook`'s deliveries that may be leased at `now`, oldest first.

        A plain read: on SQLite an idle poll never takes the write lock the ledger needs.
        """
        query = (
            select(_D.id)
            .where(_D.webhook == webhook, _available(now))
            .order_by(_D.next_attempt_at, _D.id)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    async def lease(self, ids: Sequence[int], now: int, until: int) -> list[Leased]:
        """Lease those of `ids` still available at `now`, until `until` (> now); the ones won."""
        assert until > now
        if not ids:
            return []
        taking = (
            update(event_deliveries)
            .where(_D.id.in_(ids), _available(now))
            .values(lease_until=until)
            .returning(_D.id, _D.webhook, _D.attempts, _D.event_id)
        )
        async with self._engine.connect() as conn:
            await write_connection(conn)
            async with conn.begin():
                won = (await conn.execute(taking)).all()
        if not won:
            return []
        query = select(_E.event_id, _E.type, _E.created_at, _E.data).where(
            _E.event_id.in_({row.event_id for row in won})
        )
        async with self._engine.connect() as conn:  # events are immutable: read after, unlocked
            found = {row.event_id: row for row in (await conn.execute(query)).all()}
        return [
            Leased(
                id=row.id,
                webhook=row.webhook,
                attempts=row.attempts,
                lease_until=until,
                event_id=row.event_id,
                type=found[row.event_id].type,
                created_at=found[row.event_id].created_at,
                data=found[row.event_id].data,
            )
            for row in sorted(won, key=lambda row: row.id)
        ]

    async def delivered(self, leased: Leased, now: int, status: int) -> bool:
        """Record a 2xx; False if the lease had been lost (another attempt owns the row)."""
        return await self._finish(
            leased,
            state="delivered",
            attempts=leased.attempts + 1,
            last_status=status,
            last_error=None,
            delivered_at=now,
        )

    async def failed_attempt(
        self, leased: Leased, status: int | None, error: str, retry_at: int | None
    ) -> bool:
        """Record a failed attempt: retry at `retry_at`, or (None) give the delivery up."""
        values: dict[str, Any] = {
            "attempts": leased.attempts + 1,
            "last_status": status,
            "last_error": error[:_ERROR_CHARS],
        }
        if retry_at is None:
            values["state"] = "failed"
        else:
            values["next_attempt_at"] = retry_at
        return await self._finish(leased, **values)

    async def release(self, leased: Leased) -> bool:
        """Give a lease back without an outcome (an attempt cut short by shutdown): due again now."""
        return await self._finish(leased)

    async def _finish(self, leased: Leased, **values: Any) -> bool:
        change = (
            update(event_deliveries)
            .where(
                _D.id == leased.id,
                _D.state == "pending",
                _D.lease_until == leased.lease_until,
            )
            .values(lease_until=None, **values)
        )
        async with self._engine.connect() as conn:
            await write_connection(conn)
            async with conn.begin():
                result = await conn.execute(change)
        return bool(result.rowcount == 1)
