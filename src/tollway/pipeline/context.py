"""The state one request carries through the request path, whatever its surface."""

from __future__ import annotations

from typing import Any

from msgspec import Struct

from tollway.auth import Principal
from tollway.config import UpstreamConfig
from tollway.pipeline.routing import Route
from tollway.pricing import Price
from tollway.surfaces.base import EndState, Surface

__all__ = ["EndState", "RequestContext"]


class RequestContext(Struct, kw_only=True):
    request_id: str
    principal: Principal
    route: Route
    surface: Surface
    call: Any  # the surface's `Call`
    upstream: UpstreamConfig
    started_us: int
    # The price the request was reserved at and will be settled at.
    price: Price
    # The model the upstream says answered, once its answer is read.
    upstream_model: str | None = None
    # Streams: when (`time.perf_counter()`) the first bytes of the answer were relayed; 0.0 until then.
    first_byte_at: float = 0.0

    @property
    def served_alias(self) -> str | None:
        """The served name to show clients when it differs from the upstream's model (SPEC §3)."""
        return self.route.model.name if self.route.alias else None
