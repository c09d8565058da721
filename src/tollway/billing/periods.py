"""Spend-limit periods, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["period_start_us"]


def period_start_us(period: str, now_us: int) -> int | None:
    """When the current `day` or `month` began (µs since the epoch); None for `total`."""
    if period == "total":
        return None
    now = datetime.fromtimestamp(now_us / 1_000_000, tz=UTC)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        start = start.replace(day=1)
    elif period != "day":
        raise ValueError(f"unknown spend-limit period {period!r}")
    return int(start.timestamp()) * 1_000_000
