"""Knob parsing: model-name options, the body's `mock` object, and validation."""

from __future__ import annotations

from typing import Any

import pytest

from tollway.mock_upstream.behaviour import DEFAULT, Behaviour, model_options, parse_scalar, resolve
from tollway.mock_upstream.errors import BadRequest
from tollway.mock_upstream.text import WORDS, words


@pytest.mark.parametrize(
    ("text", "expected"),
    [("20", 20), ("-3", -3), ("1.5", 1.5), ("true", True), ("False", False), ("absent", "absent")],
)
def test_parse_scalar_tries_int_float_bool_then_str(text: str, expected: object) -> None:
    value = parse_scalar(text)
    assert value == expected
    assert type(value) is type(expected)


def test_model_options_read_after_the_colon() -> None:
    assert model_options("demo:usage=absent,chunks=64,ttft_ms=20.5") == {
        "usage": "absent",
        "chunks": 64,
        "ttft_ms": 20.5,
    }


@pytest.mark.parametrize("model", ["gpt-4o", "ft:gpt-4o:my-org", "demo:", "demo"])
def test_model_names_without_options(model: str) -> None:
    assert model_options(model) == {}


def test_malformed_model_option_is_rejected() -> None:
    with pytest.raises(BadRequest, match="oops"):
        model_options("demo:chunks=2,oops")


def test_no_knobs_gives_the_defaults() -> None:
    assert resolve("gpt-4o", None) is DEFAULT
    assert DEFAULT.chunks == 8
    assert DEFAULT.usage == "present"
    assert DEFAULT.sse_styles == frozenset({"lf"})


def test_body_knobs_override_the_model_name() -> None:
    behaviour = resolve("demo:chunks=4,usage=absent,tool_call=true", {"chunks": 2, "chunk_delay_ms": 5})
    assert behaviour == Behaviour(chunks=2, usage="absent", tool_call=True, chunk_delay_ms=5.0)


def test_unknown_knob_is_named() -> None:
    with pytest.raises(BadRequest) as info:
        resolve("demo:bogus=1", None)
    assert "'bogus'" in info.value.message
    assert info.value.param == "mock.bogus"
    with pytest.raises(BadRequest, match="'nope'"):
        resolve("gpt-4o", {"nope": True})


@pytest.mark.parametrize(
    "knobs",
    [
        {"chunks": -1},
        {"chunks": "many"},
        {"fail": 200},
        {"fail": True},
        {"usage": "sometimes"},
        {"cache_write_field": "cache_misc"},
        {"sse_style": "crlf+wobbly"},
        {"ttft_ms": -5},
    ],
)
def test_bad_knob_values_are_rejected(knobs: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        resolve("gpt-4o", knobs)


def test_mock_field_must_be_an_object() -> None:
    with pytest.raises(BadRequest, match="mock"):
        resolve("gpt-4o", ["chunks"])


def test_sse_styles_combine_with_plus_or_a_list() -> None:
    assert resolve("demo:sse_style=crlf+split", None).sse_styles == frozenset({"crlf", "split"})
    assert resolve("gpt-4o", {"sse_style": ["multiline", "no_done"]}).sse_styles == {"multiline", "no_done"}


def test_words_cycle_deterministically() -> None:
    assert words(3) == [" the", " of", " and"]
    assert words(len(WORDS) + 1)[-1] == " the"
    assert all(w.startswith(" ") and w[1:].isalpha() for w in WORDS)
