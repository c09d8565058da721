"""What a mocked Anthropic Messages answer contains: its plan, the non-stream body, and the stream's events.

Deterministic: the same request and knobs always give the same answer (ids
carry the mock's request serial).  Content is chat's (`text.py`): `chunks`
words of text, cut short by `max_tokens` (stop_reason `max_tokens`; thinking
words count against it too), `reasoning_text` (a `thinking` block of three
words with a signature first), `tool_call` (a `get_weather` `tool_use` block
instead of the text, stop_reason `tool_use`), `echo` (the request body as
compact JSON).  Usage is Anthropic's shape: `input_tokens` (the `prompt_tokens`
knob verbatim, else `estimate_input_tokens`; it excludes the cache, as
Anthropic's does), `cache_read_input_tokens` (`cached_tokens`),
`cache_creation_input_tokens` (`cache_write_tokens`, split by
`cache_write_1h_tokens` into `cache_creation.ephemeral_5m_input_tokens` /
`ephemeral_1h_input_tokens`), `output_tokens` (`completion_tokens`, else the
generated words).  `usage=absent` leaves `output_tokens` out everywhere (the
input fields stay); `usage_override` replaces the body's `usage`, the
`message_start` message's `usage` and the `message_delta`'s `usage`.
`usage=with_choices` is the same as present; `reasoning_tokens` and
`cache_write_field` have no Anthropic counterpart and are ignored, as is `n`.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from enum import Enum
from typing import Any, NamedTuple

import msgspec

from tollway.mock_upstream.asgi import encode
from tollway.mock_upstream.behaviour import Behaviour
from tollway.mock_upstream.chat import REASONING_WORDS, TOOL_ARGUMENT_PIECES, TOOL_NAME
from tollway.mock_upstream.text import REASONING_OFFSET, words

__all__ = [
    "STREAM_ERROR",
    "EventKind",
    "MessagePlan",
    "build_message_plan",
    "estimate_input_tokens",
    "message_body",
    "message_events",
    "tool_input",
]

STREAM_ERROR: dict[str, Any] = {
    "type": "error",
    "error": {"type": "overloaded_error", "message": "Overloaded"},
}


class MessagePlan(msgspec.Struct, frozen=True):
    """Everything one message will contain, whether it is streamed or not."""

    id: str
    serial: int
    model: str
    thinking: list[str]
    signature: str
    # Text words, the echoed body, or the tool call's input JSON pieces: one element per streamed delta.
    pieces: list[str]
    tool_call: bool
    stop_reason: str
    usage: Any  # the non-stream body's
    start_usage: Any  # message_start's
    delta_usage: Any  # message_delta's


class EventKind(Enum):
    FRAME = "frame"  # message_start, block starts and stops, ping, the signature: not paced
    WORD = "word"  # a thinking delta: paced, not counted as content
    CONTENT = "content"  # a text or input_json delta: paced, counted by cut_after / error_after
    TAIL = "tail"  # what closes the last block, message_delta, message_stop


class Event(NamedTuple):
    kind: EventKind
    name: str
    payload: dict[str, Any]  # `type` included: Anthropic repeats the event name in the data


def _texts(value: Any) -> Iterator[str]:
    """The text of a message's content or `system`: a string, or content blocks (tool results nested)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for block in value:
            if not isinstance(block, dict):
                continue
            for key in ("text", "thinking"):
                text = block.get(key)
                if isinstance(text, str):
                    yield text
            if "input" in block:
                yield encode(block["input"]).decode()
            yield from _texts(block.get("content"))


def estimate_input_tokens(body: dict[str, Any]) -> int:
    """5 per message (`system` counting as one) + characters // 4, as chat's estimate."""
    messages = chars = 0
    system = body.get("system")
    if system is not None:
        messages += 1
        chars += sum(len(t) for t in _texts(system))
    given = body.get("messages")
    if isinstance(given, list):
        for message in given:
            if isinstance(message, dict):
                messages += 1
                chars += sum(len(t) for t in _texts(message.get("content")))
    return 5 * messages + chars // 4


def tool_input() -> Any:
    return msgspec.json.decode("".join(TOOL_ARGUMENT_PIECES))


def _signature(thinking: list[str]) -> str:
    return base64.b64encode(hashlib.sha256("".join(thinking).encode()).digest()).decode()


def _input_usage(behaviour: Behaviour, body: dict[str, Any]) -> dict[str, Any]:
    prompt = behaviour.prompt_tokens
    written = behaviour.cache_write_tokens or 0
    one_hour = behaviour.cache_write_1h_tokens
    return {
        "input_tokens": estimate_input_tokens(body) if prompt is None else prompt,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": behaviour.cached_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": written - one_hour,
            "ephemeral_1h_input_tokens": one_hour,
        },
    }


