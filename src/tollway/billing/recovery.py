"""Crash safety: live processes beat a heartbeat; reservations of dead ones are released.

The rule: a process on the same machine is dead when the kernel says it no
longer runs; a process on another machine is dead when its heartbeat is older
than `dead_after` seconds.  Any live process then releases each of the dead process's open
reservations (at no cost: the dead process can no longer prove what it
delivered, so tollway bears it) and marks the process reaped.  The database
admits at most one settlement per reservation, so two reapers racing still
resolve each reservation exactly once, and a live process's reservations are
never touched.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, and_, cast, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import aliased

from tollway.billing.liveness import host_id, process_alive
from tollway.clock import now_us
from tollway.db.schema import instances, ledger_entries
from tollway.keys import new_id
from tollway.ledger import Draft, Ledger, LedgerWriter
from tollway.ledger.driver import DriverSql
from tollway.limits import forget_admission, prune_admissions

__all__ = ["Recovery"]

log = logging.getLogger("tollway.recovery")

_E = ledger_entries.c


class Recovery:
    def __init__(
        self,
        engine: AsyncEngine,
        ledger: Ledger,
        *,
        heartbeat: float,
        dead_after: float,
        interval: float,
        host: str | None = None,
    ) -> None:
        self.instance_id = new_id("inst")
        # Only tests name another host, to play a process on a machine whose kernel can't be asked.
        self._host = host or host_id()
        self._engine = engine
        self._ledger = ledger
        self._heartbeat = heartbeat
        self._dead_after_us = int(dead_after * 1_000_000)
        self._interval = interval

    def _db_now(self) -> ColumnElement[int]:
        """The database's clock in microseconds: one clock for every host, whatever theirs say."""
        if self._engine.dialect.name == "postgresql":
            seconds: ColumnElement[Any] = func.extract("epoch", func.clock_timestamp())
            return cast(seconds * 1_000_000, BigInteger)
        return cast((func.julianday("now") - 2440587.5) * 86_400_000_000.0, BigInteger)

    async def register(self) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(instances).values(
                    id=self.instance_id,
                    host=self._host,
                    pid=os.getpid(),
                    started_at=now_us(),
                    heartbeat_at=self._db_now(),
                )
            )

    async def beat(self) -> None:
        # Clearing reaped_at matters for a process that stalled past dead_after and came back:
        # its later reservations must be reapable again if it then dies for real.
        async with self._engine.begin() as conn:
            await conn.execute(
                update(instances)
                .where(instances.c.id == self.instance_id)
                .values(heartbeat_at=self._db_now(), reaped_at=None)
            )

    async def stopped(self) -> None:
        """A clean shutdown: let others reap anything left at once."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(instances).where(instances.c.id == self.instance_id).values(heartbeat_at=0)
            )

    async def reap(self) -> int:
        """Release the open reservations of dead processes; return how many were released."""
        cutoff = self._db_now() - self._dead_after_us
        stale = (instances.c.heartbeat_at < cutoff).label("stale")
        query = select(
            instances.c.id, instances.c.host, instances.c.pid, instances.c.started_at, stale
        ).where(instances.c.reaped_at.is_(None), instances.c.id != self.instance_id)
        async with self._engine.connect() as conn:
            candidates = (await conn.execute(query)).all()
        here = host_id()
        dead = [
            instance
            for instance, host, pid, started_at, is_stale in candidates
            if (not process_alive(pid, started_at) if host == here else bool(is_stale))
        ]
        released = 0
        for instance in dead:
            released += await self._release_all(instance)
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(instances).where(instances.c.id == instance).values(reaped_at=now_us())
                )
        return released

    async def prune(self) -> None:
        """Drop rate-limit buckets that left the window (they count against nothing)."""
        async with self._engine.begin() as conn:
            await prune_admissions(DriverSql(conn), now_us())

    async def _release_all(self, instance: str) -> int:
        closing = aliased(ledger_entries)
        query = select(_E.workspace_id, _E.key_id, _E.reservation_id, _E.hold_nano).where(
            _E.owner == instance,
            _E.kind == "reserve",
            ~exists().where(
                and_(closing.c.reservation_id == _E.reservation_id, closing.c.kind.in_(("debit", "release")))
            ),
        )
        async with self._engine.connect() as conn:
            orphans = (await conn.execute(query)).all()
        released = 0
        for workspace_id, key_id, reservation_id, hold in orphans:
            draft = Draft(
                workspace_id=workspace_id,
                kind="release",
                hold_nano=-hold,
                key_id=key_id,
                reservation_id=reservation_id,
                note=f"released: process {instance} died",
            )

            async def close(writer: LedgerWriter, draft: Draft = draft) -> bool:
                _, closed = await writer.reservation(draft.reservation_id or "")
                if closed:
                    return False
                await writer.append(draft)
                await forget_admission(writer.sql, draft.reservation_id or "")
                return True

            try:
                released += await self._ledger.transact(workspace_id, close, operation="recover")
            except IntegrityError:
                continue  # another reaper closed it first
        if released:
            log.warning("released %d reservation(s) of dead process %s", released, instance)
        return released

    async def run(self) -> None:
        """Heartbeat and reap until cancelled."""
        next_reap = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.beat()
                if loop.time() >= next_reap:
                    await self.reap()
                    await self.prune()
                    next_reap = loop.time() + self._interval
            except Exception:
                log.exception("recovery round failed; retrying")
            await asyncio.sleep(min(self._heartbeat, self._interval))
