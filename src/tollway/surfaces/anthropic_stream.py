"""A streamed Anthropic Messages answer: what metering needs from each event, and how the stream ends.

`AnthropicStream` looks at each SSE event once and relays it with its `event:`
name, re-framed as `event: <name>` + `data: <json>`.  Input usage comes from
`message_start` (its `output_tokens`, a placeholder, is not believed), output
usage from the cumulative `message_delta`.  The last `message_delta` and the
`message_stop` are held back: `ending` writes the `message_delta` with
complete usage (input, cache fields, output) plus `cost`, then `message_stop`.

A stream that ends without `message_stop` — an `error` event (held back too,
so the usage can come first), a cut, an idle timeout, server shutdown — is
closed with a `message_delta` carrying the usage and then an `error` event
(the upstream's own, or `api_error` / `timeout_error`).  Text, thinking and
tool-input JSON deltas are kept for counting when output usage is missing.

Data that is not a JSON object is dropped (it would break the client's SDK),
and under an alias the served name replaces the upstream's in
`message_start`'s `message.model`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import msgspec

from tollway.surfaces.base import EndState
from tollway.upstream.sse import SSEEvent, frame
from tollway.usage import INVALID, MAX_TOKENS, ReportedUsage, Usage, read_reported

__all__ = ["AnthropicStream", "read_anthropic", "to_anthropic"]

_decode_any = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_encode_out = msgspec.json.Encoder(decimal_format="number").encode

# Deltas whose text is generated output, by delta type, and the field holding it.
_DELTA_TEXT = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json"}


def read_anthropic(usage: Any) -> ReportedUsage | None:
    """An Anthropic `usage` object as tollway's report (SPEC §6).

    Anthropic's `input_tokens` excludes cache reads and writes, so the prompt is the sum of the
    three; `read_reported`'s validation applies (an invalid number makes the whole report invalid).
    """
    reported = read_reported(usage)
    if reported is None or reported.invalid or reported.prompt is None:
        return reported
    prompt = reported.prompt + (reported.cached or 0) + (reported.cache_write or 0)
    if prompt > MAX_TOKENS:
        return INVALID
    return msgspec.structs.replace(reported, prompt=prompt)


def to_anthropic(usage: Usage, cost: Decimal | None = None) -> dict[str, Any]:
    """The `usage` object in Anthropic's shape, keeping extra fields the upstream sent."""
    raw = usage.raw or {}
    body: dict[str, Any] = dict(raw)
    body["input_tokens"] = usage.prompt - usage.cached - usage.cache_write
    body["cache_creation_input_tokens"] = usage.cache_write
    body["cache_read_input_tokens"] = usage.cached
    creation = raw.get("cache_creation")
    body["cache_creation"] = {
        **(dict(creation) if isinstance(creation, Mapping) else {}),
        "ephemeral_5m_input_tokens": usage.cache_write - usage.cache_write_1h,
        "ephemeral_1h_input_tokens": usage.cache_write_1h,
    }
    body["output_tokens"] = usage.completion
    if cost is not None:
        body["cost"] = cost
    return body


def _name(event: SSEEvent, kind: Any) -> bytes:
    """The `event:` name to relay: the upstream's, or the payload's `type` when it sent none."""
    if event.event != b"message":
        return event.event
    if isinstance(kind, str) and kind and "\n" not in kind and "\r" not in kind:
        return kind.encode()
    return b""


def _scrubbed(scrub: Any, message: str) -> str:
    cleaned: bytes = scrub(message.encode())
    return cleaned.decode(errors="replace")