def build_message_plan(body: dict[str, Any], behaviour: Behaviour, serial: int) -> MessagePlan:
    """The plan of a validated request (`max_tokens` an integer >= 1)."""
    thinking = words(REASONING_WORDS, REASONING_OFFSET) if behaviour.reasoning_text else []
    stop_reason = "end_turn"
    if behaviour.tool_call:
        pieces = list(TOOL_ARGUMENT_PIECES)
        stop_reason = "tool_use"
        generated = len(pieces)
    elif behaviour.echo:
        pieces = [encode(body).decode()]
        generated = max(1, len(pieces[0]) // 4)
    else:
        count = behaviour.chunks
        budget = max(int(body["max_tokens"]) - len(thinking), 0)
        if budget < count:
            count = budget
            stop_reason = "max_tokens"
        pieces = words(count)
        generated = count
    generated += len(thinking)
    if behaviour.usage_override is not msgspec.UNSET:
        usage = start_usage = delta_usage = behaviour.usage_override
    else:
        usage = _input_usage(behaviour, body)
        start_usage = dict(usage)
        delta_usage = {}
        if behaviour.usage != "absent":
            output = generated if behaviour.completion_tokens is None else behaviour.completion_tokens
            usage["output_tokens"] = output
            start_usage["output_tokens"] = 1
            delta_usage["output_tokens"] = output
    model = body.get("model")
    return MessagePlan(
        id=f"msg_mock_{serial}",
        serial=serial,
        model=model if isinstance(model, str) else "",
        thinking=thinking,
        signature=_signature(thinking) if thinking else "",
        pieces=pieces,
        tool_call=behaviour.tool_call,
        stop_reason=stop_reason,
        usage=usage,
        start_usage=start_usage,
        delta_usage=delta_usage,
    )


def _tool_id(plan: MessagePlan) -> str:
    return f"toolu_mock_{plan.serial}"


def _content(plan: MessagePlan) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if plan.thinking:
        blocks.append({"type": "thinking", "thinking": "".join(plan.thinking), "signature": plan.signature})
    if plan.tool_call:
        blocks.append({"type": "tool_use", "id": _tool_id(plan), "name": TOOL_NAME, "input": tool_input()})
    else:
        blocks.append({"type": "text", "text": "".join(plan.pieces)})
    return blocks


def message_body(plan: MessagePlan) -> dict[str, Any]:
    """The non-stream answer."""
    return {
        "id": plan.id,
        "type": "message",
        "role": "assistant",
        "model": plan.model,
        "content": _content(plan),
        "stop_reason": plan.stop_reason,
        "stop_sequence": None,
        "usage": plan.usage,
    }


def message_events(plan: MessagePlan) -> Iterator[Event]:
    """The stream's events in order, as Anthropic sends them."""
    message = {
        "id": plan.id,
        "type": "message",
        "role": "assistant",
        "model": plan.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": plan.start_usage,
    }
    yield Event(EventKind.FRAME, "message_start", {"type": "message_start", "message": message})

    def start(index: int, block: dict[str, Any]) -> Event:
        payload = {"type": "content_block_start", "index": index, "content_block": block}
        return Event(EventKind.FRAME, "content_block_start", payload)

    def delta(kind: EventKind, index: int, fields: dict[str, Any]) -> Event:
        return Event(
            kind, "content_block_delta", {"type": "content_block_delta", "index": index, "delta": fields}
        )

    def stop(kind: EventKind, index: int) -> Event:
        return Event(kind, "content_block_stop", {"type": "content_block_stop", "index": index})

    ping = Event(EventKind.FRAME, "ping", {"type": "ping"})
    index = 0
    if plan.thinking:
        yield start(index, {"type": "thinking", "thinking": "", "signature": ""})
        yield ping
        for word in plan.thinking:
            yield delta(EventKind.WORD, index, {"type": "thinking_delta", "thinking": word})
        yield delta(EventKind.FRAME, index, {"type": "signature_delta", "signature": plan.signature})
        yield stop(EventKind.FRAME, index)
        index += 1
    if plan.tool_call:
        yield start(index, {"type": "tool_use", "id": _tool_id(plan), "name": TOOL_NAME, "input": {}})
        piece_delta = "input_json_delta"
    else:
        yield start(index, {"type": "text", "text": ""})
        piece_delta = "text_delta"
    if not plan.thinking:
        yield ping
    field = "partial_json" if plan.tool_call else "text"
    for piece in plan.pieces:
        yield delta(EventKind.CONTENT, index, {"type": piece_delta, field: piece})
    yield stop(EventKind.TAIL, index)
    closing = {
        "type": "message_delta",
        "delta": {"stop_reason": plan.stop_reason, "stop_sequence": None},
        "usage": plan.delta_usage,
    }
    yield Event(EventKind.TAIL, "message_delta", closing)
    yield Event(EventKind.TAIL, "message_stop", {"type": "message_stop"})
