from __future__ import annotations

import msgspec
import pytest

from tollway.errors import InvalidRequest
from tollway.surfaces.chat_completions import parse_chat_request

MESSAGES = [{"role": "user", "content": "hi"}]


def body(**fields: object) -> bytes:
    return msgspec.json.encode({"model": "m", "messages": MESSAGES, **fields})


def test_valid_request_keeps_unknown_fields() -> None:
    chat = parse_chat_request(body(temperature=0.7, vendor_flag={"x": [1, 2]}, stream=True))
    assert chat.stream
    assert chat.body["vendor_flag"] == {"x": [1, 2]}
    forwarded = msgspec.json.decode(chat.upstream_body("upstream-m", include_usage=True))
    assert forwarded == {
        "model": "upstream-m",
        "messages": MESSAGES,
        "temperature": 0.7,
        "vendor_flag": {"x": [1, 2]},
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_existing_stream_options_are_kept_and_usage_added() -> None:
    chat = parse_chat_request(body(stream=True, stream_options={"include_usage": False, "other": 1}))
    forwarded = msgspec.json.decode(chat.upstream_body("m", include_usage=True))
    assert forwarded["stream_options"] == {"include_usage": True, "other": 1}
    untouched = msgspec.json.decode(chat.upstream_body("m", include_usage=False))
    assert untouched["stream_options"] == {"include_usage": False, "other": 1}


def test_non_stream_is_not_given_stream_options() -> None:
    forwarded = msgspec.json.decode(parse_chat_request(body()).upstream_body("m", include_usage=True))
    assert "stream_options" not in forwarded


def test_content_parts_tools_and_n_are_accepted() -> None:
    parts = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    chat = parse_chat_request(
        msgspec.json.encode(
            {"model": "m", "messages": [{"role": "user", "content": parts}], "tools": tools, "n": 3}
        )
    )
    assert chat.request.n == 3


@pytest.mark.parametrize(
    ("raw", "code", "param"),
    [
        (b"{not json", "invalid_json", None),
        (b"[1, 2]", "invalid_request_body", None),
        (msgspec.json.encode({"messages": MESSAGES}), "missing_required_parameter", "model"),
        (msgspec.json.encode({"model": "m"}), "missing_required_parameter", "messages"),
        (msgspec.json.encode({"model": 5, "messages": MESSAGES}), "invalid_type", "model"),
        (msgspec.json.encode({"model": "", "messages": MESSAGES}), "invalid_value", "model"),
        (body(messages=[]), "invalid_value", "messages"),
        (body(messages="hi"), "invalid_type", "messages"),
        (body(messages=[{"content": "x"}]), "missing_required_parameter", "messages[0].role"),
        (body(messages=[{"role": "user", "content": 5}]), "invalid_type", "messages[0].content"),
        (body(max_tokens=-1), "invalid_value", "max_tokens"),
        (body(max_tokens=0), "invalid_value", "max_tokens"),
        (body(max_tokens="10"), "invalid_type", "max_tokens"),
        (body(max_tokens=True), "invalid_type", "max_tokens"),
        (body(max_completion_tokens=-3), "invalid_value", "max_completion_tokens"),
        (body(n=0), "invalid_value", "n"),
        (body(stream="yes"), "invalid_type", "stream"),
        (body(stream_options=[]), "invalid_type", "stream_options"),
        (body(tools={"type": "function"}), "invalid_type", "tools"),
    ],
)
def test_bad_requests_name_the_param(raw: bytes, code: str, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_chat_request(raw)
    assert info.value.status == 400
    assert info.value.code == code
    assert info.value.param == param
    error = msgspec.json.decode(info.value.body())["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_output_cap_is_the_smaller_of_both_limits() -> None:
    assert parse_chat_request(body(max_tokens=50, max_completion_tokens=20)).output_cap == 20
    assert parse_chat_request(body()).output_cap is None
