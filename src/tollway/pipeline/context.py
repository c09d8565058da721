"""The state one chat completion carries through the request path."""

from __future__ import annotations

from typing import Literal

from msgspec import Struct

from tollway.auth import Principal
from tollway.chat.request import ParsedChat
from tollway.chat.routing import Route
from tollway.config import UpstreamConfig
from tollway.pricing import Price

__all__ = ["ChatContext", "EndState"]

# How a request that reached an upstream ended.
EndState = Literal[
    "completed", "client_disconnected", "upstream_broke_off", "upstream_timeout", "server_shutdown"
]


class ChatContext(Struct, kw_only=True):
    request_id: str
    principal: Principal
    route: Route
    chat: ParsedChat
    upstream: UpstreamConfig
    started_us: int
    # The price the request was reserved at and will be settled at.
    price: Price
    # The model the upstream says answered, once its answer is read.
    upstream_model: str | None = None
