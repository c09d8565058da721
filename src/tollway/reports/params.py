"""Query-string parameters of the report routes, validated into plain values (or a 400)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from msgspec import Struct

from tollway.errors import InvalidRequest
from tollway.validation import ascii_int, is_id, plain_text

__all__ = ["Filters", "Period", "decode_cursor", "encode_cursor", "parse_days", "parse_limit", "parse_period"]

US_PER_DAY = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The last instant a report may name: its ISO form must still have a four-digit year once in UTC.
_LAST_US = (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_INSTANT = re.compile(r"[0-9A-Za-z:.,+\- ]{1,64}")  # what ISO 8601 is written with (no NUL: see below)
# Cursor integers go into signed 64-bit columns; a cursor this API returns is far shorter.
_INT64_MAX = 2**63 - 1
_CURSOR_CHARS = 256
_CURSOR = re.compile(r"[A-Za-z0-9_\-]+={0,2}")


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
        # Checked first: fromisoformat takes a NUL after a time ("2026-01-01T00:00:00\x00").
        if _INSTANT.fullmatch(text) is None:
            raise ValueError(text)
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRequest(
            f"{param} must be an ISO 8601 date or time, e.g. 2026-11-01 or 2026-11-01T00:00:00Z.", param=param
        ) from exc
    if moment.tzinfo is None:  # a bare date or time is read as UTC
        moment = moment.replace(tzinfo=UTC)
    # Checked in UTC: 9999-12-31T23:00-05:00 is in the year 10000 there, which nothing can print.
    us = (moment - _EPOCH) // timedelta(microseconds=1)
    if not 0 <= us <= _LAST_US:
        raise InvalidRequest(
            f"{param} is out of range: from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z.", param=param
        )
    return us


def parse_period(query: Mapping[str, str], now_us: int, max_days: int, default_days: int = 30) -> Period:
    to_us = _instant(query["to"], "to") if "to" in query else now_us
    from_us = _instant(query["from"], "from") if "from" in query else to_us - default_days * US_PER_DAY
    if from_us > to_us:
        raise InvalidRequest("from must not be after to.", param="from")
    if to_us - from_us > max_days * US_PER_DAY:
        raise InvalidRequest(f"The period may span at most {max_days} days.", param="from")
    return Period(from_us, to_us)


def _count(query: Mapping[str, str], param: str, maximum: int, default: int) -> int:
    """A whole number from 1 to `maximum` in ASCII digits (leading zeros allowed), or a 400."""
    raw = query.get(param)
    if raw is None:
        return default
    value = ascii_int(raw, 20)
    if value is None or not 1 <= value <= maximum:
        raise InvalidRequest(f"{param} must be a whole number from 1 to {maximum}.", param=param)
    return value


def parse_days(query: Mapping[str, str], max_days: int, default: int = 30) -> int:
    return _count(query, "days", max_days, default)


def parse_limit(query: Mapping[str, str], maximum: int = 100, default: int = 20) -> int:
    return _count(query, "limit", maximum, default)


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
    """The parts of a cursor this API issued, typed as `kinds`; anything else is a 400.

    Integer parts are ASCII digits that fit a signed 64-bit column; text parts are ids.
    """
    if raw is None:
        return None
    invalid = InvalidRequest("cursor is not one this API returned.", param="cursor")
    if len(raw) > _CURSOR_CHARS or _CURSOR.fullmatch(raw) is None:
        raise invalid
    try:
        data = raw.rstrip("=").encode("ascii")
        text = base64.b64decode(data + b"=" * (-len(data) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise invalid from exc
    parts = text.split(":")
    if len(parts) != len(kinds):
        raise invalid
    values: list[int | str] = []
    for part, kind in zip(parts, kinds, strict=True):
        if kind is int:
            number = ascii_int(part, 19)
            if number is None or number > _INT64_MAX:
                raise invalid
            values.append(number)
        else:
            if not is_id(plain_text(part, "cursor")):
                raise invalid
            values.append(part)
    return tuple(values)
