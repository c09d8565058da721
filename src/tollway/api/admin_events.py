"""`GET /admin/events`: the webhook outbox with each event's delivery state (SPEC §7)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get

from tollway.api.admin import require_admin
from tollway.api.openapi import documented
from tollway.api.wire_reports import EventsQuery
from tollway.events.listing import EventList
from tollway.runtime import Runtime

__all__ = ["EventsController"]


class EventsController(Controller):
    path = "/admin/events"
    guards = [require_admin]

    @get("/", summary="List webhook events", opt=documented(query=EventsQuery))
    async def list_events(self, request: Request[Any, Any, Any]) -> EventList:
        """Events newest first; `?limit=&cursor=&type=&workspace_id=`."""
        runtime: Runtime = request.app.state.runtime
        return await runtime.events.page(dict(request.query_params.items()))
