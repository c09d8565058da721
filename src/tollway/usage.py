"""Token usage: read from whatever an upstream reports, completed by counting, shaped as SPEC §3.

Conventions (OpenAI's): cached and cache-write tokens are part of
`prompt_tokens`; reasoning tokens are part of `completion_tokens`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from msgspec import Struct

__all__ = ["ReportedUsage", "Source", "Usage", "read_reported", "to_openai"]

Source = Literal["upstream", "counted"]


class ReportedUsage(Struct, frozen=True):
    """What an upstream said; None where it said nothing usable."""

    prompt: int | None
    completion: int | None
    cached: int | None
    cache_write: int | None
    reasoning: int | None
    raw: Mapping[str, Any]


class Usage(Struct, frozen=True, kw_only=True):
    prompt: int
    completion: int
    cached: int = 0
    cache_write: int = 0
    reasoning: int = 0
    prompt_source: Source = "upstream"
    completion_source: Source = "upstream"
    # True when the counting encoding had to be guessed for an unknown model.
    estimated: bool = False
    raw: Mapping[str, Any] | None = None

    @property
    def total(self) -> int:
        return self.prompt + self.completion


def _count(value: Any) -> int | None:
    if type(value) is int and value >= 0:
        return value
    if type(value) is float and value >= 0 and value.is_integer():
        return int(value)
    return None


def _first(*values: Any) -> int | None:
    for value in values:
        counted = _count(value)
        if counted is not None:
            return counted
    return None


def _section(usage: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = usage.get(name)
    return value if isinstance(value, Mapping) else {}


def read_reported(usage: Any) -> ReportedUsage | None:
    """Normalise an upstream `usage` object; None if it is absent or not an object."""
    if not isinstance(usage, Mapping):
        return None
    prompt_details = _section(usage, "prompt_tokens_details")
    completion_details = _section(usage, "completion_tokens_details")
    return ReportedUsage(
        prompt=_first(usage.get("prompt_tokens"), usage.get("input_tokens")),
        completion=_first(usage.get("completion_tokens"), usage.get("output_tokens")),
        cached=_first(
            prompt_details.get("cached_tokens"),
            usage.get("cache_read_input_tokens"),
            usage.get("prompt_cache_hit_tokens"),
        ),
        cache_write=_first(
            prompt_details.get("cache_write_tokens"),
            prompt_details.get("cache_creation_tokens"),
            prompt_details.get("cache_creation_input_tokens"),
            usage.get("cache_creation_input_tokens"),
            usage.get("cache_creation_tokens"),
            usage.get("cache_write_tokens"),
        ),
        reasoning=_first(completion_details.get("reasoning_tokens"), usage.get("reasoning_tokens")),
        raw=usage,
    )


def to_openai(usage: Usage, cost: Decimal | None = None) -> dict[str, Any]:
    """The `usage` object clients receive, keeping any extra detail fields the upstream sent."""
    raw = usage.raw or {}
    prompt_details = dict(_section(raw, "prompt_tokens_details"))
    prompt_details.pop("cache_creation_input_tokens", None)
    prompt_details["cached_tokens"] = usage.cached
    prompt_details["cache_write_tokens"] = usage.cache_write
    prompt_details["cache_creation_tokens"] = usage.cache_write
    completion_details = dict(_section(raw, "completion_tokens_details"))
    completion_details["reasoning_tokens"] = usage.reasoning
    body: dict[str, Any] = {
        "prompt_tokens": usage.prompt,
        "completion_tokens": usage.completion,
        "total_tokens": usage.total,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": completion_details,
    }
    if cost is not None:
        body["cost"] = cost
    return body
