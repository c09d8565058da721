"""`EventLog.page`: newest first, cursors, filters, deliveries, and a 400 naming each bad parameter."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.events.conftest import HOOK, emit
from tollway.accounts import AccountStore
from tollway.errors import InvalidRequest
from tollway.events import Outbox
from tollway.events.leases import DeliveryQueue
from tollway.events.listing import EventLog
from tollway.reports.params import encode_cursor


async def test_pages_run_newest_first_and_carry_their_deliveries(
    engine: AsyncEngine, outbox: Outbox, workspace_id: str
) -> None:
    other = (await AccountStore(engine).create_workspace("other")).id
    ids = [
        await emit(engine, outbox, "credit.added", workspace_id, {"n": 0}),
        await emit(engine, outbox, "balance.low", workspace_id, {"n": 1}),  # no webhook wants it
        await emit(engine, outbox, "key.revoked", other, {"n": 2}),
        await emit(engine, outbox, "credit.added", other, {"n": 3}),
        await emit(engine, outbox, "credit.added", workspace_id, {"n": 4}),
    ]
    queue = DeliveryQueue(engine)
    now = await queue.now()
    (leased, *_) = await queue.lease(await queue.due(HOOK, now, 1), now, now + 10_000_000)
    await queue.delivered(leased, now + 1, 200)

    log = EventLog(engine)
    seen: list[str] = []
    query: dict[str, str] = {"limit": "2"}
    while True:
        page = await log.page(query)
        seen += [event.id for event in page.data]
        if not page.has_more:
            assert page.next_cursor is None
            break
        assert page.next_cursor is not None and len(page.data) == 2
        query = {"limit": "2", "cursor": page.next_cursor}
    assert seen == ids[::-1]

    full = {event.id: event for event in (await log.page({})).data}
    first = full[ids[0]]
    assert (first.type, first.workspace_id, first.data) == ("credit.added", workspace_id, {"n": 0})
    assert first.created_at.endswith("Z")
    (delivery,) = first.deliveries
    assert (delivery.webhook, delivery.state, delivery.attempts, delivery.last_status) == (
        HOOK,
        "delivered",
        1,
        200,
    )
    assert delivery.delivered_at is not None and delivery.next_attempt_at is None
    (waiting,) = full[ids[2]].deliveries
    assert waiting.state == "pending" and waiting.attempts == 0 and waiting.next_attempt_at is not None
    assert full[ids[1]].deliveries == []

    by_type = await log.page({"type": "credit.added"})
    assert [e.id for e in by_type.data] == [ids[4], ids[3], ids[0]]
    mine = await log.page({"workspace_id": other, "type": "credit.added"})
    assert [e.id for e in mine.data] == [ids[3]]
    assert (await log.page({"workspace_id": "ws_nobody"})).data == []


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "%%%"}, "cursor"),
        ({"cursor": "bm9wZQ"}, "cursor"),  # "nope": not two parts
        ({"cursor": encode_cursor("seq", 5)}, "cursor"),  # the ledger's, not this list's
        ({"cursor": encode_cursor("evt", "x")}, "cursor"),
        ({"type": "credit.removed"}, "type"),
        ({"workspace_id": "ws 1"}, "workspace_id"),
        ({"workspace_id": "x" * 65}, "workspace_id"),
    ],
)
async def test_a_bad_parameter_is_a_400_naming_it(
    engine: AsyncEngine, query: dict[str, str], param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await EventLog(engine).page(query)
    assert caught.value.param == param
