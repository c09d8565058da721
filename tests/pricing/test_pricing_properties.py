"""Properties of the cost functions for arbitrary rates and token counts (Hypothesis)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext

from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.pricing import Price, cost_nanos, cost_usd, make_price, worst_case_nanos

MAX_TOKENS = 10**9


def decimal_text(scaled: int, places: int, pad: int) -> str:
    """`scaled` / 10**places as a plain decimal string, with `pad` extra trailing zeros."""
    whole, frac = divmod(scaled, 10**places)
    digits = f"{frac:0{places}d}".rstrip("0") + "0" * pad
    return f"{whole}.{digits}" if digits else str(whole)


rate_text = st.builds(
    decimal_text,
    st.one_of(st.integers(0, 10_000 * 10**12), st.integers(0, 10**6)),  # also tiny rates
    st.just(12),
    st.integers(0, 2),
)
fee_text = st.builds(decimal_text, st.integers(0, 100 * 10**9), st.just(9), st.integers(0, 2))
optional_rate = st.none() | rate_text


@st.composite
def prices(draw: st.DrawFn) -> tuple[Price, dict[str, str]]:
    """A price and the strings it was made from, with the defaults resolved independently."""
    given_rates = {
        "input": draw(rate_text),
        "output": draw(rate_text),
        "cached_input": draw(optional_rate),
        "cache_write": draw(optional_rate),
        "reasoning": draw(optional_rate),
        "request": draw(fee_text),
        "cache_write_1h": draw(optional_rate),
    }
    price = make_price("m", 0, **given_rates)
    resolved = {name: text for name, text in given_rates.items() if text is not None}
    resolved.setdefault("cached_input", resolved["input"])
    resolved.setdefault("cache_write", resolved["input"])
    resolved.setdefault("cache_write_1h", resolved["cache_write"])
    resolved.setdefault("reasoning", resolved["output"])
    return price, resolved


@dataclass(frozen=True)
class Counts:
    prompt: int
    completion: int
    cached: int
    cache_write: int
    reasoning: int
    cache_write_1h: int  # a part of cache_write

    def kwargs(self) -> dict[str, int]:
        return dict(self.__dict__)


@st.composite
def counts(draw: st.DrawFn, max_tokens: int = MAX_TOKENS) -> Counts:
    prompt = draw(st.integers(0, max_tokens))
    cached = draw(st.integers(0, prompt))
    cache_write = draw(st.integers(0, prompt - cached))
    cache_write_1h = draw(st.integers(0, cache_write))
    completion = draw(st.integers(0, max_tokens))
    reasoning = draw(st.integers(0, completion))
    return Counts(prompt, completion, cached, cache_write, reasoning, cache_write_1h)


def spec_formula_nanos(rates: dict[str, str], c: Counts) -> Decimal:
    """SPEC §2 written out once more from the raw strings: no Price, no scaled integers."""
    r = {name: Decimal(text) for name, text in rates.items()}
    with localcontext() as ctx:
        ctx.prec = 100
        usd = r["request"] + (
            (c.prompt - c.cached - c.cache_write) * r["input"]
            + c.cached * r["cached_input"]
            + (c.cache_write - c.cache_write_1h) * r["cache_write"]
            + c.cache_write_1h * r["cache_write_1h"]
            + (c.completion - c.reasoning) * r["output"]
            + c.reasoning * r["reasoning"]
        ) / Decimal(1_000_000)
        return usd.quantize(Decimal("1e-9"), rounding=ROUND_HALF_UP) * 10**9


@settings(max_examples=500)
@given(priced=prices(), c=counts())
def test_integer_cost_equals_the_decimal_formula(priced: tuple[Price, dict[str, str]], c: Counts) -> None:
    price, rates = priced
    nanos = cost_nanos(price, **c.kwargs())
    assert isinstance(nanos, int)
    assert nanos >= 0
    assert cost_usd(price, **c.kwargs()) * 10**9 == nanos
    assert spec_formula_nanos(rates, c) == nanos


@settings(max_examples=300)
@given(
    priced=prices(),
    c=counts(),
    more_prompt=st.integers(0, MAX_TOKENS),
    more_completion=st.integers(0, MAX_TOKENS),
    more_1h=st.integers(0, MAX_TOKENS),
)
def test_more_tokens_never_cost_less(
    priced: tuple[Price, dict[str, str]], c: Counts, more_prompt: int, more_completion: int, more_1h: int
) -> None:
    price, _ = priced
    base = cost_nanos(price, **c.kwargs())
    longer_prompt = c.kwargs() | {"prompt": c.prompt + more_prompt}
    longer_completion = c.kwargs() | {"completion": c.completion + more_completion}
    assert cost_nanos(price, **longer_prompt) >= base
    assert cost_nanos(price, **longer_completion) >= base
    # More 1-hour cache writes, as extra prompt tokens (the rest of the split unchanged), never cost less.
    more_1h_writes = c.kwargs() | {
        "prompt": c.prompt + more_1h,
        "cache_write": c.cache_write + more_1h,
        "cache_write_1h": c.cache_write_1h + more_1h,
    }
    assert cost_nanos(price, **more_1h_writes) >= base


@settings(max_examples=300)
@given(priced=prices(), c=counts())
def test_worst_case_covers_every_split(priced: tuple[Price, dict[str, str]], c: Counts) -> None:
    price, _ = priced
    bound = worst_case_nanos(price, c.prompt, c.completion)
    assert bound >= cost_nanos(price, **c.kwargs())
    # The extreme splits: all tokens in one class each.
    for split in (
        {"cached": c.prompt, "cache_write": 0, "reasoning": c.completion},
        {"cached": 0, "cache_write": c.prompt, "reasoning": 0},
        {"cached": 0, "cache_write": c.prompt, "cache_write_1h": c.prompt, "reasoning": 0},
        {"cached": 0, "cache_write": 0, "reasoning": 0},
    ):
        assert bound >= cost_nanos(price, c.prompt, c.completion, **split)
    # A request that uses its whole bound at the dearest rates settles to exactly the bound.
    dearest = max(
        ("input", price.input_atto),
        ("cached_input", price.cached_input_atto),
        ("cache_write", price.cache_write_atto),
        ("cache_write_1h", price.cache_write_1h_atto),
        key=lambda item: item[1],
    )[0]
    split = {
        "input": {},
        "cached_input": {"cached": c.prompt},
        "cache_write": {"cache_write": c.prompt},
        "cache_write_1h": {"cache_write": c.prompt, "cache_write_1h": c.prompt},
    }[dearest]
    reasoning = c.completion if price.reasoning_atto > price.output_atto else 0
    assert bound == cost_nanos(price, c.prompt, c.completion, reasoning=reasoning, **split)


@given(scaled=st.integers(0, 10_000 * 10**12), pad=st.integers(0, 3))
def test_rate_scaling_is_exact(scaled: int, pad: int) -> None:
    text = decimal_text(scaled, 12, pad)
    price = make_price("m", 0, input=text, output="0")
    assert price.input_atto == scaled
    assert price.input == Decimal(text)
    assert Decimal(price.input_atto) == price.input * 10**12
