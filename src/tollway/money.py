"""USD amounts: decimal strings at the edges, integer nano-dollars inside.

A binary float never holds money here: amounts are parsed from strings into
`Decimal` and stored as whole nano-USD (1e-9 USD).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

__all__ = [
    "MAX_BALANCE_NANOS",
    "MAX_REQUEST_COST_NANOS",
    "NANOS_PER_USD",
    "MoneyError",
    "format_usd",
    "parse_usd",
]

NANOS_PER_USD = 1_000_000_000
# Far beyond any real credit, and well inside a signed 64-bit column (9.2e18): the most one amount,
# and the most a workspace's balance, may hold ($1,000,000,000).
MAX_ABS_NANOS = 10**18
MAX_BALANCE_NANOS = MAX_ABS_NANOS
# No single request can cost more than this ($1,000,000); an upstream usage report that would is
# not believed (it is counted instead), so no debit can overflow the ledger's integers.
MAX_REQUEST_COST_NANOS = 10**15


class MoneyError(ValueError):
    pass


def parse_usd(text: object, *, allow_negative: bool = False) -> int:
    """Parse a decimal string like "25.00" into nano-USD, exactly, or raise `MoneyError`."""
    if not isinstance(text, str):
        raise MoneyError('must be a decimal string such as "25.00" (numbers lose precision in JSON)')
    candidate = text.strip()
    if not candidate or len(candidate) > 40 or not all(c in "0123456789.-+" for c in candidate):
        raise MoneyError('must be a plain decimal string such as "25.00"')
    try:
        value = Decimal(candidate)
    except InvalidOperation as exc:
        raise MoneyError('must be a plain decimal string such as "25.00"') from exc
    if not value.is_finite():
        raise MoneyError("must be finite")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -9:
        raise MoneyError("has more than 9 decimal places (the ledger counts whole nano-dollars)")
    nanos = int(value * NANOS_PER_USD)
    if nanos < 0 and not allow_negative:
        raise MoneyError("must not be negative")
    if abs(nanos) > MAX_ABS_NANOS:
        raise MoneyError(f"is too large (the most is {format_usd(MAX_ABS_NANOS)})")
    return nanos


def format_usd(nanos: int) -> str:
    """Nano-USD as a decimal string with all nine places, e.g. 1500000 -> "0.001500000"."""
    # printf-style: an f-string's `{frac:09d}` goes through `int.__format__`, twice the time.
    return ("-%d.%09d" if nanos < 0 else "%d.%09d") % divmod(abs(nanos), NANOS_PER_USD)
