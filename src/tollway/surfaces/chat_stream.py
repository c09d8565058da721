"""What metering needs from an upstream's answer, and nothing more.

`StreamMeter` looks at each SSE data payload once: it decodes only the fields
metering needs (text deltas, finish reasons, usage, errors), remembers the
text for fallback counting, and decides what to relay.  Payloads are relayed
byte for byte unless they carry usage alongside choices (the usage is moved
to the single closing usage chunk) or the model is served under an alias (the
served name replaces the upstream's).  Data that is not a JSON object is
dropped: it would break the client's SDK.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from msgspec import Struct

from tollway.usage import ReportedUsage, read_reported

__all__ = ["StreamMeter", "message_texts", "reasoning_texts"]


class _Function(Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolCall(Struct):
    function: _Function | None = None


class _Delta(Struct):
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    refusal: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Chunk(Struct):
    id: Any = None
    created: Any = None
    model: Any = None
    choices: list[_Choice] | None = None
    usage: Any = None
    error: Any = None


_decode_chunk = msgspec.json.Decoder(_Chunk).decode
_decode_any = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


class StreamMeter:
    __slots__ = ("_rename", "created", "error", "finished", "id", "model", "reasoning", "reported", "text")

    def __init__(self, rename: str | None = None) -> None:
        """`rename`: the served name to show instead of the upstream's model (an alias), or None."""
        self._rename = _encode(rename) if rename is not None else None
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.reported: ReportedUsage | None = None
        self.finished = False
        self.error: Any = None
        self.id: Any = None
        self.created: Any = None
        self.model: Any = None

    def observe(self, payload: bytes) -> bytes | None:
        """Meter one `data:` payload; return the SSE bytes to relay, or None to hold it back."""
        try:
            chunk = _decode_chunk(payload)
        except msgspec.DecodeError:
            return self._observe_loose(payload)
        if chunk.error is not None:
            self.error = chunk.error
            return None
        if self.id is None:
            self.id, self.created, self.model = chunk.id, chunk.created, chunk.model
        for choice in chunk.choices or ():
            if choice.finish_reason:
                self.finished = True
            delta = choice.delta
            if delta is None:
                continue
            if delta.content:
                self.text.append(delta.content)
            if delta.refusal:
                self.text.append(delta.refusal)
            for reasoning in (delta.reasoning_content, delta.reasoning):
                if reasoning:
                    self.text.append(reasoning)
                    self.reasoning.append(reasoning)
            for call in delta.tool_calls or ():
                if call.function is not None:
                    if call.function.name:
                        self.text.append(call.function.name)
                    if call.function.arguments:
                        self.text.append(call.function.arguments)
        if chunk.usage is not None:
            reported = read_reported(chunk.usage)
            if reported is not None:
                self.reported = reported
            if not chunk.choices:
                return None  # replaced by tollway's own closing usage chunk
            payload = _without_usage(payload)
        if self._rename is not None and isinstance(chunk.model, str):
            payload = self._renamed(payload, chunk.model)
        return _event(payload)

    def _renamed(self, payload: bytes, model: str) -> bytes:
        assert self._rename is not None
        found = b'"model":' + _encode(model)
        if found in payload:
            return payload.replace(found, b'"model":' + self._rename, 1)
        value = _decode_any(payload)  # spaced or reordered JSON: the slow way
        value["model"] = msgspec.json.decode(self._rename)
        return _encode(value)

    def _observe_loose(self, payload: bytes) -> bytes | None:
        """A payload that does not fit the usual shapes: meter what can be found, relay it unchanged."""
        try:
            value = _decode_any(payload)
        except msgspec.DecodeError:
            return None  # not JSON: SDKs would fail to parse it (SPEC §3)
        if not isinstance(value, dict):
            return None
        if value.get("error") is not None:
            self.error = value["error"]
            return None
        for choice in value.get("choices") or ():
            if isinstance(choice, Mapping):
                self.finished = self.finished or bool(choice.get("finish_reason"))
                self.text.extend(message_texts(choice.get("delta")))
                self.reasoning.extend(reasoning_texts(choice.get("delta")))
        if self.id is None:
            self.id, self.created, self.model = value.get("id"), value.get("created"), value.get("model")
        changed = False
        if (reported := read_reported(value.get("usage"))) is not None:
            self.reported = reported
            if not value.get("choices"):
                return None
            value["usage"] = None
            changed = True
        if self._rename is not None and "model" in value:
            value["model"] = msgspec.json.decode(self._rename)
            changed = True
        return _event(_encode(value) if changed else payload)


def _without_usage(payload: bytes) -> bytes:
    value = _decode_any(payload)
    value["usage"] = None
    return _encode(value)


def _event(payload: bytes) -> bytes:
    if b"\n" in payload:  # a multi-line data field must stay multi-line on the wire
        payload = payload.replace(b"\n", b"\ndata: ")
    return b"data: " + payload + b"\n\n"


def _texts(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for part in value:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                yield part["text"]


def message_texts(message: Any) -> list[str]:
    """Every generated text in a message or delta: content, refusal, reasoning, tool calls."""
    if not isinstance(message, Mapping):
        return []
    texts: list[str] = []
    for key in ("content", "refusal", "reasoning_content", "reasoning"):
        texts.extend(_texts(message.get(key)))
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping):
            texts.extend(v for v in (function.get("name"), function.get("arguments")) if isinstance(v, str))
    return texts


def reasoning_texts(message: Any) -> list[str]:
    if not isinstance(message, Mapping):
        return []
    return [t for key in ("reasoning_content", "reasoning") for t in _texts(message.get(key))]
