"""Query parameters of the report routes: any text is a value or a 400 naming the parameter."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.clock import iso
from tollway.errors import InvalidRequest
from tollway.reports.params import (
    decode_cursor,
    encode_cursor,
    parse_days,
    parse_filters,
    parse_limit,
    parse_period,
)

T = TypeVar("T")
NOW = 1_790_000_000_000_000  # 2026-09-21, microseconds
INT64_MAX = 2**63 - 1


def outcome(call: Callable[[], T]) -> T | InvalidRequest:
    """What `call` returns, or the 400 it raises (anything else fails the test)."""
    try:
        return call()
    except InvalidRequest as exc:
        return exc


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# --- limit and days -----------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "value"), [("1", 1), ("100", 100), ("007", 7), ("0100", 100)])
def test_limit_accepts_ascii_whole_numbers_in_range(raw: str, value: int) -> None:
    assert parse_limit({"limit": raw}) == value
    assert parse_limit({}) == 20


BAD_NUMBERS = [
    "0",
    "101",
    "",
    "-1",
    "+1",
    " 5",
    "5 ",
    "1.0",
    "1e2",
    "0x10",
    "\u00b2",  # superscript two: str.isdigit() accepts it, int() does not
    "\u2460",  # circled one: the same
    "\u0663",  # Arabic-Indic three: int() reads it as 3
    "\uff15",  # fullwidth five
    "\U0001d7d9",  # mathematical double-struck one
    "9" * 5000,  # past int()'s 4,300-digit limit
    "9" * 40,
    "5\x00",
]


@pytest.mark.parametrize("raw", BAD_NUMBERS)
def test_limit_refuses_anything_else(raw: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_limit({"limit": raw})
    assert caught.value.param == "limit"


@pytest.mark.parametrize("raw", [*BAD_NUMBERS, "367"])
def test_days_refuses_the_same(raw: str) -> None:
    if raw == "101":
        assert parse_days({"days": raw}, 366) == 101
        return
    with pytest.raises(InvalidRequest) as caught:
        parse_days({"days": raw}, 366)
    assert caught.value.param == "days"


@settings(max_examples=300, deadline=None)
@given(raw=st.text(max_size=30) | st.text(alphabet="0123456789\u00b2\u0663\uff15", max_size=30))
def test_any_text_is_a_number_in_range_or_a_400(raw: str) -> None:
    for name, parse in (
        ("limit", lambda: parse_limit({"limit": raw})),
        ("days", lambda: parse_days({"days": raw}, 366)),
    ):
        error = outcome(parse)
        if isinstance(error, InvalidRequest):
            assert error.param == name
        else:
            assert raw.isascii() and raw.isdigit()
            assert error == int(raw)


# --- periods ------------------------------------------------------------------------------------


def test_period_bounds_are_checked_in_utc() -> None:
    last = parse_period({"from": "9999-12-01T00:00:00Z", "to": "9999-12-31T23:59:59Z"}, NOW, 366)
    assert iso(last.to_us) == "9999-12-31T23:59:59.000000Z"
    for query, param in (
        ({"to": "9999-12-31T23:59:59-23:59"}, "to"),  # the year 10000 in UTC
        ({"to": "9999-12-31T23:59:59.999999Z"}, "to"),  # too near it to print
        ({"from": "1970-01-01T00:00:00+01:00"}, "from"),  # 1969 in UTC
        ({"from": "0001-01-01"}, "from"),
        ({"from": "\uff12\uff10\uff12\uff16-01-01"}, "from"),  # fullwidth digits
        ({"from": "2026-01-01" + " " * 100 + "x"}, "from"),
        ({"to": "2026-01-01T00:00:00\x00"}, "to"),
        ({"from": "9" * 5000}, "from"),
    ):
        with pytest.raises(InvalidRequest) as caught:
            parse_period(query, NOW, 366)
        assert caught.value.param == param, query


@settings(max_examples=300, deadline=None)
@given(
    query=st.dictionaries(
        st.sampled_from(["from", "to"]),
        st.one_of(
            st.text(max_size=40),
            st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat()),
            st.dates().map(str),
        ),
    )
)
def test_any_period_is_printable_or_a_400(query: dict[str, str]) -> None:
    period = outcome(lambda: parse_period(query, NOW, 366))
    if isinstance(period, InvalidRequest):
        assert period.param in ("from", "to")
    else:
        assert period.from_us <= period.to_us
        iso(period.from_us)  # what the report puts in its `period` and `links.self`
        iso(period.to_us)


def test_filters_refuse_text_the_database_cannot_hold() -> None:
    assert parse_filters({"model": "gpt-4o", "key_id": "key_1"}).model == "gpt-4o"
    for name, value in (("model", "a\x00"), ("key_id", "\ud800"), ("model", ""), ("model", "m" * 201)):
        with pytest.raises(InvalidRequest) as caught:
            parse_filters({name: value})
        assert caught.value.param == name


# --- cursors ------------------------------------------------------------------------------------


def test_cursors_round_trip() -> None:
    assert decode_cursor(encode_cursor("seq", 41), (str, int)) == ("seq", 41)
    assert decode_cursor(encode_cursor(1_790_000_000_000_000, "req_0a1b"), (int, str)) == (
        1_790_000_000_000_000,
        "req_0a1b",
    )
    assert decode_cursor(encode_cursor("seq", INT64_MAX), (str, int)) == ("seq", INT64_MAX)
    assert decode_cursor(None, (str, int)) is None
    padded = base64.urlsafe_b64encode(b"seq:1").decode()
    assert padded.endswith("=")
    assert decode_cursor(padded, (str, int)) == ("seq", 1)


@pytest.mark.parametrize(
    "raw",
    [
        b64(b"seq:" + str(INT64_MAX + 1).encode()),  # past a signed 64-bit column
        b64(b"seq:" + b"9" * 30),
        b64(b"seq:" + b"9" * 5000),
        b64(f"seq:{-1}".encode()),
        b64("seq:\u00b2".encode()),
        b64("seq:\u0663".encode()),
        b64(b"seq:"),
        b64(b"seq: 1"),
        b64(b"seq\x00:1"),  # NUL, which PostgreSQL cannot take
        b64(b"s\x00q:1"),
        b64(b"seq:1:2"),
        b64(b"seq"),
        b64(b":1"),
        b64(b"\xff\xfe:1"),  # not UTF-8
        b64("s\u00e9q:1".encode()),  # not an id
        "not base64!",
        "c2VxOjE\x00",
        "\ud800",
        "\u0663\u0663\u0663\u0663",
        "A",  # a length base64 cannot have
        "",
        "a" * 1000,
    ],
)
def test_cursors_refuse_anything_this_api_did_not_issue(raw: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_cursor(raw, (str, int))
    assert caught.value.param == "cursor"


@pytest.mark.parametrize("raw", [b64(str(2**64).encode() + b":req_1"), b64(b"1:req\x00"), b64(b"1:")])
def test_log_cursors_too(raw: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_cursor(raw, (int, str))
    assert caught.value.param == "cursor"


@settings(max_examples=300, deadline=None)
@given(
    raw=st.one_of(
        st.text(max_size=60),
        st.binary(max_size=60).map(b64),
        st.tuples(st.text(max_size=10), st.text(max_size=25)).map(
            lambda p: b64(f"{p[0]}:{p[1]}".encode("utf-8", "surrogatepass"))
        ),
    ),
    kinds=st.sampled_from([(str, int), (int, str)]),
)
def test_any_cursor_is_typed_parts_or_a_400(raw: str, kinds: tuple[type, ...]) -> None:
    parts = outcome(lambda: decode_cursor(raw, kinds))
    if isinstance(parts, InvalidRequest):
        assert parts.param == "cursor"
    else:
        assert parts is not None
        for part, kind in zip(parts, kinds, strict=True):
            assert isinstance(part, kind)
            if isinstance(part, int):
                assert 0 <= part <= INT64_MAX


@settings(max_examples=200, deadline=None)
@given(
    number=st.integers(0, INT64_MAX),
    text=st.from_regex(r"[A-Za-z0-9_\-]{1,64}", fullmatch=True),
)
def test_every_cursor_this_api_issues_decodes(number: int, text: str) -> None:
    assert decode_cursor(encode_cursor(text, number), (str, int)) == (text, number)
    assert decode_cursor(encode_cursor(number, text), (int, str)) == (number, text)
