"""Synchronous counting: text, pieces and chat prompts by OpenAI's published rule."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tollway.tokens import ENCODING_NAMES, EncodingError, TokenCounter

# The OpenAI cookbook, "How to count tokens with tiktoken", section 6: the API itself reported
# 129 prompt tokens for gpt-3.5-turbo / gpt-4 (cl100k_base) and 124 for gpt-4o (o200k_base).
COOKBOOK_MESSAGES: list[dict[str, Any]] = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
        "into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities "
        "for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {
                    "type": "string",
                    "description": "The unit of temperature to return",
                    "enum": ["celsius", "fahrenheit"],
                },
            },
            "required": ["location"],
        },
    },
}


@pytest.mark.parametrize(("encoding", "expected"), [("cl100k_base", 129), ("o200k_base", 124)])
def test_cookbook_example_matches_api_reported_prompt_tokens(
    counter: TokenCounter, encoding: str, expected: int
) -> None:
    assert counter.count_prompt(encoding, COOKBOOK_MESSAGES) == expected


def test_cookbook_example_one_token_shorter_with_project(counter: TokenCounter) -> None:
    # Older copies of the example end "... for the client project.": " project" is one token
    # where " deliverable" is two, in both encodings.
    messages = [*COOKBOOK_MESSAGES[:-1], {"role": "user", "content": COOKBOOK_MESSAGES[-1]["content"]}]
    messages[-1]["content"] = messages[-1]["content"].replace("deliverable", "project")
    assert counter.count_prompt("cl100k_base", messages) == 128
    assert counter.count_prompt("o200k_base", messages) == 123


@pytest.mark.parametrize("encoding", ENCODING_NAMES)
def test_hello_world_is_two_tokens(counter: TokenCounter, encoding: str) -> None:
    assert counter.count_text(encoding, "hello world") == 2


def test_cookbook_text_count(counter: TokenCounter) -> None:
    assert counter.count_text("cl100k_base", "tiktoken is great!") == 6


@pytest.mark.parametrize("encoding", ENCODING_NAMES)
def test_empty_text(counter: TokenCounter, encoding: str) -> None:
    assert counter.count_text(encoding, "") == 0
    assert counter.count_pieces(encoding, []) == 0


@pytest.mark.parametrize("encoding", ENCODING_NAMES)
@pytest.mark.parametrize("special", ["<|endoftext|>", "<|endofprompt|>", "<|fim_prefix|>", "<|im_start|>"])
def test_special_token_text_is_ordinary_text(counter: TokenCounter, encoding: str, special: str) -> None:
    enc = counter.encoding(encoding)
    n = counter.count_text(encoding, f"a {special} b")
    assert n > 3  # spelled out in ordinary tokens, not one special token
    assert all(t not in enc._special_tokens.values() for t in enc.encode_ordinary(special))
    assert counter.count_prompt(encoding, [{"role": "user", "content": special}]) > 3 + 3 + 1 + 1


def test_lone_surrogates_do_not_raise(counter: TokenCounter) -> None:
    # JSON "\ud800" decodes to a lone surrogate, which is not encodable as UTF-8.
    assert counter.count_text("o200k_base", "a\ud800b") > 0


def test_count_pieces_joins_before_counting(counter: TokenCounter) -> None:
    pieces = ["hel", "lo", " wor", "ld"]
    assert counter.count_pieces("cl100k_base", pieces) == 2
    assert counter.count_pieces("cl100k_base", iter(pieces)) == 2
    assert sum(counter.count_text("cl100k_base", p) for p in pieces) > 2


def test_unknown_encoding_is_an_encoding_error(counter: TokenCounter) -> None:
    with pytest.raises(EncodingError, match="not loaded"):
        counter.count_text("p50k_base", "x")


def test_counter_loads_by_name_and_dedupes(counter: TokenCounter) -> None:
    only = TokenCounter(["cl100k_base", "cl100k_base"])
    assert only.encoding_names == ("cl100k_base",)
    assert only.count_text("cl100k_base", "tiktoken is great!") == 6
    with pytest.raises(EncodingError):
        only.count_text("o200k_base", "x")
    shared = TokenCounter([counter.encoding("o200k_base")], offload_chars=0)
    assert shared.encoding("o200k_base") is counter.encoding("o200k_base")
    assert shared.offload_chars == 0
    with pytest.raises(ValueError, match="offload_chars"):
        TokenCounter([], offload_chars=-1)


# --- the chat-format rule --------------------------------------------------------------------


def _t(counter: TokenCounter, text: str) -> int:
    return counter.count_text("o200k_base", text)


def test_empty_message_list_is_the_reply_priming(counter: TokenCounter) -> None:
    assert counter.count_prompt("o200k_base", []) == 3
    assert counter.count_prompt("cl100k_base", []) == 3


def test_one_message(counter: TokenCounter) -> None:
    expected = 3 + _t(counter, "user") + _t(counter, "hello world") + 3
    assert counter.count_prompt("o200k_base", [{"role": "user", "content": "hello world"}]) == expected


def test_name_costs_one_more_token(counter: TokenCounter) -> None:
    plain = counter.count_prompt("o200k_base", [{"role": "user", "content": "hi"}])
    named = counter.count_prompt("o200k_base", [{"role": "user", "content": "hi", "name": "bob"}])
    assert named == plain + _t(counter, "bob") + 1


def test_content_parts_count_text_only(counter: TokenCounter) -> None:
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            {"type": "text", "text": "Be brief."},
        ],
    }
    expected = 3 + _t(counter, "user") + _t(counter, "What is in this image?") + _t(counter, "Be brief.") + 3
    assert counter.count_prompt("o200k_base", [message]) == expected


def test_refusal_parts_count(counter: TokenCounter) -> None:
    message = {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't help with that."}]}
    expected = 3 + _t(counter, "assistant") + _t(counter, "I can't help with that.") + 3
    assert counter.count_prompt("o200k_base", [message]) == expected


def test_tool_calls_count_function_name_and_arguments(counter: TokenCounter) -> None:
    arguments = '{"location": "Paris, France"}'
    messages: list[dict[str, Any]] = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "get_current_weather", "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc", "content": "22C, sunny"},
    ]
    expected = (
        3
        + _t(counter, "assistant")
        + _t(counter, "get_current_weather")
        + _t(counter, arguments)
        + 3
        + _t(counter, "tool")
        + _t(counter, "call_abc")
        + _t(counter, "22C, sunny")
        + 3
    )
    assert counter.count_prompt("o200k_base", messages) == expected


def test_legacy_function_call(counter: TokenCounter) -> None:
    message = {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}}
    expected = 3 + _t(counter, "assistant") + _t(counter, "f") + _t(counter, "{}") + 3
    assert counter.count_prompt("o200k_base", [message]) == expected


def test_tools_count_as_compact_json(counter: TokenCounter) -> None:
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    base = counter.count_prompt("o200k_base", messages)
    compact = msgspec.json.encode(WEATHER_TOOL).decode()
    assert '": ' not in compact  # compact, not pretty-printed
    assert counter.count_prompt("o200k_base", messages, [WEATHER_TOOL]) == base + _t(counter, compact)
    assert counter.count_prompt("o200k_base", messages, []) == base


@pytest.mark.parametrize(
    ("encoding", "api_reported", "estimate"), [("o200k_base", 101, 118), ("cl100k_base", 105, 117)]
)
def test_tool_estimate_errs_high_on_cookbook_example(
    counter: TokenCounter, encoding: str, api_reported: int, estimate: int
) -> None:
    # Cookbook section 7: prompt_tokens the API reported for these messages plus WEATHER_TOOL.
    messages = [
        {
            "role": "system",
            "content": "You are a helpful assistant that can answer to questions about the weather.",
        },
        {"role": "user", "content": "What's the weather like in San Francisco?"},
    ]
    counted = counter.count_prompt(encoding, messages, [WEATHER_TOOL])
    assert counted == estimate
    assert counted >= api_reported


@pytest.mark.parametrize(
    "junk_message",
    [
        None,
        "user: hi",
        42,
        ["role", "user"],
        {"role": None, "content": 7},
        {"role": "user", "content": {"text": "not a list"}},
        {"role": "user", "content": [None, 3, "loose", {"type": ["text"]}, {"type": "text", "text": 5}]},
        {"role": "assistant", "tool_calls": "nope"},
        {"role": "assistant", "tool_calls": [None, {"function": "x"}, {"function": {"name": 1}}]},
        {"role": "assistant", "function_call": ["f"]},
        {"name": {"first": "bob"}, 1: "int key", ("t",): None},
    ],
)
def test_junk_is_ignored_not_raised(counter: TokenCounter, junk_message: Any) -> None:
    counted = counter.count_prompt("o200k_base", [junk_message])
    # Only well-formed strings add tokens; mappings still cost the message frame.
    assert counted >= 3
    assert counter.count_prompt("o200k_base", [junk_message, {"role": "user"}]) == counted + 3 + _t(
        counter, "user"
    )


def test_junk_containers_are_ignored(counter: TokenCounter) -> None:
    junk: Any
    for junk in (None, "messages", 5, {"role": "user"}):
        assert counter.count_prompt("o200k_base", junk) == 3
        assert counter.count_prompt("o200k_base", [], junk) == 3


def test_unencodable_tools_are_skipped(counter: TokenCounter) -> None:
    class Opaque:
        pass

    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    tools: list[Any] = [Opaque(), "\ud800", deep, {"ok": True}]
    expected = 3 + _t(counter, '{"ok":true}')
    assert counter.count_prompt("o200k_base", [], tools) == expected
