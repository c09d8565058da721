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


# Per section: the fields that must be counts whatever else it holds (a string there is not believed).
_SECTION_COUNTS = {name: _READ_DETAILS for name in _DETAILS} | {
    "cache_creation": _READ_DETAILS | frozenset(_CACHE_CREATION_COUNTS)  # billed at their own rate
}
_TOP = frozenset(_TOP_COUNTS)


def _valid(usage: Mapping[str, Any]) -> bool:
    """Every count is a count (see `ReportedUsage`).  Goes over the fields the report has, a handful,
    rather than looking up each of the twenty it could have."""
    for name, value in usage.items():
        if value is None:
            continue
        if name in _TOP:
            if type(value) is not int or not 0 <= value <= MAX_TOKENS:
                return False
        else:
            counts = _SECTION_COUNTS.get(name)
            if counts is not None and not _valid_section(value, counts):
                return False
    return True


def _valid_section(section: Any, counts: frozenset[str]) -> bool:
    if type(section) is not dict and not isinstance(section, Mapping):
        return False
    for key, value in section.items():
        if type(value) is int:
            if not 0 <= value <= MAX_TOKENS:
                return False
        # Labels and nested objects in details are not token counts; any other number must be one
        # (a float, a bool), and so must every field tollway reads.
        elif value is not None and (key in counts or isinstance(value, int | float)):
            return False
    return True


def _section(usage: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = usage.get(name)
    # A decoded JSON object is a dict: that check first (an ABC's `isinstance` is a Python call).
    return value if type(value) is dict or (value is not None and isinstance(value, Mapping)) else {}


def _either(first: Any, section: Mapping[str, Any], *names: str) -> int | None:
    """`first`, else the first of `names` in `section` that is there (every one a valid count)."""
    if first is not None:
        return int(first)
    for name in names:
        value = section.get(name)
        if value is not None:
            return int(value)
    return None


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
    cache_write = _either(
        prompt_details.get("cache_write_tokens"),
        prompt_details,
        "cache_creation_tokens",
        "cache_creation_input_tokens",
    )
    if cache_write is None:
        cache_write = _either(
            usage.get("cache_creation_input_tokens"), usage, "cache_creation_tokens", "cache_write_tokens"
        )
    if cache_write is None and by_lifetime:  # when the upstream gives no total
        cache_write = sum(by_lifetime)
    return ReportedUsage(
        prompt=_either(usage.get("prompt_tokens"), usage, "input_tokens"),
        completion=_either(usage.get("completion_tokens"), usage, "output_tokens"),
        cached=_either(
            prompt_details.get("cached_tokens"), usage, "cache_read_input_tokens", "prompt_cache_hit_tokens"
        ),
        cache_write=cache_write,
        reasoning=_either(completion_details.get("reasoning_tokens"), usage, "reasoning_tokens"),
        raw=usage,
        cache_write_1h=_either(
            prompt_details.get("cache_write_1h_tokens"), creation, "ephemeral_1h_input_tokens"
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
