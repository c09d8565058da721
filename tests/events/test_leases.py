"""Leases on both engines: one holder per attempt, expiry, fencing, retries, giving up."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.events.conftest import HOOK, OTHER, emit
from tollway.db import create_engine
from tollway.events import Outbox
from tollway.events.leases import DeliveryQueue

S = 1_000_000  # a second in microseconds


async def one_due(engine: AsyncEngine, outbox: Outbox, workspace_id: str) -> tuple[DeliveryQueue, int, int]:
    await emit(engine, outbox, "credit.added", workspace_id, {"amount_usd": "5.00"})
    queue = DeliveryQueue(engine)
    now = await queue.now()
    (delivery,) = await queue.due(HOOK, now, 10)
    return queue, delivery, now


async def state(engine: AsyncEngine, delivery: int) -> tuple[object, ...]:
    async with engine.connect() as conn:
        row = (
            await conn.exec_driver_sql(
                "SELECT state, attempts, last_status, last_error, lease_until, delivered_at"
                f" FROM event_deliveries WHERE id = {delivery}"
            )
        ).one()
    return tuple(row)


async def test_a_lease_is_won_once_and_carries_its_event(
    engine: AsyncEngine, outbox: Outbox, workspace_id: str
) -> None:
    queue, delivery, now = await one_due(engine, outbox, workspace_id)
    (leased,) = await queue.lease([delivery], now, now + 30 * S)
    assert (leased.webhook, leased.attempts, leased.type) == (HOOK, 0, "credit.added")
    assert leased.data == '{"amount_usd":"5.00"}' and leased.event_id.startswith("evt_")
    assert await queue.lease([delivery], now, now + 30 * S) == []  # held
    assert await queue.due(HOOK, now + 29 * S, 10) == []
    assert await queue.due(OTHER, now, 10) == []  # another webhook's rows are not its


async def test_an_expired_lease_is_retaken_and_fences_off_the_old_holder(
    engine: AsyncEngine, outbox: Outbox, workspace_id: str
) -> None:
    queue, delivery, now = await one_due(engine, outbox, workspace_id)
    (first,) = await queue.lease([delivery], now, now + 5 * S)
    later = now + 6 * S  # the first holder stalled past its lease (or was killed -9)
    assert await queue.due(HOOK, later, 10) == [delivery]
    (second,) = await queue.lease([delivery], later, later + 5 * S)
    assert second.lease_until > first.lease_until
    assert not await queue.delivered(first, later, 200)  # its outcome is dropped ...
    assert not await queue.failed_attempt(first, 500, "HTTP 500", later + S)
    assert (await state(engine, delivery))[:2] == ("pending", 0)
    assert await queue.delivered(second, later + S, 204)  # ... the current holder's counts
    assert await state(engine, delivery) == ("delivered", 1, 204, None, None, later + S)
    assert await queue.due(HOOK, later + 100 * S, 10) == []


async def test_a_failed_attempt_waits_for_its_retry_then_gives_up_at_the_end(
    engine: AsyncEngine, outbox: Outbox, workspace_id: str
) -> None:
    queue, delivery, now = await one_due(engine, outbox, workspace_id)
    (leased,) = await queue.lease([delivery], now, now + 5 * S)
    assert await queue.failed_attempt(leased, None, "ConnectError: refused" + "x" * 900, now + 2 * S)
    status = await state(engine, delivery)
    assert status[:3] == ("pending", 1, None) and len(str(status[3])) == 500 and status[4] is None
    assert await queue.due(HOOK, now + S, 10) == []  # not yet due
    assert await queue.due(HOOK, now + 2 * S, 10) == [delivery]
    (again,) = await queue.lease([delivery], now + 2 * S, now + 7 * S)
    assert again.attempts == 1
    assert await queue.failed_attempt(again, 503, "HTTP 503", None)  # the last attempt
    assert (await state(engine, delivery))[:4] == ("failed", 2, 503, "HTTP 503")
    assert await queue.due(HOOK, now + 1000 * S, 10) == []


async def test_a_released_lease_is_due_again_at_once(
    engine: AsyncEngine, outbox: Outbox, workspace_id: str
) -> None:
    queue, delivery, now = await one_due(engine, outbox, workspace_id)
    (leased,) = await queue.lease([delivery], now, now + 60 * S)
    assert await queue.release(leased)
    assert await queue.due(HOOK, now, 10) == [delivery]
    assert (await state(engine, delivery))[:2] == ("pending", 0)  # no attempt was counted


async def test_processes_racing_for_leases_never_share_one(
    engine: AsyncEngine, database_url: str, outbox: Outbox, workspace_id: str
) -> None:
    for i in range(30):
        await emit(engine, outbox, "key.revoked", workspace_id, {"key_id": f"key_{i}"})
    other = create_engine(database_url)  # a second process's pool
    try:
        queues = [DeliveryQueue(engine), DeliveryQueue(other)] * 3
        now = await queues[0].now()

        async def take(queue: DeliveryQueue) -> list[int]:
            won: list[int] = []
            while ids := await queue.due(HOOK, now, 4):
                won += [leased.id for leased in await queue.lease(ids, now, now + 60 * S)]
            return won

        winners = await asyncio.gather(*(take(queue) for queue in queues))
    finally:
        await other.dispose()
    every = [delivery for won in winners for delivery in won]
    assert len(every) == len(set(every)) == 30
