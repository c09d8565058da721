"""Writing events into the outbox, inside the transaction of whatever caused them.

An event is one `events` row plus one `event_deliveries` row per webhook
subscribed to its type.  Both are written with the caller's `Sql`, so they
commit or roll back with the cause (a credit, a settlement, a revocation):
an event is never sent for something that did not happen, and never lost
for something that did.  Delivering is the deliverer's job (`delivery.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import msgspec
from msgspec import Struct

from tollway.clock import now_us
from tollway.keys import new_id
from tollway.ledger.driver import Sql
from tollway.ledger.sql import statement

__all__ = ["EVENT_TYPES", "Outbox", "Subscription"]

EVENT_TYPES: Final = (
    "balance.low",
    "balance.exhausted",
    "spend_limit.reached",
    "credit.added",
    "key.revoked",
)

_encode = msgspec.json.Encoder().encode

_INSERT_EVENT = statement(
    "INSERT INTO events (event_id, type, workspace_id, created_at, data) VALUES ($1, $2, $3, $4, $5)"
)
_INSERT_DELIVERY = statement(
    "INSERT INTO event_deliveries (event_id, webhook, state, attempts, next_attempt_at)"
    " VALUES ($1, $2, 'pending', 0, $3)"
)


class Subscription(Struct, frozen=True):
    """A webhook (named by its URL) and the event types it receives."""

    webhook: str
    events: frozenset[str]


class Outbox:
    def __init__(self, subscriptions: Sequence[Subscription] = ()) -> None:
        self._subscriptions = tuple(subscriptions)
        # Called after each emit, from whatever thread ran the transaction (the SQLite ledger
        # thread too): the deliverer sets it to wake itself early; it must be thread-safe.
        self.notify: Callable[[], None] | None = None

    async def emit(self, sql: Sql, type: str, workspace_id: str | None, data: dict[str, Any]) -> str:
        """Write one event (and its deliveries) with `sql`, in the caller's transaction; its id."""
        assert type in EVENT_TYPES, type
        event_id = new_id("evt")
        created = now_us()
        await sql.run(_INSERT_EVENT, event_id, type, workspace_id, created, _encode(data).decode())
        for subscription in self._subscriptions:
            if type in subscription.events:
                await sql.run(_INSERT_DELIVERY, event_id, subscription.webhook, created)
        if self.notify is not None:
            self.notify()
        return event_id
