"""The arithmetic of one window: which limit refuses, what is left, how resets are written."""

from __future__ import annotations

import pytest

from tollway.limits import RateLimits, format_reset
from tollway.limits.rates import Verdict, WindowStats, judge


def test_no_limits_admit_anything() -> None:
    assert judge("key", RateLimits(), WindowStats(10**6, 10**9, 0, 10**4), 10**6) == Verdict()


def test_requests_per_minute_refuses_at_the_limit_and_counts_down_before_it() -> None:
    limits = RateLimits(requests_per_minute=3)
    assert judge("key", limits, WindowStats(0, 0, None, 0), 10).remaining_requests == 2
    assert judge("key", limits, WindowStats(2, 0, 1, 0), 10).remaining_requests == 0
    refused = judge("key", limits, WindowStats(3, 0, 1, 0), 10)
    assert refused.refused == "requests"
    assert refused.message == "Rate limit reached for this key: 3 of 3 requests per minute used."


def test_tokens_per_minute_counts_this_requests_bound() -> None:
    limits = RateLimits(tokens_per_minute=100)
    assert judge("workspace", limits, WindowStats(1, 60, 1, 0), 40) == Verdict(remaining_tokens=0)
    refused = judge("workspace", limits, WindowStats(1, 61, 1, 0), 40)
    assert refused.refused == "tokens"
    assert "61 of 100 tokens per minute used, this request needs up to 40" in refused.message
    never = judge("workspace", limits, WindowStats(0, 0, None, 0), 101)
    assert never.refused == "tokens_never"


def test_concurrency_is_judged_first() -> None:
    limits = RateLimits(requests_per_minute=1, max_concurrent=2)
    assert judge("key", limits, WindowStats(5, 0, 1, 2), 1).refused == "concurrency"
    assert judge("key", limits, WindowStats(0, 0, None, 1), 1) == Verdict(remaining_requests=0)


def test_a_limit_of_zero_refuses_every_request() -> None:
    empty = WindowStats(0, 0, None, 0)
    assert judge("key", RateLimits(requests_per_minute=0), empty, 1).refused == "requests"
    assert judge("key", RateLimits(max_concurrent=0), empty, 1).refused == "concurrency"


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (0, "0ms"),
        (1, "1ms"),
        (999_000, "999ms"),
        (999_001, "1s"),
        (1_500_000, "1.5s"),
        (59_639_000, "59.639s"),
        (60_000_000, "1m0s"),
        (-5, "0ms"),
    ],
)
def test_reset_durations_are_written_like_openais(us: int, text: str) -> None:
    assert format_reset(us) == text
