"""Request validation: any bytes are a JSON object of bounded depth or a 400 that says what is wrong.

Also the reservation bounds of a chat request, which walk client JSON: no depth or value type may
make them raise.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.billing.bounds import MAX_OUTPUT_TOKENS, media_parts
from tollway.errors import InvalidRequest
from tollway.surfaces.chat_completions import ChatRequest, Message, ParsedChat, parse_chat_request
from tollway.validation import MAX_DEPTH, ascii_int, convert, decode_object, plain_text


def rejected(raw: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        decode_object(raw)
    assert caught.value.status == 400
    return caught.value


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


# --- depth --------------------------------------------------------------------------------------


def test_the_deepest_body_allowed_decodes() -> None:
    # The body object is level 1: MAX_DEPTH - 1 arrays inside it make MAX_DEPTH levels.
    body = decode_object(f'{{"x": {nested(MAX_DEPTH - 1)}}}'.encode())
    assert set(body) == {"x"}


@pytest.mark.parametrize("depth", [MAX_DEPTH, 500, 990, 1_000, 5_000, 200_000])
def test_deeper_bodies_are_a_400_naming_the_field(depth: int) -> None:
    error = rejected(f'{{"model": "m", "tools": {nested(depth)}}}'.encode())
    assert error.code == "invalid_json"
    assert error.param == "tools"
    assert f"more than {MAX_DEPTH} levels deep" in error.message


@pytest.mark.parametrize("depth", [200, 1_000, 100_000])
def test_deep_objects_and_top_level_arrays_too(depth: int) -> None:
    assert rejected(('{"k":' * depth + "1" + "}" * depth).encode()).param == "k"
    # An array that decodes is refused for not being an object; one msgspec cannot follow, as too deep.
    error = rejected(nested(depth).encode())
    assert error.param is None
    assert error.code in ("invalid_json", "invalid_request_body")


def test_deep_content_parts_name_messages() -> None:
    raw = '{"messages": [{"role": "user", "content": [{"type": "text", "x": ' + nested(2_000) + "}]}]}"
    assert rejected(raw.encode()).param == "messages"


def test_brackets_inside_strings_are_not_nesting() -> None:
    text = "[" * 5_000 + "{" * 5_000
    assert decode_object(json.dumps({"content": text, "k": ']\\"['}).encode())["content"] == text


def test_many_shallow_containers_are_fine() -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]} for _ in range(2_000)]}
    assert decode_object(json.dumps(body).encode()) == body


class Node(msgspec.Struct):
    child: Node | None = None


def test_convert_turns_recursion_into_a_400() -> None:
    deep: dict[str, Any] = {}
    for _ in range(100_000):
        deep = {"child": deep}
    with pytest.raises(InvalidRequest) as caught:
        convert(deep, Node)
    assert caught.value.code == "invalid_json"


# --- what is wrong with a body that does not decode --------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escape", "at"),
    [
        (b'{"model": "x", "messages": [{"role": "user", "content": "\\ud800"}]}', "\\ud800", 57),
        (b'{"a": "\\udc00"}', "\\udc00", 7),
        (b'{"a": "x\\ud800\\u0041"}', "\\ud800", 8),
        (b'{"a": "\\uDBFFz"}', "\\uDBFF", 7),
        (b'{"a": "\\\\\\ud800"}', "\\ud800", 9),  # an escaped backslash, then a real escape
        (b'{"a": "\\ud83d\\ude00", "b": "\\ude00"}', "\\ude00", 28),  # a pair, then a lone low half
    ],
)
def test_a_lone_surrogate_escape_is_named_with_its_offset(raw: bytes, escape: str, at: int) -> None:
    assert raw[at : at + 6].decode() == escape
    error = rejected(raw)
    assert error.code == "invalid_json"
    assert f"lone UTF-16 surrogate escape ({escape}) at byte {at}" in error.message
    assert "truncated" not in error.message


def test_an_escaped_backslash_is_text_not_an_escape() -> None:
    assert decode_object(b'{"a": "\\\\ud800"}') == {"a": "\\ud800"}
    assert decode_object(b'{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}


def test_invalid_utf8_is_named_with_its_offset() -> None:
    error = rejected(b'{"content": "caf\xe9"}')
    assert error.code == "invalid_json"
    assert "not valid UTF-8 at byte 16" in error.message


@pytest.mark.parametrize("raw", [b"", b"   ", b"\n\t"])
def test_an_empty_body_says_so(raw: bytes) -> None:
    assert "the body is empty" in rejected(raw).message


def test_a_byte_order_mark_says_so() -> None:
    assert "byte order mark" in rejected(b'\xef\xbb\xbf{"a": 1}').message


@pytest.mark.parametrize(
    ("number", "ok"),
    [("1e308", True), ("1e400", False), ("-1e400", False), ("9" * 4300, True), ("9" * 4301, False)],
)
def test_numbers_out_of_range_are_named_with_their_offset(number: str, ok: bool) -> None:
    raw = f'{{"s": "1e999", "max_tokens": {number}}}'.encode()
    if ok:
        assert "max_tokens" in decode_object(raw)
        return
    error = rejected(raw)
    assert f"number out of range at byte {raw.index(number.encode())}" in error.message
    assert "$[...]" not in error.message


def test_other_errors_keep_msgspecs_words() -> None:
    assert "trailing characters" in rejected(b'{"a": 1} x').message
    assert rejected(b"[1]").code == "invalid_request_body"


def test_a_repeated_key_keeps_the_last_value_for_tollway_and_the_upstream_alike() -> None:
    chat = parse_chat_request(b'{"model": "a", "model": "b", "messages": [{"role": "user"}]}')
    assert chat.request.model == "b"
    assert json.loads(chat.upstream_body("up", include_usage=False))["model"] == "up"


json_text = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
).map(lambda v: json.dumps(v).encode())


@settings(max_examples=300, deadline=None)
@given(
    raw=st.one_of(
        st.binary(max_size=200),
        json_text,
        st.tuples(json_text, st.integers(0, 400), st.binary(min_size=1, max_size=3)).map(
            lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]
        ),
        st.tuples(st.integers(0, 3000), st.sampled_from(["[", '{"a":'])).map(lambda t: t[1].encode() * t[0]),
    )
)
def test_any_bytes_are_an_object_or_a_400(raw: bytes) -> None:
    try:
        body: dict[str, Any] | InvalidRequest = decode_object(raw)
    except InvalidRequest as exc:
        body = exc
    if isinstance(body, InvalidRequest):
        assert body.status == 400
        assert body.code in ("invalid_json", "invalid_request_body")
    else:
        assert isinstance(body, dict)


# --- small checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("7", 7),
        ("007", 7),
        ("1" * 19, int("1" * 19)),
        ("1" * 20, None),
        ("", None),
        ("-1", None),
        ("+1", None),
        (" 1", None),
        ("1.0", None),
        ("\u00b2", None),  # superscript two: isdigit() says yes, int() says no
        ("\u2460", None),  # circled one: the same
        ("\u0663", None),  # Arabic-Indic three: int() reads it as 3
        ("\uff15", None),  # fullwidth five
        ("9" * 5000, None),  # past int()'s 4,300-digit limit
    ],
)
def test_ascii_int(raw: str, value: int | None) -> None:
    assert ascii_int(raw, 19) == value


def test_plain_text() -> None:
    assert plain_text("caf\u00e9 \U0001f600", "name") == "caf\u00e9 \U0001f600"
    for bad in ("a\x00b", "\ud800"):
        with pytest.raises(InvalidRequest) as caught:
            plain_text(bad, "name")
        assert caught.value.param == "name"


def test_convert_names_the_field_and_refuses_nul_in_top_level_text() -> None:
    with pytest.raises(InvalidRequest) as caught:
        convert({"model": "m", "messages": [{"role": 1}]}, ChatRequest)
    assert caught.value.param == "messages[0].role"
    with pytest.raises(InvalidRequest) as caught:
        convert({"model": "m\x00", "messages": [{"role": "user"}]}, ChatRequest)
    assert caught.value.param == "model"
    with pytest.raises(InvalidRequest) as caught:
        convert({"model": "m", "messages": [{"role": "user"}], "n": True}, ChatRequest)
    assert caught.value.param == "n"


# --- reservation bounds on client JSON ----------------------------------------------------------


def parsed(body: dict[str, Any], **fields: Any) -> ParsedChat:
    request = ChatRequest(model="m", messages=[Message(role="user")], **fields)
    return ParsedChat(request=request, body=body)


def test_bounds_walk_any_depth_without_recursing() -> None:
    deep: Any = "text"
    for _ in range(100_000):
        deep = [{"x": deep}]
    chat = parsed({"messages": [{"role": "user", "content": deep}], "tools": [deep]})
    assert chat.prompt_bound() >= len("user") + len("text")
    assert media_parts(chat.body.get("messages")) == 0


@pytest.mark.parametrize("kind", [[], {}, ["image_url"], 1, None, "image_url"])
def test_bounds_take_any_json_as_a_part_type(kind: Any) -> None:
    chat = parsed({"messages": [{"role": "user", "content": [{"type": kind, "text": "abc"}]}]})
    assert media_parts(chat.body.get("messages")) == (1 if kind == "image_url" else 0)
    assert chat.prompt_bound() > 0


def test_bounds_of_text_that_is_not_unicode_are_still_bounds() -> None:
    chat = parsed({"messages": [{"role": "user", "content": "\ud800\ud800"}], "tools": ["\ud800"]})
    assert chat.prompt_bound() >= 8


@pytest.mark.parametrize(("max_tokens", "n"), [(10**4000, 128), (2**53, 1), (2**63, 2), (5, 3)])
def test_the_output_bound_stays_a_printable_number(max_tokens: int, n: int) -> None:
    bound = parsed({}, max_tokens=max_tokens, n=n).output_bound(None)
    assert bound == min(max_tokens * n, MAX_OUTPUT_TOKENS)
    assert len(str(bound)) < 20
