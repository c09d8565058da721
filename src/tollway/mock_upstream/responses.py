"""The mock's `/v1/responses` (to be written)."""

from __future__ import annotations

from typing import Any

from tollway.mock_upstream.asgi import Receive, Send, send_json
from tollway.mock_upstream.behaviour import Behaviour
from tollway.mock_upstream.errors import error_body


async def answer(
    mock: Any, receive: Receive, send: Send, body: dict[str, Any], behaviour: Behaviour, serial: int
) -> None:
    await send_json(
        send, 404, error_body("not served by this mock yet", "invalid_request_error", code="unknown_url")
    )
