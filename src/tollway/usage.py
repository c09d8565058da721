"""Token usage: read from whatever an upstream reports, completed by counting, shaped as SPEC §3.

Conventions (OpenAI's): cached and cache-write tokens are part of
`prompt_tokens`; reasoning tokens are part of `completion_tokens`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from msgspec import Struct

__all__ = ["INVALID", "MAX_TOKENS", "ReportedUsage", "Source", "Usage", "read_reported", "to_openai"]

Source = Literal["upstream", "counted"]


# The largest token count believed (SPEC §3): any other number makes the whole report invalid.
MAX_TOKENS = 2**53 - 1

# Fields that hold token counts, at the top level and in the two details sections.
_TOP_COUNTS = (
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation_tokens",
    "cache_write_tokens",
    "prompt_cache_hit_tokens",
    "prompt_cache_miss_tokens",
    "reasoning_tokens",
)
_DETAILS = (
    "prompt_tokens_details",
    "completion_tokens_details",
    "input_tokens_details",
    "output_tokens_details",
)


class ReportedUsage(Struct, frozen=True):
    """What an upstream said; None where it said nothing.

    `invalid` marks a report that was there but not made of non-negative
    integers below 2^53 (a float, a string, a negative or absurd number, a
    details section that is not an object): it is ignored whole, the usage is
    counted instead, and the usage record says so.
    """

    prompt: int | None
    completion: int | None
    cached: int | None
    cache_write: int | None
    reasoning: int | None
    raw: Mapping[str, Any] | None
    invalid: bool = False


INVALID = ReportedUsage(None, None, None, None, None, None, invalid=True)


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
    # True when the upstream sent a usage report that was not believable (see ReportedUsage).
    report_invalid: bool = False
    raw: Mapping[str, Any] | None = None

    @property
    def total(self) -> int:
        return self.prompt + self.completion


def _is_count(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_TOKENS


def _valid(usage: Mapping[str, Any]) -> bool:
    for name in _TOP_COUNTS:
        value = usage.get(name)
        if value is not None and not _is_count(value):
            return False
    for name in _DETAILS:
        section = usage.get(name)
        if section is None:
            continue
        if not isinstance(section, Mapping):
            return False
        for value in section.values():
            # Non-numbers in details (labels, nested objects) are not token counts; numbers must be.
            if isinstance(value, int | float) and not _is_count(value):
                return False
    return True


def _first(*values: Any) -> int | None:
    for value in values:
        if value is not None:
            return int(value)
    return None


def _section(usage: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = usage.get(name)
    return value if isinstance(value, Mapping) else {}


def read_reported(usage: Any) -> ReportedUsage | None:
    """Normalise an upstream `usage` value: None if absent, `INVALID` if not believable."""
    if usage is None:
        return None
    if not isinstance(usage, Mapping) or not _valid(usage):
        return INVALID
    prompt_details = _section(usage, "prompt_tokens_details") or _section(usage, "input_tokens_details")
    completion_details = _section(usage, "completion_tokens_details") or _section(
        usage, "output_tokens_details"
    )
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
