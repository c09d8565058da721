"""A non-streamed chat completion: the upstream's body with complete usage."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import httpx
import msgspec

from tollway.chat.context import ChatContext
from tollway.chat.meter import message_texts, reasoning_texts
from tollway.chat.metering import resolve_usage
from tollway.errors import UpstreamUnavailable
from tollway.tokens import TokenCounter
from tollway.usage import Usage, read_reported, to_openai

__all__ = ["meter_completion", "render_completion"]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder(decimal_format="number").encode


async def meter_completion(
    ctx: ChatContext, response: httpx.Response, counter: TokenCounter
) -> tuple[dict[str, object], Usage]:
    try:
        payload = _decode(response.content)
    except msgspec.DecodeError as exc:
        raise UpstreamUnavailable(f"Upstream {ctx.upstream.name!r} answered with invalid JSON.") from exc
    if not isinstance(payload, dict):
        raise UpstreamUnavailable(f"Upstream {ctx.upstream.name!r} answered with a non-object body.")
    if isinstance(model := payload.get("model"), str):
        ctx.upstream_model = model
    if ctx.route.alias:
        payload["model"] = ctx.route.model.name  # clients see the name they asked for
    text: list[str] = []
    reasoning: list[str] = []
    for choice in payload.get("choices") or ():
        if isinstance(choice, Mapping):
            text.extend(message_texts(choice.get("message")))
            reasoning.extend(reasoning_texts(choice.get("message")))
    usage = await resolve_usage(
        counter, ctx.route, ctx.chat.body, read_reported(payload.get("usage")), text, reasoning, ctx.price
    )
    return payload, usage


def render_completion(payload: dict[str, object], usage: Usage, cost: Decimal | None) -> bytes:
    payload["usage"] = to_openai(usage, cost)
    return _encode(payload)
