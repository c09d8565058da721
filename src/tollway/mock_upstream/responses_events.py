"""What a mocked Responses API answer contains: its plan, the non-stream body, and the stream's events.

Deterministic: the same request and knobs always give the same answer (ids
carry the mock's request serial).  The knobs are chat's (`behaviour.py`):
`chunks` words of output text (cut short by `max_output_tokens`, which makes
the response `incomplete`), `reasoning_text` (a reasoning item of three
words first), `tool_call` (a `get_weather` function call instead of the
message), `echo`, and the usage knobs, which fill the Responses usage shape
(`input_tokens`, `input_tokens_details.cached_tokens`, `output_tokens`,
`output_tokens_details.reasoning_tokens`).
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum
from typing import Any, NamedTuple

import msgspec

from tollway.mock_upstream.asgi import encode
from tollway.mock_upstream.behaviour import Behaviour
from tollway.mock_upstream.chat import CREATED, REASONING_WORDS, TOOL_ARGUMENT_PIECES, TOOL_CALL_ID, TOOL_NAME
from tollway.mock_upstream.text import REASONING_OFFSET, words

__all__ = [
    "EventKind",
    "ResponsePlan",
    "build_response_plan",
    "estimate_input_tokens",
    "response_body",
    "response_events",
]


class ResponsePlan(msgspec.Struct, frozen=True):
    """Everything one response will contain, whether it is streamed or not."""

    id: str
    serial: int
    model: str
    request: dict[str, Any]
    reasoning: list[str]
    # Text words, the echoed body, or the tool call's argument pieces: one element per streamed delta.
    pieces: list[str]
    tool_call: bool
    incomplete: bool  # cut short by max_output_tokens
    has_usage: bool
    usage: Any


class EventKind(Enum):
    LIFECYCLE = "lifecycle"  # response.created / in_progress: sent at once
    FRAME = "frame"  # items and parts opening (and the reasoning item closing): not paced
    WORD = "word"  # a reasoning delta: paced, not counted as content
    CONTENT = "content"  # an output text or argument delta: paced, counted by cut_after / error_after
    TAIL = "tail"  # what closes the output, and the terminal event


class Event(NamedTuple):
    kind: EventKind
    name: str
    fields: dict[str, Any]  # everything but `type` and `sequence_number`, which the writer adds


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for part in value:
            text = part.get("text") if isinstance(part, dict) else None
            if isinstance(text, str):
                yield text


def estimate_input_tokens(body: dict[str, Any]) -> int:
    """5 per message (instructions, a string input, each input item) + characters // 4, as chat's estimate."""
    messages = chars = 0
    for text in (body.get("instructions"), body.get("input")):
        if isinstance(text, str):
            messages += 1
            chars += len(text)
    given = body.get("input")
    if isinstance(given, list):
        for item in given:
            if isinstance(item, dict):
                messages += 1
                for key in ("content", "output", "arguments"):
                    chars += sum(len(t) for t in _texts(item.get(key)))
    return 5 * messages + chars // 4


def _usage(behaviour: Behaviour, prompt: int, completion: int, reasoning: int) -> dict[str, Any]:
    input_details: dict[str, Any] = {"cached_tokens": behaviour.cached_tokens}
    usage: dict[str, Any] = {
        "input_tokens": prompt,
        "input_tokens_details": input_details,
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }
    written = behaviour.cache_write_tokens
    if written is not None:
        field = behaviour.cache_write_field
        (usage if field == "cache_creation_input_tokens" else input_details)[field] = written
    return usage


def build_response_plan(body: dict[str, Any], behaviour: Behaviour, serial: int) -> ResponsePlan:
    incomplete = False
    if behaviour.tool_call:
        pieces = list(TOOL_ARGUMENT_PIECES)
        generated = len(pieces)
    elif behaviour.echo:
        pieces = [encode(body).decode()]
        generated = max(1, len(pieces[0]) // 4)
    else:
        count = behaviour.chunks
        limit = body.get("max_output_tokens")
        if type(limit) is int and max(limit, 0) < count:
            count = max(limit, 0)
            incomplete = True
        pieces = words(count)
        generated = count
    reasoning = words(REASONING_WORDS, REASONING_OFFSET) if behaviour.reasoning_text else []
    usage: Any = None
    has_usage = behaviour.usage != "absent"
    if behaviour.usage_override is not msgspec.UNSET:
        usage = behaviour.usage_override
    elif has_usage:
        reasoning_tokens = behaviour.reasoning_tokens
        if reasoning_tokens is None:
            reasoning_tokens = len(reasoning)
        completion = behaviour.completion_tokens
        if completion is None:
            completion = generated + reasoning_tokens
        prompt = behaviour.prompt_tokens
        if prompt is None:
            prompt = estimate_input_tokens(body)
        usage = _usage(behaviour, prompt, completion, reasoning_tokens)
    model = body.get("model")
    return ResponsePlan(
        id=f"resp_mock_{serial}",
        serial=serial,
        model=model if isinstance(model, str) else "",
        request=body,
        reasoning=reasoning,
        pieces=pieces,
        tool_call=behaviour.tool_call,
        incomplete=incomplete,
        has_usage=has_usage,
        usage=usage,
    )


def _reasoning_item(plan: ResponsePlan, done: bool) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "reasoning", "id": f"rs_mock_{plan.serial}", "summary": []}
    item["content"] = [{"type": "reasoning_text", "text": "".join(plan.reasoning)}] if done else []
    item["status"] = "completed" if done else "in_progress"
    return item


