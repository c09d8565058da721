"""The exact cost of one request (SPEC §2), in whole nano-dollars.

    uncached = prompt - cached - cache_write
    visible  = completion - reasoning
    cost_usd = request + (uncached*input + cached*cached_input
                          + (cache_write - cache_write_1h)*cache_write
                          + cache_write_1h*cache_write_1h_rate
                          + visible*output + reasoning*reasoning) / 1_000_000

rounded once, half up, to a whole nano-dollar.  `cache_write` is every token written to a cache
(part of `prompt`); `cache_write_1h` is the part of it written to a 1-hour cache (Anthropic),
billed at its own rate, so the rest of the writes (the 5-minute ones) are billed at `cache_write`.

`cost_nanos` is the fast path the ledger uses; `cost_usd` is the same formula evaluated
literally with `Decimal`, the reference the tests hold `cost_nanos` to.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, Inexact, localcontext

from tollway.pricing.price import Price
from tollway.pricing.rates import ATTO_PER_NANO

__all__ = ["cost_nanos", "cost_usd", "worst_case_nanos"]

_HALF_NANO_ATTO = ATTO_PER_NANO // 2
_NANO = Decimal("1e-9")
_MILLION = Decimal(1_000_000)


def cost_nanos(
    price: Price,
    prompt: int,
    completion: int,
    cached: int = 0,
    cache_write: int = 0,
    reasoning: int = 0,
    *,
    cache_write_1h: int = 0,
) -> int:
    """The cost in nano-dollars, with integer arithmetic only; equal to `cost_usd` x 1e9.

    Why this is exact: a rate r (USD per 1M tokens, <= 12 decimals) is stored as r x 10**12,
    an integer, which is the price of one token in atto-dollars (1e-18 USD).  So
    tokens x rate_atto is the token cost in atto-dollars exactly, the request fee in nanos
    x 10**9 is atto-dollars too, and the sum N is the whole cost in atto-dollars with nothing
    rounded.  One nano-dollar is 10**9 atto-dollars; N >= 0, so floor((N + 10**9 / 2) / 10**9)
    is rounding half up, done once, at the end.
    """
    uncached, visible = _split(prompt, completion, cached, cache_write, reasoning, cache_write_1h)
    atto = (
        uncached * price.input_atto
        + cached * price.cached_input_atto
        + (cache_write - cache_write_1h) * price.cache_write_atto
        + cache_write_1h * price.cache_write_1h_atto
        + visible * price.output_atto
        + reasoning * price.reasoning_atto
        + price.request_atto
    )
    return _round_half_up(atto)


def cost_usd(
    price: Price,
    prompt: int,
    completion: int,
    cached: int = 0,
    cache_write: int = 0,
    reasoning: int = 0,
    *,
    cache_write_1h: int = 0,
) -> Decimal:
    """The reference: SPEC §2's formula on the Decimal rates, quantized half up to 1e-9 USD."""
    uncached, visible = _split(prompt, completion, cached, cache_write, reasoning, cache_write_1h)
    with localcontext() as ctx:
        # Ample precision, and a trap so that any hidden rounding before the final one fails loudly.
        ctx.prec = 200
        ctx.traps[Inexact] = True
        tokens_usd = (
            uncached * price.input
            + cached * price.cached_input
            + (cache_write - cache_write_1h) * price.cache_write
            + cache_write_1h * price.cache_write_1h
            + visible * price.output
            + reasoning * price.reasoning
        ) / _MILLION
        exact = price.request + tokens_usd
        ctx.traps[Inexact] = False
        return exact.quantize(_NANO, rounding=ROUND_HALF_UP)


def worst_case_nanos(price: Price, prompt_tokens_bound: int, output_tokens_bound: int) -> int:
    """An upper bound on `cost_nanos` for any request within these token bounds, for reservations.

    Every prompt token is charged at the dearest prompt rate and every output token at the
    dearest completion rate, so no split into cached / cache-write (5-minute or 1-hour) /
    reasoning tokens can cost
    more.  Rounding is the same half-up as `cost_nanos`, which is monotone, so the bound holds
    after rounding too, and a request that does use its whole bound settles to exactly the hold.
    """
    if prompt_tokens_bound < 0 or output_tokens_bound < 0:
        raise ValueError("token bounds must not be negative")
    prompt_rate = max(
        price.input_atto, price.cached_input_atto, price.cache_write_atto, price.cache_write_1h_atto
    )
    output_rate = max(price.output_atto, price.reasoning_atto)
    atto = prompt_tokens_bound * prompt_rate + output_tokens_bound * output_rate + price.request_atto
    return _round_half_up(atto)


def _split(
    prompt: int, completion: int, cached: int, cache_write: int, reasoning: int, cache_write_1h: int
) -> tuple[int, int]:
    """(uncached prompt tokens, visible completion tokens); ValueError if the counts are inconsistent."""
    if min(prompt, completion, cached, cache_write, reasoning, cache_write_1h) < 0:
        raise ValueError("token counts must not be negative")
    if cache_write_1h > cache_write:
        raise ValueError(f"cache_write_1h ({cache_write_1h}) exceeds cache_write ({cache_write})")
    if cached + cache_write > prompt:
        raise ValueError(f"cached ({cached}) + cache_write ({cache_write}) exceed prompt ({prompt})")
    if reasoning > completion:
        raise ValueError(f"reasoning ({reasoning}) exceeds completion ({completion})")
    return prompt - cached - cache_write, completion - reasoning


def _round_half_up(atto: int) -> int:
    return (atto + _HALF_NANO_ATTO) // ATTO_PER_NANO
