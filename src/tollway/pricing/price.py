"""One versioned price entry, with its rates resolved and pre-scaled for exact integer cost."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
from msgspec import Struct

from tollway.pricing.rates import ATTO_PER_NANO, PriceError, parse_rate, parse_request_fee

__all__ = ["Price", "datetime_to_us", "format_us", "make_price"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


class Price(Struct, frozen=True, kw_only=True):
    """A model's rates from `effective_from_us` on.  Build it with `make_price`, which validates.

    The Decimal fields are USD per million tokens (``request``: USD per request), exactly as
    written in the table.  The ``*_atto`` fields are the same rates x 10**12, i.e. atto-dollars
    (1e-18 USD) per token, and ``request_nanos`` is the fee in nano-dollars: integers, so a cost
    is an exact integer sum (see `tollway.pricing.cost`).
    """

    model: str
    effective_from_us: int
    input: Decimal
    cached_input: Decimal
    cache_write: Decimal
    # Tokens written to a 1-hour cache (Anthropic's longer TTL); a part of the cache writes.
    cache_write_1h: Decimal
    output: Decimal
    reasoning: Decimal
    request: Decimal
    id: str
    source: str
    input_atto: int
    cached_input_atto: int
    cache_write_atto: int
    cache_write_1h_atto: int
    output_atto: int
    reasoning_atto: int
    request_nanos: int

    @property
    def effective_from(self) -> str:
        """`effective_from_us` as ISO 8601 UTC, e.g. ``2024-07-18T00:00:00Z``."""
        return format_us(self.effective_from_us)

    @property
    def request_atto(self) -> int:
        return self.request_nanos * ATTO_PER_NANO


def make_price(
    model: str,
    effective_from_us: int,
    *,
    input: object,
    output: object,
    cached_input: object = None,
    cache_write: object = None,
    reasoning: object = None,
    cache_write_1h: object = None,
    request: object = "0",
    source: str = "",
) -> Price:
    """Validate decimal-string rates, resolve the defaults and pre-scale them; `PriceError` if unusable.

    Defaults (SPEC §2): cached_input and cache_write fall back to input, cache_write_1h to
    cache_write (after its own default), reasoning to output.
    """
    if not model or model != model.strip():
        raise PriceError(f"model: {model!r} must be a non-empty name without surrounding spaces")
    in_dec, in_atto = parse_rate("input", input)
    out_dec, out_atto = parse_rate("output", output)
    cached_dec, cached_atto = (
        (in_dec, in_atto) if cached_input is None else parse_rate("cached_input", cached_input)
    )
    write_dec, write_atto = (
        (in_dec, in_atto) if cache_write is None else parse_rate("cache_write", cache_write)
    )
    write_1h_dec, write_1h_atto = (
        (write_dec, write_atto) if cache_write_1h is None else parse_rate("cache_write_1h", cache_write_1h)
    )
    reason_dec, reason_atto = (out_dec, out_atto) if reasoning is None else parse_rate("reasoning", reasoning)
    req_dec, req_nanos = parse_request_fee("request", request)
    return Price(
        model=model,
        effective_from_us=effective_from_us,
        input=in_dec,
        cached_input=cached_dec,
        cache_write=write_dec,
        cache_write_1h=write_1h_dec,
        output=out_dec,
        reasoning=reason_dec,
        request=req_dec,
        id=f"{model}@{format_us(effective_from_us)}",
        source=source,
        input_atto=in_atto,
        cached_input_atto=cached_atto,
        cache_write_atto=write_atto,
        cache_write_1h_atto=write_1h_atto,
        output_atto=out_atto,
        reasoning_atto=reason_atto,
        request_nanos=req_nanos,
    )


def datetime_to_us(moment: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (exact: no float on the way)."""
    if moment.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    return (moment - _EPOCH) // _ONE_US


def format_us(us: int) -> str:
    """Microseconds since the epoch as ISO 8601 UTC with a ``Z``; fractions only when present.

    Exact (timedelta, not float seconds), because it is part of a price's stable id.
    """
    moment = (_EPOCH + us * _ONE_US).replace(tzinfo=None)
    return moment.isoformat() + "Z"


@functools.lru_cache(maxsize=4096)
def rates_text(price: Price) -> str:
    """The rates a usage record keeps, as JSON text (the same for every request at this price)."""
    return msgspec.json.encode(
        {
            "price_id": price.id,
            "input": str(price.input),
            "cached_input": str(price.cached_input),
            "cache_write": str(price.cache_write),
            "cache_write_1h": str(price.cache_write_1h),
            "output": str(price.output),
            "reasoning": str(price.reasoning),
            "request": str(price.request),
        }
    ).decode()
