"""Cost of one request: worked examples by hand, and the edge cases of rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tollway.pricing import (
    Price,
    bundled_pricing_dir,
    cost_nanos,
    cost_usd,
    load_price_book,
    make_price,
    worst_case_nanos,
)


def rates(
    input: str = "0",
    output: str = "0",
    cached_input: str | None = None,
    cache_write: str | None = None,
    reasoning: str | None = None,
    request: str = "0",
    cache_write_1h: str | None = None,
) -> Price:
    return make_price(
        "m",
        0,
        input=input,
        output=output,
        cached_input=cached_input,
        cache_write=cache_write,
        reasoning=reasoning,
        request=request,
        cache_write_1h=cache_write_1h,
    )


MINI = rates(input="0.15", cached_input="0.075", output="0.60")


def test_gpt_4o_mini_like_example() -> None:
    # (800*0.15 + 200*0.075 + 500*0.60) / 1e6 = (120 + 15 + 300) / 1e6 = 0.000435 USD
    assert cost_nanos(MINI, prompt=1000, completion=500, cached=200) == 435_000
    assert cost_usd(MINI, prompt=1000, completion=500, cached=200) == Decimal("0.000435000")


def test_demo_example_from_the_readme() -> None:
    demo = load_price_book(bundled_pricing_dir()).entries("demo")[0]
    # 0.0001 + (700*1.00 + 200*0.50 + 100*1.25 + 400*2.00 + 100*3.00) / 1e6 = 0.002125 USD
    assert cost_nanos(demo, 1000, 500, cached=200, cache_write=100, reasoning=100) == 2_125_000
    assert cost_usd(demo, 1000, 500, cached=200, cache_write=100, reasoning=100) == Decimal("0.002125000")


def test_each_token_class_has_its_own_rate() -> None:
    price = rates(input="1", cached_input="2", cache_write="4", output="8", reasoning="16")
    per_million = 1_000_000  # one million tokens at a rate of r USD cost r USD
    assert cost_nanos(price, per_million, 0) == 1_000_000_000
    assert cost_nanos(price, per_million, 0, cached=per_million) == 2_000_000_000
    assert cost_nanos(price, per_million, 0, cache_write=per_million) == 4_000_000_000
    assert cost_nanos(price, 0, per_million) == 8_000_000_000
    assert cost_nanos(price, 0, per_million, reasoning=per_million) == 16_000_000_000
    # one token at r USD per million costs r x 1000 nanos
    # cache write: 100 tokens at 4 = 400_000 nanos; the other 900 prompt tokens at 1 = 900_000
    assert cost_nanos(price, 1000, 0, cache_write=100) == 1_300_000
    # reasoning: 300 of 1000 completion tokens at 16, the visible 700 at 8
    assert cost_nanos(price, 0, 1000, reasoning=300) == (300 * 16 + 700 * 8) * 1000


def test_one_hour_cache_writes_are_a_part_of_the_writes_at_their_own_rate() -> None:
    # Claude-Sonnet-like rates: writes to the 5-minute cache at 1.25x input, to the 1-hour one at 2x.
    price = rates(input="3", cached_input="0.30", cache_write="3.75", cache_write_1h="6", output="15")
    # prompt 10_000 = 3_000 uncached + 2_000 cached + 5_000 written (2_000 for 5 minutes, 3_000 for 1 hour)
    # (3000*3 + 2000*0.30 + 2000*3.75 + 3000*6 + 500*15) / 1e6 = (9000 + 600 + 7500 + 18000 + 7500) / 1e6
    assert cost_nanos(price, 10_000, 500, cached=2_000, cache_write=5_000, cache_write_1h=3_000) == 42_600_000
    assert cost_usd(price, 10_000, 500, cached=2_000, cache_write=5_000, cache_write_1h=3_000) == Decimal(
        "0.042600000"
    )
    # All writes 1-hour; no 1-hour writes is the old formula exactly.
    assert cost_nanos(price, 1000, 0, cache_write=1000, cache_write_1h=1000) == 6_000_000
    assert cost_nanos(price, 1000, 0, cache_write=1000) == 3_750_000
    # one token at r USD per million costs r x 1000 nanos
    each = rates(input="1", cached_input="2", cache_write="4", cache_write_1h="32", output="8")
    assert cost_nanos(each, 1_000_000, 0, cache_write=1_000_000, cache_write_1h=1_000_000) == 32_000_000_000
    assert (
        cost_nanos(each, 1000, 0, cache_write=300, cache_write_1h=100)
        == (700 * 1 + 200 * 4 + 100 * 32) * 1000
    )


def test_one_hour_rate_defaults_to_cache_write_then_input() -> None:
    assert rates(input="1", cache_write="1.25").cache_write_1h == Decimal("1.25")
    assert rates(input="1", cache_write="1.25").cache_write_1h_atto == 1_250_000_000_000
    assert rates(input="1").cache_write_1h == Decimal("1")
    # With the default, a 1-hour write costs what any write costs.
    price = rates(input="1", cache_write="1.25")
    assert cost_nanos(price, 100, 0, cache_write=100, cache_write_1h=60) == cost_nanos(
        price, 100, 0, cache_write=100
    )


def test_one_hour_writes_round_once_with_the_rest() -> None:
    # 0.4 nano of 5-minute writes + 0.4 nano of 1-hour writes = 0.8 nano -> 1, not 0 + 0.
    price = rates(cache_write="0.0004", cache_write_1h="0.0004")
    assert cost_nanos(price, 2, 0, cache_write=2, cache_write_1h=1) == 1
    assert cost_usd(price, 2, 0, cache_write=2, cache_write_1h=1) == Decimal("1E-9")
    half = rates(cache_write_1h="0.0005")
    assert cost_nanos(half, 5, 0, cache_write=5, cache_write_1h=5) == 3  # 2.5 -> 3, half up


def test_request_fee_is_added_once() -> None:
    price = rates(input="1", output="1", request="0.0001")
    assert cost_nanos(price, 0, 0) == 100_000
    assert cost_nanos(price, 1000, 1000) == 100_000 + 2_000_000
    assert cost_usd(price, 1000, 1000) == Decimal("0.002100000")


@pytest.mark.parametrize(
    ("rate", "tokens", "nanos"),
    [
        ("0.0005", 1, 1),  # 0.5 nano -> 1 (half up)
        ("0.0005", 3, 2),  # 1.5 -> 2
        ("0.0005", 5, 3),  # 2.5 -> 3 (half-even would give 2)
        ("0.000499999999", 1, 0),  # 0.499999999 -> 0
        ("0.000499999999", 3, 1),  # 1.499999997 -> 1
        ("0.000500000001", 1, 1),
        ("0.000000000001", 10**9, 1),  # 10**9 tokens at 1e-12 USD/1M = 1e-9 USD exactly
        ("0.000000000001", 499_999_999, 0),  # 0.499999999 nano
        ("0.000000000001", 500_000_000, 1),  # exactly 0.5 nano
    ],
)
def test_rounding_half_up_once(rate: str, tokens: int, nanos: int) -> None:
    price = rates(input=rate)
    assert cost_nanos(price, tokens, 0) == nanos
    assert cost_usd(price, tokens, 0) * 10**9 == nanos


def test_rounding_happens_once_not_per_class() -> None:
    # 0.4 nano of input + 0.4 nano of output = 0.8 nano -> 1; rounding each class first would give 0.
    price = rates(input="0.0004", output="0.0004")
    assert cost_nanos(price, 1, 1) == 1


def test_zero_tokens_cost_only_the_fee() -> None:
    assert cost_nanos(MINI, 0, 0) == 0
    assert cost_usd(MINI, 0, 0) == Decimal("0E-9")


@pytest.mark.parametrize(
    "counts",
    [
        {"prompt": -1, "completion": 0},
        {"prompt": 0, "completion": -1},
        {"prompt": 10, "completion": 0, "cached": -1},
        {"prompt": 10, "completion": 0, "cached": 6, "cache_write": 5},
        {"prompt": 10, "completion": 3, "reasoning": 4},
        {"prompt": 10, "completion": 0, "cache_write": 3, "cache_write_1h": 4},
        {"prompt": 10, "completion": 0, "cache_write_1h": 1},
        {"prompt": 10, "completion": 0, "cache_write": 3, "cache_write_1h": -1},
    ],
)
def test_inconsistent_counts_are_refused(counts: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=r"negative|exceed"):
        cost_nanos(MINI, **counts)
    with pytest.raises(ValueError, match=r"negative|exceed"):
        cost_usd(MINI, **counts)


def test_worst_case_uses_the_dearest_rates() -> None:
    price = rates(
        input="1", cached_input="0.5", cache_write="1.25", output="2", reasoning="3", request="0.0001"
    )
    # 1000 prompt tokens at 1.25 + 500 output tokens at 3 + the fee:
    # 1_250_000 + 1_500_000 + 100_000 nanos
    assert worst_case_nanos(price, 1000, 500) == 2_850_000
    assert worst_case_nanos(price, 1000, 500) >= cost_nanos(price, 1000, 500, cache_write=1000, reasoning=500)
    assert worst_case_nanos(price, 1000, 500) == cost_nanos(price, 1000, 500, cache_write=1000, reasoning=500)
    with pytest.raises(ValueError, match="negative"):
        worst_case_nanos(price, -1, 0)


def test_worst_case_counts_the_one_hour_write_rate() -> None:
    price = rates(input="1", cache_write="1.25", cache_write_1h="2", output="2")
    # 1000 prompt tokens at 2 (the 1-hour write rate is the dearest) + 500 output tokens at 2
    assert worst_case_nanos(price, 1000, 500) == 3_000_000
    assert worst_case_nanos(price, 1000, 500) == cost_nanos(
        price, 1000, 500, cache_write=1000, cache_write_1h=1000
    )
