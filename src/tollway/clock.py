"""Time as tollway stores it: integer microseconds since the epoch, UTC."""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["iso", "now_us"]


def now_us() -> int:
    return time.time_ns() // 1000


def iso(us: int) -> str:
    """Microseconds since the epoch as ISO 8601 UTC, e.g. 2026-11-22T04:30:00.123456Z."""
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
