"""A non-stream answer, on any surface: the upstream's body with complete usage and cost."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from tollway.errors import UpstreamUnavailable
from tollway.pipeline.context import RequestContext
from tollway.pipeline.metering import resolve_usage
from tollway.tokens import TokenCounter
from tollway.upstream.answer import Answer
from tollway.usage import Usage

__all__ = ["meter_body", "render_body"]

_decode = msgspec.json.Decoder().decode


async def meter_body(
    ctx: RequestContext, response: Answer, counter: TokenCounter
) -> tuple[dict[str, Any], Usage]:
    try:
        payload = _decode(response.content)
    except msgspec.DecodeError as exc:
        raise UpstreamUnavailable(f"Upstream {ctx.upstream.name!r} answered with invalid JSON.") from exc
    if not isinstance(payload, dict):
        raise UpstreamUnavailable(f"Upstream {ctx.upstream.name!r} answered with a non-object body.")
    reading = ctx.surface.read_body(ctx.call, payload)
    if reading.model is not None:
        ctx.upstream_model = reading.model
    usage = await resolve_usage(
        counter, ctx.route, ctx.call, reading.reported, reading.text, reading.reasoning, ctx.price
    )
    return payload, usage


def render_body(
    ctx: RequestContext, payload: dict[str, Any], raw: bytes, usage: Usage, cost: Decimal | None
) -> bytes:
    return ctx.surface.render_body(ctx.call, payload, usage, cost, ctx.served_alias, raw)
