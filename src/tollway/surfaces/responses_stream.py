"""A streamed Responses API answer: what metering needs from each event, and how the stream ends.

`ResponsesStream` looks at each SSE event once.  Text deltas (output text,
refusals, function-call arguments, reasoning text and summaries) are kept for
fallback counting; everything else is relayed byte for byte, re-framed as
`event: <name>` + `data: <json>`.  The terminal event (`response.completed`,
`response.incomplete`, `response.failed`) is held back: `ending` writes it
with complete usage and its cost.  A stream that ends without one (cut, idle
timeout, an `error` event, server shutdown) is closed with a synthesized
`response.failed` event instead.  There is never a `[DONE]`.

Data that is not a JSON object is dropped (it would break the client's SDK),
and under an alias the served name replaces the upstream's in every response
object (`response.model`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import msgspec
from msgspec import Struct

from tollway.surfaces.base import EndState
from tollway.upstream.sse import SSEEvent, frame
from tollway.usage import ReportedUsage, Usage, read_reported

__all__ = ["TERMINAL_EVENTS", "ResponsesStream", "output_texts", "to_responses"]

# Events whose delta is generated text the client is billed for.
_TEXT_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
    }
)
_REASONING_DELTAS = frozenset({"response.reasoning_text.delta", "response.reasoning_summary_text.delta"})
# Events that carry the response object while it is being generated.
_LIFECYCLE = frozenset({"response.created", "response.in_progress", "response.queued"})
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})

_EMPTY = msgspec.Raw()


class _Event(Struct):
    type: Any = None
    sequence_number: Any = None
    delta: Any = None
    output_index: Any = None
    response: msgspec.Raw = _EMPTY
    item: msgspec.Raw = _EMPTY
    # `error` events: OpenAI's flat shape (code, message) or a nested `error` object.
    code: Any = None
    message: Any = None
    error: Any = None


_decode_event = msgspec.json.Decoder(_Event).decode
_decode_any = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_encode_out = msgspec.json.Encoder(decimal_format="number").encode


def _is_int(value: Any) -> bool:
    return type(value) is int


class ResponsesStream:
    __slots__ = (
        "_items",
        "_requested",
        "_response",
        "_seq",
        "_served",
        "_terminal",
        "_terminal_name",
        "error",
        "finished",
        "model",
        "reasoning",
        "reported",
        "text",
    )

    def __init__(self, rename: str | None = None, requested: str | None = None) -> None:
        """`rename`: the served name to show instead of the upstream's model (an alias), or None.

        `requested`: the model the client asked for, shown in a synthesized ending when the
        upstream never said which model answered.
        """
        self._served = rename
        self._requested = requested
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.reported: ReportedUsage | None = None
        self.finished = False
        self.error: Any = None
        self.model: Any = None
        self._seq = -1  # the highest sequence_number relayed
        self._response: dict[str, Any] | None = None  # the last response object seen
        self._items: dict[int, Any] = {}  # output items finished so far, by output_index
        self._terminal: dict[str, Any] | None = None
        self._terminal_name = b""

    def observe(self, event: SSEEvent) -> tuple[bytes | None, bool]:
        """Meter one event: (the SSE bytes to relay or None, whether the upstream is done)."""
        payload = event.data
        try:
            decoded = _decode_event(payload)
        except msgspec.DecodeError:
            return None, False  # not a JSON object (or `[DONE]`): SDKs would fail on it (SPEC §3)
        kind = decoded.type
        seq = decoded.sequence_number
        if _is_int(seq) and seq > self._seq:
            self._seq = seq
        if kind in _TEXT_DELTAS:
            if isinstance(decoded.delta, str):
                self.text.append(decoded.delta)
        elif kind in _REASONING_DELTAS:
            if isinstance(decoded.delta, str):
                self.text.append(decoded.delta)
                self.reasoning.append(decoded.delta)
        elif kind in TERMINAL_EVENTS:
            return self._hold_terminal(event, payload, kind)
        elif kind == "error" or (not isinstance(kind, str) and decoded.error is not None):
            self.error = _error_of(decoded)
            return None, True
        elif kind in _LIFECYCLE:
            response = _object(decoded.response)
            if response is not None:
                self._response = response
                if isinstance(response.get("model"), str):
                    self.model = response["model"]
                if self._served is not None and "model" in response:
                    value = _decode_any(payload)
                    value["response"]["model"] = self._served
                    payload = _encode(value)
        elif kind == "response.output_item.done":
            item = _object(decoded.item)
            if item is not None and _is_int(decoded.output_index):
                self._items[decoded.output_index] = item
        return frame(_name(event, kind), payload), False

    def _hold_terminal(self, event: SSEEvent, payload: bytes, kind: str) -> tuple[None, bool]:
        value = _decode_any(payload)
        response = value.get("response")
        if not isinstance(response, dict):
            response = value["response"] = {}
        self._terminal = value
        self._terminal_name = _name(event, kind) or kind.encode()
        self.finished = True
        if isinstance(response.get("model"), str):
            self.model = response["model"]
        reported = read_reported(response.get("usage"))
        if reported is not None:
            self.reported = reported
        if kind == "response.failed":
            error = response.get("error")
            self.error = error if error is not None else {"message": "The upstream reported a failure."}
        return None, True

    def ending(self, state: EndState, usage: Usage, cost: Decimal | None, scrub: Any) -> bytes:
        """The terminal event with complete usage and cost, or a synthesized `response.failed`."""
        rendered = to_responses(usage, cost)
        if self._terminal is not None:
            value = self._terminal
            response = value["response"]
            response["usage"] = rendered
            if self._served is not None:
                response["model"] = self._served
            error = response.get("error")
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                error["message"] = _scrubbed(scrub, error["message"])
            return frame(self._terminal_name, _encode_out(value))
        out = b""
        response = dict(self._response) if self._response is not None else None
        if response is None:
            # Nothing said which response this is: open one, so the stream still starts the way
            # the API's streams do (SDK helpers expect `response.created` first).
            response = self._new_response()
            out = self._emit("response.created", {"response": {**response, "status": "in_progress"}})
        response["status"] = "failed"
        response["error"] = _failure(state, self.error, scrub)
        response["incomplete_details"] = None
        if self._items:
            response["output"] = [self._items[i] for i in sorted(self._items)]
        elif not isinstance(response.get("output"), list):
            response["output"] = []
        if self._served is not None:
            response["model"] = self._served
        response["usage"] = rendered
        return out + self._emit("response.failed", {"response": response})

    def _emit(self, kind: str, fields: dict[str, Any]) -> bytes:
        self._seq += 1
        value = {"type": kind, "sequence_number": self._seq, **fields}
        return frame(kind.encode(), _encode_out(value))

    def _new_response(self) -> dict[str, Any]:
        model = self._served or (self.model if isinstance(self.model, str) else None) or self._requested
        return {
            "id": f"resp_{uuid.uuid4().hex}",
            "object": "response",
            "created_at": int(time.time()),
            "model": model,
            "output": [],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "error": None,
            "incomplete_details": None,
            "usage": None,
        }


def _object(raw: msgspec.Raw) -> dict[str, Any] | None:
    if not raw:
        return None
    value = _decode_any(raw)
    return value if isinstance(value, dict) else None


def _name(event: SSEEvent, kind: Any) -> bytes:
    """The `event:` name to relay: the upstream's, or the payload's `type` when it sent none."""
    if event.event != b"message":
        return event.event
    if isinstance(kind, str) and kind and "\n" not in kind and "\r" not in kind:
        return kind.encode()
    return b""


def _error_of(decoded: _Event) -> dict[str, Any]:
    error = decoded.error
    if isinstance(error, dict):
        return error
    return {"code": decoded.code, "message": decoded.message}


def _scrubbed(scrub: Any, message: str) -> str:
    cleaned: bytes = scrub(message.encode())
    return cleaned.decode(errors="replace")


def _failure(state: EndState, error: Any, scrub: Any) -> dict[str, Any]:
    if state == "server_shutdown":
        return {
            "code": "server_shutdown",
            "message": "The server is shutting down: this stream was ended (what was delivered is billed).",
        }
    if state == "upstream_timeout":
        return {"code": "upstream_timeout", "message": "The upstream went silent mid-stream."}
    detail = ""
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        detail = ": " + _scrubbed(scrub, error["message"])[:500]
    elif error is None and state == "completed":  # a clean end without a terminal event
        detail = ": the stream ended without a terminal event"
    return {"code": "upstream_error", "message": f"The upstream broke off mid-stream{detail}"}


def _section(usage: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = usage.get(name)
    return dict(value) if isinstance(value, Mapping) else {}


def to_responses(usage: Usage, cost: Decimal | None = None) -> dict[str, Any]:
    """The `usage` object in the Responses API's shape, keeping extra detail fields the upstream sent."""
    raw = usage.raw or {}
    input_details = _section(raw, "input_tokens_details")
    input_details["cached_tokens"] = usage.cached
    input_details["cache_write_tokens"] = usage.cache_write
    for alias in ("cache_creation_tokens", "cache_creation_input_tokens"):
        if alias in input_details:
            input_details[alias] = usage.cache_write
    output_details = _section(raw, "output_tokens_details")
    output_details["reasoning_tokens"] = usage.reasoning
    body: dict[str, Any] = {
        "input_tokens": usage.prompt,
        "input_tokens_details": input_details,
        "output_tokens": usage.completion,
        "output_tokens_details": output_details,
        "total_tokens": usage.total,
    }
    if cost is not None:
        body["cost"] = cost
    return body


def _part_texts(parts: Any, kinds: tuple[str, ...]) -> list[str]:
    texts: list[str] = []
    if isinstance(parts, list):
        for part in parts:
            if isinstance(part, Mapping) and part.get("type") in kinds:
                text = part.get("text")
                if isinstance(text, str):
                    texts.append(text)
                refusal = part.get("refusal")
                if isinstance(refusal, str):
                    texts.append(refusal)
    return texts


_MESSAGE_PARTS = ("output_text", "refusal")
_REASONING_PARTS = ("summary_text", "reasoning_text")


def output_texts(output: Any) -> tuple[list[str], list[str]]:
    """(every generated text, the reasoning part of it) in a non-stream answer's `output` items."""
    text: list[str] = []
    reasoning: list[str] = []
    if not isinstance(output, list):
        return text, reasoning
    for item in output:
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind == "message":
            text.extend(_part_texts(item.get("content"), _MESSAGE_PARTS))
        elif kind == "function_call":
            arguments = item.get("arguments")
            if isinstance(arguments, str):
                text.append(arguments)
        elif kind == "reasoning":
            for key in ("summary", "content"):
                found = _part_texts(item.get(key), _REASONING_PARTS)
                text.extend(found)
                reasoning.extend(found)
    return text, reasoning
