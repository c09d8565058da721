"""Completing usage: upstream numbers where reported and believable, tiktoken counts where not."""

from __future__ import annotations

from collections.abc import Sequence

from tollway.money import MAX_REQUEST_COST_NANOS
from tollway.pipeline.routing import Route
from tollway.pricing import Price, cost_nanos
from tollway.surfaces.base import Call
from tollway.tokens import TokenCounter
from tollway.usage import INVALID, ReportedUsage, Source, Usage

__all__ = ["resolve_usage"]


async def resolve_usage(
    counter: TokenCounter,
    route: Route,
    call: Call,
    reported: ReportedUsage | None,
    text: Sequence[str],
    reasoning: Sequence[str],
    price: Price | None = None,
) -> Usage:
    """The usage to bill.  Counting happens only for what the upstream left out.

    A report that is invalid (see `ReportedUsage`), or whose cost at `price` would pass
    `MAX_REQUEST_COST_NANOS`, is ignored whole: everything is counted and the usage says so.
    """
    if reported is not None and not reported.invalid:
        usage = await _complete(counter, route, call, reported, text, reasoning)
        if price is None or _plausible(price, usage):
            return usage
        reported = INVALID
    usage = await _complete(counter, route, call, None, text, reasoning)
    if reported is None:
        return usage
    return Usage(
        prompt=usage.prompt,
        completion=usage.completion,
        reasoning=usage.reasoning,
        prompt_source="counted",
        completion_source="counted",
        estimated=usage.estimated,
        report_invalid=True,
    )


def _plausible(price: Price, usage: Usage) -> bool:
    cost = cost_nanos(
        price,
        usage.prompt,
        usage.completion,
        usage.cached,
        usage.cache_write,
        usage.reasoning,
        cache_write_1h=usage.cache_write_1h,
    )
    return cost <= MAX_REQUEST_COST_NANOS


async def _complete(
    counter: TokenCounter,
    route: Route,
    call: Call,
    reported: ReportedUsage | None,
    text: Sequence[str],
    reasoning: Sequence[str],
) -> Usage:
    prompt_source: Source = "upstream"
    completion_source: Source = "upstream"
    if reported is not None and reported.prompt is not None:
        prompt = reported.prompt
    else:
        prompt = await call.count_prompt(counter, route.encoding)
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
    cache_write_1h = (reported.cache_write_1h or 0) if reported is not None else 0
    # Details can never exceed the totals they are part of; an upstream that
    # says otherwise is clamped rather than allowed to make a cost negative.
    cached = min(cached, prompt)
    cache_write = min(cache_write, prompt - cached)
    cache_write_1h = min(cache_write_1h, cache_write)
    return Usage(
        prompt=prompt,
        completion=completion,
        cached=cached,
        cache_write=cache_write,
        cache_write_1h=cache_write_1h,
        reasoning=min(reasoning_tokens, completion),
        prompt_source=prompt_source,
        completion_source=completion_source,
        estimated=route.estimated and "counted" in (prompt_source, completion_source),
        raw=reported.raw if reported is not None else None,
    )
