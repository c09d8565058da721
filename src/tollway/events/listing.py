"""Reading the outbox back: events newest first, each with its deliveries' state (`GET /admin/events`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec
from msgspec import Struct
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.clock import iso
from tollway.db.schema import event_deliveries, events
from tollway.errors import InvalidRequest
from tollway.events.outbox import EVENT_TYPES
from tollway.reports.params import decode_cursor, encode_cursor, parse_limit
from tollway.validation import is_id

__all__ = ["DeliveryRead", "EventList", "EventLog", "EventRead"]

_E = events.c
_D = event_deliveries.c
_CURSOR_TAG = "evt"

State = Literal["pending", "delivered", "failed"]


class DeliveryRead(Struct, kw_only=True):
    webhook: str
    state: State
    attempts: int
    last_status: int | None
    last_error: str | None
    # When the next attempt is due; null once delivered or failed.
    next_attempt_at: str | None
    delivered_at: str | None


class EventRead(Struct, kw_only=True):
    id: str
    type: str
    created_at: str
    workspace_id: str | None
    data: dict[str, Any]
    deliveries: list[DeliveryRead]


class EventList(Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[EventRead]
    has_more: bool
    next_cursor: str | None


class EventLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def page(self, query: Mapping[str, str]) -> EventList:
        """One page for `?limit=&cursor=&type=&workspace_id=`; a bad parameter is a 400 naming it."""
        limit = parse_limit(query)
        cursor = decode_cursor(query.get("cursor"), (str, int))
        if cursor is not None and cursor[0] != _CURSOR_TAG:
            raise InvalidRequest("cursor is not one this API returned.", param="cursor")
        kind = query.get("type")
        if kind is not None and kind not in EVENT_TYPES:
            raise InvalidRequest(f"type must be one of {', '.join(EVENT_TYPES)}.", param="type")
        workspace_id = query.get("workspace_id")
        if workspace_id is not None and not is_id(workspace_id):
            raise InvalidRequest("workspace_id is not a workspace id.", param="workspace_id")

        listing = select(_E.id, _E.event_id, _E.type, _E.created_at, _E.workspace_id, _E.data)
        if cursor is not None:
            listing = listing.where(_E.id < int(cursor[1]))
        if kind is not None:
            listing = listing.where(_E.type == kind)
        if workspace_id is not None:
            listing = listing.where(_E.workspace_id == workspace_id)
        listing = listing.order_by(_E.id.desc()).limit(limit + 1)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(listing)).all()
            page, more = rows[:limit], len(rows) > limit
            deliveries: dict[str, list[DeliveryRead]] = {row.event_id: [] for row in page}
            if page:
                attempts = select(event_deliveries).where(_D.event_id.in_(list(deliveries))).order_by(_D.id)
                for d in (await conn.execute(attempts)).all():
                    deliveries[d.event_id].append(
                        DeliveryRead(
                            webhook=d.webhook,
                            state=d.state,
                            attempts=d.attempts,
                            last_status=d.last_status,
                            last_error=d.last_error,
                            next_attempt_at=iso(d.next_attempt_at) if d.state == "pending" else None,
                            delivered_at=None if d.delivered_at is None else iso(d.delivered_at),
                        )
                    )
        return EventList(
            data=[
                EventRead(
                    id=row.event_id,
                    type=row.type,
                    created_at=iso(row.created_at),
                    workspace_id=row.workspace_id,
                    data=msgspec.json.decode(row.data),
                    deliveries=deliveries[row.event_id],
                )
                for row in page
            ],
            has_more=more,
            next_cursor=encode_cursor(_CURSOR_TAG, page[-1].id) if more else None,
        )
