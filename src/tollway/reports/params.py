"""Query-string parameters of the report routes, validated into plain values (or a 400)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import UTC, datetime

from msgspec import Struct

from tollway.errors import InvalidRequest
from tollway.validation import plain_text

__all__ = ["Filters", "Period", "decode_cursor", "encode_cursor", "parse_days", "parse_limit", "parse_period"]

US_PER_DAY = 86_400_000_000


class Period(Struct, frozen=True):
    """A half-open interval [from_us, to_us) in microseconds since the epoch."""

    from_us: int
    to_us: int


class Filters(Struct, frozen=True):
    model: str | None = None
    key_id: str | None = None


def _instant(raw: str, param: str) -> int:
    text = raw.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRequest(
            f"{param} must be an ISO 8601 date or time, e.g. 2026-11-01 or 2026-11-01T00:00:00Z.", param=param
        ) from exc
    if moment.tzinfo is None:  # a bare date or time is read as UTC
        moment = moment.replace(tzinfo=UTC)
    if not 1970 <= moment.year <= 9999:
        raise InvalidRequest(f"{param} is out of range.", param=param)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_period(query: Mapping[str, str], now_us: int, max_days: int, default_days: int = 30) -> Period:
    to_us = _instant(query["to"], "to") if "to" in query else now_us
    from_us = _instant(query["from"], "from") if "from" in query else to_us - default_days * US_PER_DAY
    if from_us > to_us:
        raise InvalidRequest("from must not be after to.", param="from")
    if to_us - from_us > max_days * US_PER_DAY:
        raise InvalidRequest(f"The period may span at most {max_days} days.", param="from")
    return Period(from_us, to_us)


def parse_days(query: Mapping[str, str], max_days: int, default: int = 30) -> int:
    raw = query.get("days")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= max_days:
        raise InvalidRequest(f"days must be a whole number from 1 to {max_days}.", param="days")
    return int(raw)


def parse_limit(query: Mapping[str, str], maximum: int = 100, default: int = 20) -> int:
    raw = query.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise InvalidRequest(f"limit must be a whole number from 1 to {maximum}.", param="limit")
    return int(raw)


def parse_filters(query: Mapping[str, str]) -> Filters:
    for name in ("model", "key_id"):
        value = query.get(name)
        if value is not None and not 1 <= len(value) <= 200:
            raise InvalidRequest(f"{name} must be 1 to 200 characters.", param=name)
        if value is not None:
            plain_text(value, name)
    return Filters(model=query.get("model"), key_id=query.get("key_id"))


def encode_cursor(*parts: int | str) -> str:
    return base64.urlsafe_b64encode(":".join(str(p) for p in parts).encode()).decode().rstrip("=")


def decode_cursor(raw: str | None, kinds: tuple[type, ...]) -> tuple[int | str, ...] | None:
    """The parts of a cursor this API issued, typed as `kinds`; anything else is a 400."""
    if raw is None:
        return None
    try:
        text = base64.urlsafe_b64decode(raw.encode() + b"=" * (-len(raw) % 4)).decode()
        parts = text.split(":")
        if len(parts) != len(kinds) or any(
            k is int and not p.isdigit() for p, k in zip(parts, kinds, strict=True)
        ):
            raise ValueError(text)
        return tuple(int(p) if kind is int else p for p, kind in zip(parts, kinds, strict=True))
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest("cursor is not one this API returned.", param="cursor") from exc
