"""What a chat completion says, its usage numbers, and the non-streaming response body."""

from __future__ import annotations

from typing import Any

import msgspec

from tollway.mock_upstream.asgi import encode
from tollway.mock_upstream.behaviour import Behaviour
from tollway.mock_upstream.errors import BadRequest
from tollway.mock_upstream.text import REASONING_OFFSET, words

CREATED = 1700000000
MAX_N = 128
# Bounds on one response's size whatever `n` multiplies: content chunks and content characters.
MAX_CHOICE_CHUNKS = 100_000
MAX_OUTPUT_CHARS = 8_000_000
REASONING_WORDS = 3
TOOL_CALL_ID = "call_mock_1"
TOOL_NAME = "get_weather"
# Streamed in exactly these pieces; joined they are the arguments of the non-streaming tool call.
TOOL_ARGUMENT_PIECES: tuple[str, ...] = ('{"city"', ': "Par', 'is"}')


class Plan(msgspec.Struct, frozen=True):
    """Everything one completion will contain, whether it is streamed or not."""

    id: str
    model: str
    n: int
    reasoning: list[str]
    # Text words, the echoed body, or the tool call's argument pieces: one element per streamed chunk.
    pieces: list[str]
    tool_call: bool
    finish_reason: str
    # Whether the response reports usage at all, and what it reports (any JSON value under usage_override).
    has_usage: bool
    usage: Any


def estimate_prompt_tokens(messages: object) -> int:
    if not isinstance(messages, list):
        return 0
    chars = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                text = part.get("text") if isinstance(part, dict) else None
                if isinstance(text, str):
                    chars += len(text)
    return 5 * len(messages) + chars // 4


def choice_count(body: dict[str, Any]) -> int:
    n = body.get("n")
    if n is None:
        return 1
    if type(n) is not int or not 1 <= n <= MAX_N:
        raise BadRequest(f"`n` must be an integer between 1 and {MAX_N}", "n", "invalid_value")
    return n


def _token_limit(body: dict[str, Any]) -> int | None:
    limits = [value for key in ("max_completion_tokens", "max_tokens") if type(value := body.get(key)) is int]
    return max(0, min(limits)) if limits else None


def build_usage(behaviour: Behaviour, prompt: int, completion: int, reasoning: int) -> dict[str, Any]:
    prompt_details: dict[str, Any] = {"cached_tokens": behaviour.cached_tokens}
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }
    written = behaviour.cache_write_tokens
    if written is not None:
        field = behaviour.cache_write_field
        # Anthropic-style gateways report cache writes at the top level; OpenAI-style ones in the details.
        (usage if field == "cache_creation_input_tokens" else prompt_details)[field] = written
    return usage


def build_plan(body: dict[str, Any], behaviour: Behaviour, completion_id: str) -> Plan:
    n = choice_count(body)
    finish_reason = "stop"
    if behaviour.tool_call:
        pieces = list(TOOL_ARGUMENT_PIECES)
        finish_reason = "tool_calls"
        generated = len(pieces)
    elif behaviour.echo:
        pieces = [encode(body).decode()]
        # Roughly what a tokenizer would say, so an echoed request doesn't look free.
        generated = max(1, len(pieces[0]) // 4)
    else:
        count = behaviour.chunks
        limit = _token_limit(body)
        if limit is not None and limit < count:
            count = limit
            finish_reason = "length"
        pieces = words(count)
        generated = count
    reasoning = words(REASONING_WORDS, REASONING_OFFSET) if behaviour.reasoning_text else []
    _check_size(n, reasoning, pieces)
    usage: Any = None
    has_usage = behaviour.usage != "absent"
    if behaviour.usage_override is not msgspec.UNSET:
        usage = behaviour.usage_override
    elif has_usage:
        reasoning_tokens = behaviour.reasoning_tokens
        if reasoning_tokens is None:
            reasoning_tokens = len(reasoning) * n
        completion = behaviour.completion_tokens
        if completion is None:
            completion = generated * n + reasoning_tokens
        prompt = behaviour.prompt_tokens
        if prompt is None:
            prompt = estimate_prompt_tokens(body.get("messages"))
        usage = build_usage(behaviour, prompt, completion, reasoning_tokens)
    model = body.get("model")
    return Plan(
        id=completion_id,
        model=model if isinstance(model, str) else "",
        n=n,
        reasoning=reasoning,
        pieces=pieces,
        tool_call=behaviour.tool_call,
        finish_reason=finish_reason,
        has_usage=has_usage,
        usage=usage,
    )


def _check_size(n: int, reasoning: list[str], pieces: list[str]) -> None:
    chunks = len(reasoning) + len(pieces)
    if n * chunks > MAX_CHOICE_CHUNKS:
        raise BadRequest(
            f"`n` x chunks may be at most {MAX_CHOICE_CHUNKS}; this request asks for {n} x {chunks}",
            "n",
            "invalid_value",
        )
    chars = sum(map(len, reasoning)) + sum(map(len, pieces))
    if n * chars > MAX_OUTPUT_CHARS:
        raise BadRequest(
            f"`n` x the answer's length may be at most {MAX_OUTPUT_CHARS} characters; this request asks "
            f"for {n} x {chars}",
            "n",
            "invalid_value",
        )


def tool_call_start() -> dict[str, Any]:
    return {
        "index": 0,
        "id": TOOL_CALL_ID,
        "type": "function",
        "function": {"name": TOOL_NAME, "arguments": ""},
    }


def completion_body(plan: Plan) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant"}
    if plan.tool_call:
        arguments = "".join(plan.pieces)
        function = {"name": TOOL_NAME, "arguments": arguments}
        message["content"] = None
        message["tool_calls"] = [{"id": TOOL_CALL_ID, "type": "function", "function": function}]
    else:
        message["content"] = "".join(plan.pieces)
    if plan.reasoning:
        message["reasoning_content"] = "".join(plan.reasoning)
    choices = [
        {"index": i, "message": message, "logprobs": None, "finish_reason": plan.finish_reason}
        for i in range(plan.n)
    ]
    body: dict[str, Any] = {
        "id": plan.id,
        "object": "chat.completion",
        "created": CREATED,
        "model": plan.model,
        "choices": choices,
    }
    if plan.has_usage:
        body["usage"] = plan.usage
    return body
