"""The official openai SDK against tollway and the mock upstream: sync and async, stream and not."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest

from tests.e2e.conftest import UPSTREAM_KEY, Mock, Tollway

WORDS = " the of and to in is it for"  # the mock's 8 default words, one token each
HI = [{"role": "user", "content": "Say hi"}]
# The mock reports prompt_tokens = 5 per message + characters // 4 (= 6 for HI); tiktoken
# counts HI as 3 + 1 ("user") + 2 ("Say hi") + 3 priming = 9 in both encodings.
REPORTED_PROMPT = 6
COUNTED_PROMPT = 9


@pytest.fixture(name="client")
def fixture_client(tollway: Tollway, key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{tollway.url}/v1", api_key=key, max_retries=0) as client:
        yield client


@pytest.fixture(name="aclient")
async def fixture_aclient(tollway: Tollway, key: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=f"{tollway.url}/v1", api_key=key, max_retries=0) as client:
        yield client


def details(usage: Any) -> tuple[int, int, int, int]:
    prompt = usage.prompt_tokens_details.model_dump()  # includes fields the SDK does not model
    return (
        prompt["cached_tokens"],
        prompt["cache_write_tokens"],
        prompt["cache_creation_tokens"],
        usage.completion_tokens_details.reasoning_tokens,
    )


def test_non_stream(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI)  # type: ignore[arg-type]
    completion = raw.parse()
    assert completion.choices[0].message.content == WORDS
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (REPORTED_PROMPT, 8, 14)
    assert details(usage) == (0, 0, 0, 0)
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-tokens-used"] == "14"


@pytest.mark.parametrize("stream_options", [None, {"include_usage": True}, {"include_usage": False}])
def test_stream_always_ends_with_one_usage_chunk(
    client: openai.OpenAI, mock: Mock, stream_options: dict[str, bool] | None
) -> None:
    extra = {} if stream_options is None else {"stream_options": stream_options}
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True, **extra))  # type: ignore[call-overload]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == WORDS
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1
    assert with_usage[0] is chunks[-1]
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (REPORTED_PROMPT, 8)
    forwarded = mock.last_request()
    assert forwarded["body"]["stream_options"]["include_usage"] is True  # type: ignore[index]
    assert forwarded["headers"]["user-agent"].startswith("tollway/")  # type: ignore[index]  # the lean client, the default


async def test_async_non_stream_and_stream(aclient: openai.AsyncOpenAI) -> None:
    completion = await aclient.chat.completions.create(model="gpt-4o-mini", messages=HI)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == WORDS
    assert completion.usage is not None and completion.usage.total_tokens == 14
    stream = await aclient.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)  # type: ignore[arg-type]
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == WORDS
    assert [c.usage.total_tokens for c in chunks if c.usage is not None] == [14]


@pytest.mark.parametrize("model", ["counted", "gpt-4-counted", "mystery-model"])
def test_counted_usage_when_upstream_reports_none(client: openai.OpenAI, model: str) -> None:
    completion = client.chat.completions.create(model=model, messages=HI)  # type: ignore[arg-type]
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (COUNTED_PROMPT, 8)
    chunks = list(client.chat.completions.create(model=model, messages=HI, stream=True))  # type: ignore[call-overload]
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (COUNTED_PROMPT, 8)


def test_provider_without_stream_options_gets_none_and_is_counted(client: openai.OpenAI, mock: Mock) -> None:
    chunks = list(client.chat.completions.create(model="no-stream-options", messages=HI, stream=True))  # type: ignore[call-overload]
    assert "stream_options" not in mock.last_request()["body"]  # type: ignore[operator]
    assert [c.usage.completion_tokens for c in chunks if c.usage is not None] == [8]
    assert chunks[-1].usage.prompt_tokens == COUNTED_PROMPT


@pytest.mark.parametrize(
    "field", ["cache_write_tokens", "cache_creation_tokens", "cache_creation_input_tokens"]
)
@pytest.mark.parametrize("stream", [False, True])
def test_cached_cache_write_and_reasoning_details(client: openai.OpenAI, field: str, stream: bool) -> None:
    knobs = {
        "cached_tokens": 3,
        "cache_write_tokens": 2,
        "cache_write_field": field,
        "reasoning_tokens": 4,
        "prompt_tokens": 50,
    }
    result = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=HI,
        stream=stream,
        extra_body={"mock": knobs},  # type: ignore[call-overload]
    )
    usage = list(result)[-1].usage if stream else result.usage
    assert usage.prompt_tokens == 50
    assert usage.completion_tokens == 12  # 8 words + 4 reasoning
    assert details(usage) == (3, 2, 2, 4)


def test_unknown_fields_and_upstream_credentials(client: openai.OpenAI, mock: Mock) -> None:
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=HI,
        temperature=0.25,  # type: ignore[arg-type]
        extra_body={"vendor_thing": {"nested": [1, 2, {"x": None}]}, "top_k": 7},
    )
    last = mock.last_request()
    body: dict[str, Any] = last["body"]  # type: ignore[assignment]
    assert body["model"] == "demo"
    assert body["vendor_thing"] == {"nested": [1, 2, {"x": None}]}
    assert body["top_k"] == 7 and body["temperature"] == 0.25
    headers: dict[str, str] = last["headers"]  # type: ignore[assignment]
    assert headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_tool_calls(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=HI,
        tools=tools,
        extra_body={"mock": {"tool_call": True}},  # type: ignore[arg-type]
    )
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert (call.function.name, call.function.arguments) == ("get_weather", '{"city": "Paris"}')  # type: ignore[union-attr]
    chunks = list(
        client.chat.completions.create(
            model="counted",
            messages=HI,
            tools=tools,
            stream=True,
            extra_body={"mock": {"tool_call": True}},  # type: ignore[call-overload]
        )
    )
    arguments = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert arguments == '{"city": "Paris"}'
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_n_choices_and_image_parts(client: openai.OpenAI, mock: Mock) -> None:
    content = [
        {"type": "text", "text": "Say hi"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        n=2,
        messages=[{"role": "user", "content": content}],  # type: ignore[list-item]
    )
    assert [c.index for c in completion.choices] == [0, 1]
    assert mock.last_request()["body"]["messages"][0]["content"] == content  # type: ignore[index]


@pytest.mark.parametrize(
    "style", ["crlf", "crlf+split", "multiline", "comments", "no_trailing_blank", "no_done"]
)
def test_awkward_upstream_framing(client: openai.OpenAI, style: str) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=HI,
            stream=True,
            extra_body={"mock": {"sse_style": style}},  # type: ignore[call-overload]
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == WORDS
    assert [c.usage.total_tokens for c in chunks if c.usage is not None] == [14]


def test_fallback_to_the_next_upstream(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="fallback-model", messages=HI)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == WORDS


def test_models_list(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == [
        "gpt-4o-mini",
        "counted",
        "gpt-4-counted",
        "mystery-model",
        "no-stream-options",
        "impatient",
        "dead-model",
        "fallback-model",
        "demo",
        "text-embedding-3-small",
        "claude-test",
        "claude-counted",
    ]
