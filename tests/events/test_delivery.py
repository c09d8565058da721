"""The deliverer against canned receivers (httpx.MockTransport) and a real database on both engines."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.events.conftest import HOOK, emit
from tollway.config import WebhookConfig
from tollway.events import Outbox
from tollway.events.delivery import Deliverer, event_body, retry_delay
from tollway.events.leases import Leased
from tollway.events.signing import verify

SECRET = "whsec_unit"
Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def test_the_backoff_doubles_up_to_its_cap_less_up_to_a_quarter() -> None:
    schedule = [retry_delay(n, 1.0, 600.0, 0.0) for n in range(1, 14)]
    assert schedule == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600, 600]
    assert retry_delay(3, 1.0, 600.0, 0.999) == pytest.approx(3.001, abs=0.01)
    assert retry_delay(1000, 0.05, 2.0, 0.5) == 1.75  # no overflow however many attempts
    for n in range(1, 30):
        for rand in (0.0, 0.3, 0.999):
            full = retry_delay(n, 0.5, 60.0, 0.0)
            assert 0.75 * full <= retry_delay(n, 0.5, 60.0, rand) <= full


def test_the_body_is_the_stored_event_with_its_data_verbatim() -> None:
    leased = Leased(
        id=1,
        webhook=HOOK,
        attempts=0,
        lease_until=2,
        event_id="evt_abc",
        type="credit.added",
        created_at=1_767_225_600_123_456,
        data='{"workspace_id":"ws_1","amount_usd":"5.00"}',
    )
    assert event_body(leased) == (
        b'{"id":"evt_abc","type":"credit.added","created_at":"2026-01-01T00:00:00.123456Z",'
        b'"data":{"workspace_id":"ws_1","amount_usd":"5.00"}}'
    )


def webhook(**changes: Any) -> WebhookConfig:
    options: dict[str, Any] = {
        "url": HOOK,
        "secret_env": "HOOK_SECRET",
        "events": ["*"],
        "timeout_seconds": 2.0,
        "max_attempts": 3,
        "retry_base_seconds": 0.05,
        "retry_max_seconds": 0.2,
    }
    return WebhookConfig(**{**options, **changes})


class Receiver:
    """Answers with `statuses` in turn (then 200), or runs `behaviour`; checks every signature."""

    def __init__(self, *statuses: int, behaviour: Handler | None = None) -> None:
        self.statuses = list(statuses)
        self.behaviour = behaviour
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        assert verify(SECRET, request.headers["tollway-signature"], body, now=time.time())
        self.requests.append(request)
        if self.behaviour is not None:
            return await self.behaviour(request)
        return httpx.Response(self.statuses.pop(0) if self.statuses else 200)


def deliverer(engine: AsyncEngine, receiver: Receiver, hook: WebhookConfig, **options: Any) -> Deliverer:
    transport = httpx.MockTransport(receiver)
    return Deliverer(engine, [hook], {hook.url: SECRET}, transport=transport, poll_seconds=0.05, **options)


async def deliveries(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.exec_driver_sql("SELECT * FROM event_deliveries ORDER BY id")
        return [dict(row) for row in result.mappings().all()]


async def until(engine: AsyncEngine, done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while not done(rows := await deliveries(engine)):
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.02)
    return rows


def settled(rows: list[dict[str, Any]]) -> bool:
    return bool(rows) and all(row["state"] != "pending" for row in rows)


async def test_a_failed_attempt_is_retried_and_then_delivered(
    engine: AsyncEngine, outbox: Outbox, workspace_id: str
) -> None:
    receiver = Receiver(500)
    worker = deliverer(engine, receiver, webhook())
    worker.start(outbox)
    try:
        event_id = await emit(engine, outbox, "credit.added", workspace_id, {"amount_usd": "5.00"})
        (row,) = await until(engine, settled)
    finally:
        await worker.close()
    assert (row["state"], row["attempts"], row["last_status"], row["last_error"]) == (
        "delivered",
        2,
        200,
        None,
    )
    first, second = receiver.requests
    assert first.content == second.content  # the same body, freshly signed
    assert msgspec.json.decode(first.content)["id"] == event_id
    assert first.headers["tollway-event-id"] == event_id
    assert first.headers["tollway-event-type"] == "credit.added"
    assert first.headers["content-type"] == "application/json"
    assert [r.headers["tollway-delivery-attempt"] for r in receiver.requests] == ["1", "2"]


async def test_refused_connections_and_timeouts_count_until_the_delivery_fails(
    engine: AsyncEngine, outbox: Outbox, workspace_id: str
) -> None:
    calls = 0

    async def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if calls == 2:
            await asyncio.sleep(10)  # past timeout_seconds
        return httpx.Response(302, headers={"location": "http://elsewhere.test/"})  # not followed

    worker = deliverer(engine, Receiver(behaviour=flaky), webhook(timeout_seconds=0.2))
    worker.start(outbox)
    try:
        await emit(engine, outbox, "key.revoked", workspace_id, {"key_id": "key_1"})
        (row,) = await until(engine, settled)
    finally:
        await worker.close()
    assert (row["state"], row["attempts"], row["last_status"]) == ("failed", 3, 302)
    assert row["last_error"] == "HTTP 302" and row["delivered_at"] is None
    assert calls == 3


async def test_a_notify_from_another_thread_wakes_it_before_its_next_poll(
    engine: AsyncEngine, outbox: Outbox, workspace_id: str
) -> None:
    worker = Deliverer(
        engine,
        [webhook()],
        {HOOK: SECRET},
        transport=httpx.MockTransport(Receiver()),
        poll_seconds=600,  # only a wake-up can deliver within the test's time
    )
    worker.start(outbox)
    try:
        await asyncio.sleep(0.1)  # its first poll has found nothing
        notify, outbox.notify = outbox.notify, None
        await emit(engine, outbox, "credit.added", workspace_id, {"amount_usd": "1.00"})
        assert notify is not None
        threading.Thread(target=notify).start()  # as the SQLite ledger thread calls it
        (row,) = await until(engine, settled)
    finally:
        await worker.close()
    assert row["state"] == "delivered"


async def test_closing_gives_back_the_leases_of_attempts_in_flight(
    engine: AsyncEngine, outbox: Outbox, workspace_id: str
) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(60)
        raise AssertionError("never answered")

    worker = deliverer(engine, Receiver(behaviour=hang), webhook(timeout_seconds=30))
    worker.start(outbox)
    try:
        await emit(engine, outbox, "credit.added", workspace_id, {"amount_usd": "1.00"})
        await until(engine, lambda rows: bool(rows) and rows[0]["lease_until"] is not None)
    finally:
        await worker.close()
    (row,) = await deliveries(engine)
    assert (row["state"], row["attempts"], row["lease_until"]) == ("pending", 0, None)


async def test_a_lease_granted_as_closing_cancels_the_poll_is_given_back(
    engine: AsyncEngine, outbox: Outbox, workspace_id: str
) -> None:
    """The database grants the lease, and the poll is cancelled before it starts the attempt (the
    test above, on a loaded machine, once saw the lease kept until it expired)."""
    worker = deliverer(engine, Receiver(), webhook(timeout_seconds=30))
    granted = asyncio.Event()
    lease = worker._queue.lease

    async def slow_lease(ids: Any, now: int, until: int) -> list[Leased]:
        won = await lease(ids, now, until)  # committed: the row is leased
        granted.set()
        await asyncio.sleep(0.3)  # close() cancels the poll here, before any attempt starts
        return won

    worker._queue.lease = slow_lease  # type: ignore[method-assign]
    worker.start(outbox)
    try:
        await emit(engine, outbox, "credit.added", workspace_id, {"amount_usd": "1.00"})
        await asyncio.wait_for(granted.wait(), 10)
        (row,) = await deliveries(engine)
        assert row["lease_until"] is not None
    finally:
        await worker.close()
    (row,) = await deliveries(engine)
    assert (row["state"], row["attempts"], row["lease_until"]) == ("pending", 0, None)


async def test_a_slow_receiver_holds_at_most_its_share_of_attempts(
    engine: AsyncEngine, outbox: Outbox, workspace_id: str
) -> None:
    started = 0
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal started
        started += 1
        await release.wait()
        return httpx.Response(200)

    worker = deliverer(engine, Receiver(behaviour=slow), webhook(timeout_seconds=30), per_webhook=2)
    worker.start(outbox)
    try:
        for i in range(5):
            await emit(engine, outbox, "credit.added", workspace_id, {"n": i})
        await until(engine, lambda rows: sum(r["lease_until"] is not None for r in rows) == 2)
        await asyncio.sleep(0.2)  # several polls later, still two
        assert started == 2
        release.set()
        rows = await until(engine, lambda rows: len(rows) == 5 and settled(rows))
    finally:
        await worker.close()
    assert {row["state"] for row in rows} == {"delivered"} and started == 5


async def test_without_webhooks_nothing_runs(engine: AsyncEngine) -> None:
    outbox = Outbox()
    worker = Deliverer(engine, [], {})
    worker.start(outbox)
    assert outbox.notify is None
    await worker.close()
