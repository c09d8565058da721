"""Token usage: read from whatever an upstream reports, completed by counting, shaped as SPEC §3.

Conventions (OpenAI's): cached and cache-write tokens are part of
`prompt_tokens`; reasoning tokens are part of `completion_tokens`.
`cache_write` is the total of all cache writes; `cache_write_1h`, the tokens
written to a 1-hour cache (Anthropic's `cache_creation.ephemeral_1h_input_tokens`),
is a part of `cache_write`, not an addition to it.
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
    "cache_creation",
)
# Anthropic's `cache_creation` object: cache writes by lifetime; when it is present,
# `cache_creation_input_tokens` is the sum of the two.
_CACHE_CREATION_COUNTS = ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens")


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
    # The part of `cache_write` written to a 1-hour cache.
    cache_write_1h: int | None = None


INVALID = ReportedUsage(None, None, None, None, None, None, invalid=True)


class Usage(Struct, frozen=True, kw_only=True):
    """The usage billed.  `cached` and `cache_write` (every cache write) are parts of `prompt`;
    `cache_write_1h` (the writes to a 1-hour cache) is a part of `cache_write`; `reasoning` is a
    part of `completion`."""

    prompt: int
    completion: int
    cached: int = 0
    cache_write: int = 0
    reasoning: int = 0
    cache_write_1h: int = 0
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


# The detail fields `read_reported` reads.
_READ_DETAILS = frozenset(
    {
        "cached_tokens",
        "cache_write_tokens",
        "cache_creation_tokens",
        "cache_creation_input_tokens",
        "cache_write_1h_tokens",
        "reasoning_tokens",
    }
)


def _valid(usage: Mapping[str, Any]) -> bool:
    for name in _TOP_COUNTS:
        value = usage.get(name)
        if value is not None and not _is_count(value):
            return False
    for name in _DETAILS:
        section = usage.get(name)
        if section is None:
            continue
        if type(section) is not dict and not isinstance(section, Mapping):
            return False
        for key, value in section.items():
            # Labels and nested objects in details are not token counts; numbers must be, and so must
            # every field tollway reads (a string there is not believed either).
            if value is None:
                continue
            if (isinstance(value, int | float) or key in _READ_DETAILS) and not _is_count(value):
                return False
    creation = usage.get("cache_creation")
    if creation is not None and (type(creation) is dict or isinstance(creation, Mapping)):
        for name in _CACHE_CREATION_COUNTS:
            value = creation.get(name)
            # These are billed at their own rate: anything but a count (a string too) is not believed.
            if value is not None and not _is_count(value):
                return False
    for name in ("prompt_tokens_details", "input_tokens_details"):
        value = _section(usage, name).get("cache_write_1h_tokens")
        if value is not None and not _is_count(value):
            return False
    return True


def _first(*values: Any) -> int | None:
    for value in values:
        if value is not None:
            return int(value)
    return None


def _section(usage: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = usage.get(name)
    # A decoded JSON object is a dict: that check first (an ABC's `isinstance` is a Python call).
    return value if type(value) is dict or (value is not None and isinstance(value, Mapping)) else {}


def read_reported(usage: Any) -> ReportedUsage | None:
    """Normalise an upstream `usage` value: None if absent, `INVALID` if not believable."""
    if usage is None:
        return None
    if (type(usage) is not dict and not isinstance(usage, Mapping)) or not _valid(usage):
        return INVALID
    prompt_details = _section(usage, "prompt_tokens_details") or _section(usage, "input_tokens_details")
    completion_details = _section(usage, "completion_tokens_details") or _section(
        usage, "output_tokens_details"
    )
    creation = _section(usage, "cache_creation")
    by_lifetime = [value for name in _CACHE_CREATION_COUNTS if (value := creation.get(name)) is not None]
    creation_total = sum(by_lifetime) if by_lifetime else None  # when the upstream gives no total
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
            creation_total,
        ),
        reasoning=_first(completion_details.get("reasoning_tokens"), usage.get("reasoning_tokens")),
        raw=usage,
        cache_write_1h=_first(
            prompt_details.get("cache_write_1h_tokens"), creation.get("ephemeral_1h_input_tokens")
        ),
    )


def to_openai(usage: Usage, cost: Decimal | None = None) -> dict[str, Any]:
    """The `usage` object clients receive, keeping any extra detail fields the upstream sent."""
    raw = usage.raw or {}
    prompt_details = dict(_section(raw, "prompt_tokens_details"))
    prompt_details.pop("cache_creation_input_tokens", None)
    prompt_details["cached_tokens"] = usage.cached
    prompt_details["cache_write_tokens"] = usage.cache_write
    prompt_details["cache_creation_tokens"] = usage.cache_write
    prompt_details["cache_write_1h_tokens"] = usage.cache_write_1h
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
