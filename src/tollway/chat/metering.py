"""Completing usage: upstream numbers where reported, tiktoken counts where not."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tollway.chat.routing import Route
from tollway.tokens import TokenCounter
from tollway.usage import ReportedUsage, Source, Usage

__all__ = ["resolve_usage"]


async def resolve_usage(
    counter: TokenCounter,
    route: Route,
    request_body: dict[str, Any],
    reported: ReportedUsage | None,
    text: Sequence[str],
    reasoning: Sequence[str],
) -> Usage:
    """The usage to bill.  Counting happens only for what the upstream left out."""
    prompt_source: Source = "upstream"
    completion_source: Source = "upstream"
    if reported is not None and reported.prompt is not None:
        prompt = reported.prompt
    else:
        messages = request_body.get("messages")
        tools = request_body.get("tools")
        prompt = await counter.acount_prompt(
            route.encoding,
            messages if isinstance(messages, list) else [],
            tools if isinstance(tools, list) else None,
        )
        prompt_source = "counted"
    if reported is not None and reported.completion is not None:
        completion = reported.completion
        reasoning_tokens = reported.reasoning or 0
    else:
        completion = await counter.acount_pieces(route.encoding, text)
        reasoning_tokens = await counter.acount_pieces(route.encoding, reasoning) if reasoning else 0
        completion_source = "counted"
    cached = (reported.cached or 0) if reported is not None else 0
    cache_write = (reported.cache_write or 0) if reported is not None else 0
    # Details can never exceed the totals they are part of; an upstream that
    # says otherwise is clamped rather than allowed to make a cost negative.
    cached = min(cached, prompt)
    cache_write = min(cache_write, prompt - cached)
    return Usage(
        prompt=prompt,
        completion=completion,
        cached=cached,
        cache_write=cache_write,
        reasoning=min(reasoning_tokens, completion),
        prompt_source=prompt_source,
        completion_source=completion_source,
        estimated=route.estimated and "counted" in (prompt_source, completion_source),
        raw=reported.raw if reported is not None else None,
    )
