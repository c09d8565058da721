"""Parsing the decimal strings of a price table into exact numbers.

A rate is USD per million tokens.  With at most 12 decimal places, a rate
times 10**12 is a whole number, and that number is also the price of ONE
token in atto-dollars (1e-18 USD): USD/1M tokens x 10**12 = 1e-18 USD/token.
Costs are then sums of integer products, exact by construction.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

__all__ = [
    "ATTO_PER_NANO",
    "MAX_RATE_USD",
    "MAX_REQUEST_USD",
    "RATE_PLACES",
    "REQUEST_PLACES",
    "PriceError",
    "parse_rate",
    "parse_request_fee",
]

RATE_PLACES = 12
REQUEST_PLACES = 9  # the ledger counts whole nano-dollars, so a fee finer than that cannot be billed
MAX_RATE_USD = 10_000  # per million tokens: far above any real model, low enough to catch a typo
MAX_REQUEST_USD = 100
ATTO_PER_NANO = 10**9

# Plain decimals only: no exponent, sign, underscores or spaces, so what the file says is what is billed.
_PLAIN = re.compile(r"[0-9]+(?:\.[0-9]+)?")
# Longer strings are certainly mistakes; the cap also keeps int() far from its digit limit.
_MAX_CHARS = 40


class PriceError(ValueError):
    """One price field is unusable; the message starts with the field's name."""


def parse_rate(field: str, value: object) -> tuple[Decimal, int]:
    """A per-million-token rate as (exact Decimal, atto-dollars per token)."""
    return _parse(field, value, RATE_PLACES, MAX_RATE_USD, "USD per million tokens")


def parse_request_fee(field: str, value: object) -> tuple[Decimal, int]:
    """A fixed per-request fee as (exact Decimal, nano-dollars)."""
    return _parse(field, value, REQUEST_PLACES, MAX_REQUEST_USD, "USD per request")


def _parse(field: str, value: object, places: int, limit: int, unit: str) -> tuple[Decimal, int]:
    if isinstance(value, bool) or not isinstance(value, str):
        if isinstance(value, int | float) and math.isfinite(value):
            # A TOML float is a binary float: 0.1 is already not 0.1 by the time we see it.
            hint = format(Decimal(repr(value)), "f")  # 1e-05 -> 0.00001, the digits the author wrote
            raise PriceError(f'{field}: must be a quoted decimal string, e.g. "{hint}", not a TOML number')
        raise PriceError(f'{field}: must be a quoted decimal string such as "0.15"')
    if len(value) > _MAX_CHARS:
        raise PriceError(f"{field}: {value[:20]!r}... is too long for a price")
    if value.startswith("-") and _PLAIN.fullmatch(value[1:]):
        raise PriceError(f"{field}: must not be negative, got {value!r}")
    if value.lower().lstrip("+-") in ("nan", "inf", "infinity", "snan"):
        raise PriceError(f"{field}: must be finite, got {value!r}")
    if not _PLAIN.fullmatch(value):
        raise PriceError(f'{field}: {value!r} is not a plain decimal string such as "0.15"')
    whole, _, frac = value.partition(".")
    frac = frac.rstrip("0")  # trailing zeros add no precision
    if len(frac) > places:
        raise PriceError(f"{field}: {value!r} has more than {places} decimal places")
    scaled = int(whole) * 10**places + int(frac.ljust(places, "0") or "0")
    if scaled > limit * 10**places:
        raise PriceError(f"{field}: {value!r} is more than {limit} {unit}")
    return Decimal(value), scaled
