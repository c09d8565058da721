"""The console's pure parts: money on the page, the SVG charts, the forms, the day range."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollway.console.charts import Chart, stacked_bars
from tollway.console.display import exact_usd, rounded_usd
from tollway.console.forms import credit_form, key_form, limits_form, parse_day_range, parse_form
from tollway.errors import InvalidRequest


@pytest.mark.parametrize(
    ("nanos", "shown"),
    [
        (0, "$0.00"),
        (12_345_000_000, "$12.35"),
        (12_344_999_999, "$12.34"),
        (1_234_567_890_000, "$1,234.57"),
        (-2_500_000_000, "-$2.50"),
        (123_456, "$0.000123"),
        (9_999_999, "$0.010000"),
        (10_000_000, "$0.01"),
        (499, "$0.000000499"),
        (-499, "-$0.000000499"),
    ],
)
def test_rounded_usd(nanos: int, shown: str) -> None:
    assert rounded_usd(nanos) == shown


def test_exact_usd_is_the_api_string() -> None:
    assert exact_usd(12_345_678_901) == "12.345678901 USD"
    assert exact_usd(-1) == "-0.000000001 USD"


def chart(values: dict[tuple[int, str], int], days: range = range(20000, 20003)) -> str:
    return stacked_bars(
        Chart(
            svg_id="cost-chart",
            label="x",
            days=days,
            models=sorted({m for _, m in values}),
            values=values,
            attribute="nanos",
            short=rounded_usd,
            exact=exact_usd,
        )
    )


def test_chart_segments_carry_exact_figures() -> None:
    svg = chart({(20000, "a"): 5, (20000, "b"): 10**15, (20002, "a"): 7, (20001, "b"): 0})
    rects = re.findall(r"<rect ([^>]*)>", svg)
    assert len(rects) == 3  # the zero is no segment
    found = {
        (
            re.search(r'data-day="([^"]+)"', r)[1],
            re.search(r'data-model="([^"]+)"', r)[1],  # type: ignore[index]
            int(re.search(r'data-nanos="(\d+)"', r)[1]),
        )
        for r in rects
    }  # type: ignore[index]
    assert found == {("2024-10-04", "a", 5), ("2024-10-04", "b", 10**15), ("2024-10-06", "a", 7)}
    assert "1000000.000000000 USD" in svg
    assert svg.startswith('<svg id="cost-chart"') and "http" not in svg


def test_chart_escapes_model_names() -> None:
    svg = chart({(20000, '<script>"x"'): 1})
    assert "<script>" not in svg and "&lt;script&gt;" in svg


@given(
    st.dictionaries(st.tuples(st.integers(0, 9), st.sampled_from("abc")), st.integers(0, 10**18), max_size=20)
)
def test_chart_geometry_stays_inside_the_view_box(values: dict[tuple[int, str], int]) -> None:
    svg = chart({(20000 + d, m): v for (d, m), v in values.items()}, range(20000, 20010))
    for y, height in re.findall(r' y="([\d.]+)" width="[\d.]+" height="([\d.]+)"', svg):
        assert float(y) >= 0 and float(y) + float(height) <= 260 + 1e-9


def test_empty_chart() -> None:
    svg = chart({}, range(20000, 20000))
    assert "<rect" not in svg and svg.endswith("</svg>")


def test_parse_form() -> None:
    assert parse_form(b"a=1&b=%C3%A9&a=2&c=") == {"a": "1", "b": "é", "c": ""}
    for bad in (b"\xff", b"a=%ff", b"a=%00", b"&".join([b"x=1"] * 100)):
        with pytest.raises(InvalidRequest):
            parse_form(bad)


def test_credit_form() -> None:
    form = credit_form({"amount_usd": " -1.5 ", "idempotency_key": "k", "note": " why "})
    assert (form.amount_nano, form.idempotency_key, form.note) == (-1_500_000_000, "k", "why")
    with pytest.raises(InvalidRequest, match="Amount"):
        credit_form({"amount_usd": "1.2.3", "idempotency_key": "k"})


def test_key_form_reads_like_the_admin_api() -> None:
    body, limit = key_form(
        {"name": "", "spend_limit_usd": "2", "spend_limit_period": "day", "rpm": "5", "tpm": ""}
    )
    assert (body.name, limit, body.spend_limit_period, body.requests_per_minute, body.tokens_per_minute) == (
        "default",
        2_000_000_000,
        "day",
        5,
        None,
    )
    with pytest.raises(InvalidRequest, match="Requests per minute"):
        key_form({"rpm": "5.5"})
    with pytest.raises(InvalidRequest, match="Spend period"):
        key_form({"spend_limit_period": "year"})


def test_limits_form_lifts_empty_fields() -> None:
    assert limits_form({"rpm": "", "tpm": "7", "spend_limit_usd": "", "spend_limit_period": "month"}) == {
        "requests_per_minute": None,
        "tokens_per_minute": 7,
        "max_concurrent": None,
        "spend_limit_period": "month",
        "spend_limit_nano": None,
    }


def test_day_range() -> None:
    assert parse_day_range({}, 20000, 366).days == range(19971, 20001)
    r = parse_day_range({"from": "2026-01-01", "to": "2026-01-08"}, 0, 366)
    assert len(r.days) == 7 and r.from_us == 1767225600 * 1_000_000
    for bad in (
        {"from": "2026-1-1"},
        {"from": "2026-01-08", "to": "2026-01-08"},
        {"to": "x"},
        {"from": "2000-01-01", "to": "2026-01-01"},
    ):
        with pytest.raises(InvalidRequest):
            parse_day_range(bad, 20000, 366)