class AnthropicStream:
    __slots__ = (
        "_delta",
        "_error_event",
        "_input_usage",
        "_output_usage",
        "_requested",
        "_served",
        "_started",
        "_stop",
        "error",
        "finished",
        "model",
        "reasoning",
        "reported",
        "text",
    )

    def __init__(self, rename: str | None = None, requested: str | None = None) -> None:
        """`rename`: the served name to show instead of the upstream's model (an alias), or None.

        `requested`: the model the client asked for, shown in a synthesized `message_start`.
        """
        self._served = rename
        self._requested = requested
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.reported: ReportedUsage | None = None
        self.finished = False
        self.error: Any = None
        self.model: Any = None
        self._started = False  # a message_start was relayed
        self._input_usage: dict[str, Any] | None = None  # message_start's usage
        self._output_usage: dict[str, Any] | None = None  # the latest message_delta's usage
        self._delta: dict[str, Any] | None = None  # the held-back message_delta
        self._stop: bytes | None = None  # the held-back message_stop, framed
        self._error_event: dict[str, Any] | None = None  # a held-back upstream `error` event

    def _update_reported(self) -> None:
        """The usage the upstream reported so far: input from message_start, output from message_delta."""
        merged: dict[str, Any] = {}
        if self._input_usage is not None:
            merged.update(self._input_usage)
            merged.pop("output_tokens", None)  # message_start's is a placeholder, not the output
        if self._output_usage is not None:
            merged.update({k: v for k, v in self._output_usage.items() if v is not None})
        self.reported = read_anthropic(merged)

    def observe(self, event: SSEEvent) -> tuple[bytes | None, bool]:
        """Meter one event: (the SSE bytes to relay or None, whether the upstream is done)."""
        payload = event.data
        try:
            value = _decode_any(payload)
        except msgspec.DecodeError:
            return None, False
        if not isinstance(value, dict):
            return None, False  # not a JSON object: SDKs would fail on it (SPEC §3)
        kind = value.get("type")
        name = _name(event, kind)
        if kind == "content_block_delta":
            self._take_delta(value.get("delta"))
        elif kind == "message_start":
            return self._message_start(name, value, payload), False
        elif kind == "message_delta":
            out = self._relay_held_delta()
            self._delta = value
            usage = value.get("usage")
            if usage is not None:
                self._output_usage = usage if isinstance(usage, dict) else {"output_tokens": usage}
                self._update_reported()
            return out, False
        elif kind == "message_stop":
            self._stop = frame(name or b"message_stop", payload)
            self.finished = True
            return None, True
        elif kind == "error" or name == b"error":
            error = value.get("error")
            self.error = error if isinstance(error, dict) else {"message": "The upstream reported an error."}
            self._error_event = value
            return None, True
        return frame(name, payload), False

    def _take_delta(self, delta: Any) -> None:
        if not isinstance(delta, dict):
            return
        field = _DELTA_TEXT.get(delta.get("type"))  # type: ignore[arg-type]
        if field is None:
            return
        text = delta.get(field)
        if isinstance(text, str):
            self.text.append(text)

    def _message_start(self, name: bytes, value: dict[str, Any], payload: bytes) -> bytes | None:
        self._started = True
        message = value.get("message")
        if isinstance(message, dict):
            if isinstance(message.get("model"), str):
                self.model = message["model"]
            usage = message.get("usage")
            if usage is not None:
                self._input_usage = usage if isinstance(usage, dict) else {"input_tokens": usage}
                self._update_reported()
            if self._served is not None and "model" in message:
                message["model"] = self._served
                payload = _encode(value)
        return frame(name or b"message_start", payload)

    def _relay_held_delta(self) -> bytes | None:
        if self._delta is None:
            return None
        held, self._delta = self._delta, None
        return frame(b"message_delta", _encode(held))

    def ending(self, state: EndState, usage: Usage, cost: Decimal | None, scrub: Any) -> bytes:
        """The held-back `message_delta` with complete usage and cost, then `message_stop` or an error."""
        out = b""
        if not self._started:
            out += self._synthesized_start()
        delta = self._delta
        if delta is None:
            delta = {"type": "message_delta", "delta": {"stop_reason": None, "stop_sequence": None}}
        delta["usage"] = to_anthropic(usage, cost)
        out += frame(b"message_delta", _encode_out(delta))
        if state == "completed" and self.error is None and self._stop is not None:
            return out + self._stop
        return out + frame(b"error", _encode(self._error(state, scrub)))

    def _error(self, state: EndState, scrub: Any) -> dict[str, Any]:
        if self._error_event is not None:
            value = self._error_event
            error = value.get("error")
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                error["message"] = _scrubbed(scrub, error["message"])
            return value
        if state == "server_shutdown":
            kind = "api_error"
            message = "The server is shutting down: this stream was ended (what was delivered is billed)."
        elif state == "upstream_timeout":
            kind, message = "timeout_error", "The upstream went silent mid-stream."
        elif state == "completed":
            kind, message = (
                "api_error",
                "The upstream broke off mid-stream: the stream ended without message_stop.",
            )
        else:
            kind, message = "api_error", "The upstream broke off mid-stream."
        return {"type": "error", "error": {"type": kind, "message": message}}

    def _synthesized_start(self) -> bytes:
        model = self._served or (self.model if isinstance(self.model, str) else None) or self._requested
        message: dict[str, Any] = {
            "id": f"msg_{uuid.uuid4().hex}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        self._started = True
        return frame(b"message_start", _encode({"type": "message_start", "message": message}))
