"""How figures are written on the pages: rounded for reading, exact on hover.

Pure functions over integers: nano-USD never pass through a float.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tollway.money import NANOS_PER_USD, format_usd

__all__ = ["day_text", "exact_usd", "rounded_usd", "time_text", "tokens_text"]

_CENT = NANOS_PER_USD // 100
_MICRO = NANOS_PER_USD // 1_000_000


def _round_half_up(nanos: int, unit: int) -> int:
    """abs(nanos) to a whole number of `unit`s, halves away from zero."""
    return (abs(nanos) + unit // 2) // unit


def rounded_usd(nanos: int) -> str:
    """`$1,234.57`; amounts under a cent keep six places (`$0.000123`), so they do not read as zero."""
    sign = "-" if nanos < 0 else ""
    if nanos != 0 and abs(nanos) < _CENT:
        micros = _round_half_up(nanos, _MICRO)
        if micros == 0:  # under a millionth of a dollar: all nine places
            return f"{sign}${format_usd(abs(nanos))}"
        return f"{sign}$0.{micros:06d}"
    cents = _round_half_up(nanos, _CENT)
    return f"{sign}${cents // 100:,}.{cents % 100:02d}"


def exact_usd(nanos: int) -> str:
    """The exact amount, nine places: what the API's `_usd` fields say."""
    return f"{format_usd(nanos)} USD"


def tokens_text(count: int) -> str:
    return f"{count:,}"


def day_text(day: int) -> str:
    """A UTC day number (days since 1970-01-01) as YYYY-MM-DD."""
    return datetime.fromtimestamp(day * 86_400, tz=UTC).strftime("%Y-%m-%d")


def time_text(us: int) -> str:
    """Microseconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC`."""
    return datetime.fromtimestamp(us // 1_000_000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
