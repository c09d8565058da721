"""What a rate limit is, and the arithmetic of one window: plain values, no database.

A window is the last 60 seconds, sliding in one-second steps: a request
counts against `requests_per_minute` for the 60 s after the second it was
admitted in, and against
`tokens_per_minute` with its token bound (prompt bound + output cap) until it
is settled, then with the tokens it actually used.  `max_concurrent` counts
requests admitted and not yet settled or released, however old.
"""

from __future__ import annotations

from typing import Any, Final

from msgspec import Struct

__all__ = [
    "LIMIT_FIELDS",
    "NO_LIMITS",
    "WINDOW_US",
    "RateLimits",
    "Verdict",
    "WindowStats",
    "format_reset",
    "judge",
]

WINDOW_US: Final = 60_000_000
LIMIT_FIELDS: Final = ("requests_per_minute", "tokens_per_minute", "max_concurrent")


class RateLimits(Struct, frozen=True, kw_only=True):
    """None: no limit of that kind."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent: int | None = None

    @classmethod
    def of(cls, row: Any) -> RateLimits:
        """From a row (or mapping) holding the three limit columns."""
        return cls(**{name: row[name] for name in LIMIT_FIELDS})

    @property
    def any(self) -> bool:
        return (
            self.requests_per_minute is not None
            or self.tokens_per_minute is not None
            or (self.max_concurrent is not None)
        )

    def columns(self) -> dict[str, int | None]:
        return {name: getattr(self, name) for name in LIMIT_FIELDS}


NO_LIMITS: Final = RateLimits()


class WindowStats(Struct, frozen=True):
    """One subject's (a key's or a workspace's) admissions as they stand."""

    requests: int  # admitted within the window
    tokens: int  # their tokens (bounds while open, actual once settled)
    oldest_us: int | None  # the second (since the epoch) of the oldest admissions within the window
    open: int  # admitted and not yet closed, whatever their age


class Verdict(Struct, frozen=True):
    """Refused: which limit and a message; admitted: the headroom left after this request."""

    refused: str | None = None  # "requests" | "tokens" | "concurrency" | "tokens_never"
    message: str = ""
    remaining_requests: int | None = None
    remaining_tokens: int | None = None


def judge(scope: str, limits: RateLimits, stats: WindowStats, tokens: int) -> Verdict:
    """Whether one more request with a bound of `tokens` fits `limits` given `stats`."""
    if limits.max_concurrent is not None and stats.open >= limits.max_concurrent:
        return Verdict(
            "concurrency",
            f"Rate limit reached for this {scope}: {stats.open} of {limits.max_concurrent} concurrent "
            "requests are in flight.",
        )
    rpm = limits.requests_per_minute
    if rpm is not None and stats.requests >= rpm:
        return Verdict(
            "requests",
            f"Rate limit reached for this {scope}: {stats.requests} of {rpm} requests per minute used.",
        )
    tpm = limits.tokens_per_minute
    if tpm is not None:
        if tokens > tpm:
            return Verdict(
                "tokens_never",
                f"This request needs up to {tokens} tokens (prompt + output cap), more than this {scope}'s "
                f"limit of {tpm} tokens per minute: lower max_tokens or the prompt.",
            )
        if stats.tokens + tokens > tpm:
            return Verdict(
                "tokens",
                f"Rate limit reached for this {scope}: {stats.tokens} of {tpm} tokens per minute used, "
                f"this request needs up to {tokens}.",
            )
    return Verdict(
        remaining_requests=None if rpm is None else rpm - stats.requests - 1,
        remaining_tokens=None if tpm is None else tpm - stats.tokens - tokens,
    )


def format_reset(us: int) -> str:
    """A duration the way OpenAI's `x-ratelimit-reset-*` headers write it: `250ms`, `1.5s`, `1m0s`."""
    ms = max(0, -(-us // 1000))
    if ms < 1000:
        return f"{ms}ms"
    minutes, ms = divmod(ms, 60_000)
    seconds, fraction = divmod(ms, 1000)
    text = f"{seconds}.{fraction:03d}".rstrip("0").rstrip(".") + "s"
    return f"{minutes}m{text}" if minutes else text
