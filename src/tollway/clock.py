"""Time as tollway stores it: integer microseconds since the epoch, UTC."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

__all__ = ["iso", "now_us"]


def now_us() -> int:
    return time.time_ns() // 1000


def iso(us: int) -> str:
    """Microseconds since the epoch as ISO 8601 UTC, e.g. 2026-11-22T04:30:00.123456Z."""
    # Integer arithmetic: a float of the seconds would be microseconds off far from 1970.
    return (_EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