def _call_item(plan: ResponsePlan, done: bool) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_mock_{plan.serial}",
        "call_id": TOOL_CALL_ID,
        "name": TOOL_NAME,
        "arguments": "".join(plan.pieces) if done else "",
        "status": "completed" if done else "in_progress",
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(plan: ResponsePlan, done: bool) -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"msg_mock_{plan.serial}",
        "status": "completed" if done else "in_progress",
        "role": "assistant",
        "content": [_text_part("".join(plan.pieces))] if done else [],
    }


def _output(plan: ResponsePlan) -> list[dict[str, Any]]:
    items = [_reasoning_item(plan, True)] if plan.reasoning else []
    items.append(_call_item(plan, True) if plan.tool_call else _message_item(plan, True))
    return items


def _status(plan: ResponsePlan) -> str:
    return "incomplete" if plan.incomplete else "completed"


def response_body(plan: ResponsePlan, *, final: bool = True) -> dict[str, Any]:
    """The response object: finished (the non-stream body, the terminal event's) or just created."""
    request = plan.request
    tools = request.get("tools")
    limit = request.get("max_output_tokens")
    body: dict[str, Any] = {
        "id": plan.id,
        "object": "response",
        "created_at": CREATED,
        "status": _status(plan) if final else "in_progress",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if final and plan.incomplete else None,
        "instructions": request.get("instructions") if isinstance(request.get("instructions"), str) else None,
        "max_output_tokens": limit if type(limit) is int else None,
        "model": plan.model,
        "output": _output(plan) if final else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": tools if isinstance(tools, list) else [],
        "top_p": 1.0,
        "truncation": "disabled",
        "metadata": {},
    }
    if final:
        body["completed_at"] = CREATED
        if plan.has_usage:
            body["usage"] = plan.usage
    else:
        body["usage"] = None
    return body


def response_events(plan: ResponsePlan) -> Iterator[Event]:
    """The stream's events in order, as OpenAI sends them."""
    yield Event(EventKind.LIFECYCLE, "response.created", {"response": response_body(plan, final=False)})
    yield Event(EventKind.LIFECYCLE, "response.in_progress", {"response": response_body(plan, final=False)})
    index = 0
    if plan.reasoning:
        item_id = f"rs_mock_{plan.serial}"
        yield Event(
            EventKind.FRAME,
            "response.output_item.added",
            {"output_index": index, "item": _reasoning_item(plan, False)},
        )
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        for word in plan.reasoning:
            yield Event(EventKind.WORD, "response.reasoning_text.delta", {**where, "delta": word})
        yield Event(
            EventKind.FRAME, "response.reasoning_text.done", {**where, "text": "".join(plan.reasoning)}
        )
        yield Event(
            EventKind.FRAME,
            "response.output_item.done",
            {"output_index": index, "item": _reasoning_item(plan, True)},
        )
        index += 1
    if plan.tool_call:
        item_id = f"fc_mock_{plan.serial}"
        yield Event(
            EventKind.FRAME,
            "response.output_item.added",
            {"output_index": index, "item": _call_item(plan, False)},
        )
        for piece in plan.pieces:
            yield Event(
                EventKind.CONTENT,
                "response.function_call_arguments.delta",
                {"item_id": item_id, "output_index": index, "delta": piece},
            )
        arguments = "".join(plan.pieces)
        yield Event(
            EventKind.TAIL,
            "response.function_call_arguments.done",
            {"item_id": item_id, "output_index": index, "name": TOOL_NAME, "arguments": arguments},
        )
        done_item = _call_item(plan, True)
    else:
        item_id = f"msg_mock_{plan.serial}"
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        yield Event(
            EventKind.FRAME,
            "response.output_item.added",
            {"output_index": index, "item": _message_item(plan, False)},
        )
        yield Event(EventKind.FRAME, "response.content_part.added", {**where, "part": _text_part("")})
        for piece in plan.pieces:
            yield Event(
                EventKind.CONTENT, "response.output_text.delta", {**where, "delta": piece, "logprobs": []}
            )
        text = "".join(plan.pieces)
        yield Event(EventKind.TAIL, "response.output_text.done", {**where, "text": text, "logprobs": []})
        yield Event(EventKind.TAIL, "response.content_part.done", {**where, "part": _text_part(text)})
        done_item = _message_item(plan, True)
    yield Event(EventKind.TAIL, "response.output_item.done", {"output_index": index, "item": done_item})
    terminal = "response.incomplete" if plan.incomplete else "response.completed"
    yield Event(EventKind.TAIL, terminal, {"response": response_body(plan)})
