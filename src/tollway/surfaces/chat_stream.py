"""A streamed chat completion: what metering needs from each event, and how the stream ends.

`ChatStream` looks at each SSE data payload once: it decodes only the fields
metering needs (text deltas, finish reasons, usage, errors), remembers the
text for fallback counting, and decides what to relay.  Payloads are relayed
byte for byte unless they carry usage alongside choices (the usage is moved
to the single closing usage chunk) or the model is served under an alias (the
served name replaces the upstream's).  Data that is not a JSON object is
dropped: it would break the client's SDK.

`ChunkStream` is that machinery without the chat-specific parts; every OpenAI
stream of `choices` chunks closed by a `"choices": []` usage chunk and
`[DONE]` (chat completions, legacy completions) is a subclass that says how
its chunks are decoded, where a choice's text is, and what its closing chunk's
`object` and empty choice look like.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, ClassVar, Protocol

import msgspec
from msgspec import Struct

from tollway.errors import error_body
from tollway.surfaces.base import EndState
from tollway.upstream.sse import SSEEvent, frame
from tollway.usage import ReportedUsage, Usage, read_reported, to_openai

__all__ = ["ChatStream", "ChunkStream", "message_texts", "reasoning_texts"]


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


_chunk_decoder = msgspec.json.Decoder(_Chunk)
_decode_any = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_encode_out = msgspec.json.Encoder(decimal_format="number").encode
_DONE = b"data: [DONE]\n\n"


class _Decoded(Protocol):
    """What `ChunkStream` reads of any surface's decoded chunk."""

    id: Any
    created: Any
    model: Any
    usage: Any
    error: Any

    @property
    def choices(self) -> Any: ...


class ChunkStream:
    """One OpenAI-style stream of `choices` chunks: metering, relaying and the closing usage chunk.

    A subclass supplies `object` (the closing chunk's), `empty_choice` (the "with_choice" closing
    chunk's one choice), `decoder` (a typed decoder of the fields it meters), `_meter` (the text of
    one decoded chunk's choices) and `_meter_loose` (the same for a choice of a chunk that did not fit
    the typed decoder, as a plain mapping).
    """

    __slots__ = (
        "_rename",
        "_served",
        "_upstream_field",
        "_upstream_model",
        "_with_choice",
        "created",
        "error",
        "finished",
        "id",
        "model",
        "reasoning",
        "reported",
        "text",
    )

    object: ClassVar[str]
    empty_choice: ClassVar[dict[str, Any]]
    # Decodes a payload into the subclass's typed shape (a `msgspec.DecodeError` if it does not fit).
    decoder: ClassVar[msgspec.json.Decoder[Any]]

    def __init__(self, rename: str | None = None, *, usage_with_choice: bool = False) -> None:
        """`rename`: the served name to show instead of the upstream's model (an alias), or None.

        `usage_with_choice`: close with a usage chunk that holds one empty choice
        (`[server] stream_usage_chunk = "with_choice"`, for a client that did not ask for usage).
        """
        self._rename = _encode(rename) if rename is not None else None
        self._served = rename
        self._upstream_model: str | None = None  # the upstream's model name `_renamed` last replaced
        self._upstream_field = b""  # ... as the `"model":` field it looks for
        self._with_choice = usage_with_choice
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.reported: ReportedUsage | None = None
        self.finished = False
        self.error: Any = None
        self.id: Any = None
        self.created: Any = None
        self.model: Any = None

    def _meter(self, chunk: Any) -> None:
        """Record the text and finish reasons of a decoded chunk's choices."""
        raise NotImplementedError

    def _meter_loose(self, choice: Mapping[str, Any]) -> None:
        """Record the text of one choice of a chunk that did not fit `_decode`'s shape."""
        raise NotImplementedError

    def observe(self, event: SSEEvent) -> tuple[bytes | None, bool]:
        """Meter one event: (the SSE bytes to relay or None, whether the upstream is done)."""
        if event.data == b"[DONE]":
            return None, True
        relayed = self._observe(event.data)
        return relayed, self.error is not None

    def ending(self, state: EndState, usage: Usage, cost: Decimal | None, scrub: Any) -> bytes:
        """Exactly one usage chunk, then `[DONE]` or, for a bad end, an error event."""
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self._served if self._served is not None or self.model is None else self.model,
            # OpenAI's shape is no choices at all; "with_choice" adds one empty one for client code
            # that reads choices[0] of every chunk.
            "choices": [dict(self.empty_choice)] if self._with_choice else [],
            "usage": to_openai(usage, cost),
        }
        closing = b"data: " + _encode_out(chunk) + b"\n\n"
        return closing + (_DONE if state == "completed" else _error_event(state, self.error, scrub))

    def _observe(self, payload: bytes) -> bytes | None:
        try:
            chunk: _Decoded = self.decoder.decode(payload)
        except msgspec.DecodeError:
            return self._observe_any(payload)
        if chunk.error is not None:
            self.error = chunk.error
            return None
        if self.id is None:
            self.id, self.created, self.model = chunk.id, chunk.created, chunk.model
        if chunk.choices:
            self._meter(chunk)
        if chunk.usage is not None:
            reported = read_reported(chunk.usage)
            if reported is not None:
                self.reported = reported
            if not chunk.choices:
                self.finished = True  # OpenAI's usage chunk comes last: the answer is whole
                return None  # replaced by tollway's own closing usage chunk
            payload = _without_usage(payload)
        if self._rename is not None and isinstance(chunk.model, str):
            payload = self._renamed(payload, chunk.model)
        return frame(b"", payload)

    def _renamed(self, payload: bytes, model: str) -> bytes:
        assert self._rename is not None
        if model != self._upstream_model:  # the same for every chunk of a stream, as a rule
            self._upstream_model, self._upstream_field = model, b'"model":' + _encode(model)
        found = self._upstream_field
        at = payload.find(found)
        if at >= 0:
            return b"".join((payload[:at], b'"model":', self._rename, payload[at + len(found) :]))
        value = _decode_any(payload)  # spaced or reordered JSON: the slow way
        value["model"] = msgspec.json.decode(self._rename)
        return _encode(value)

    def _observe_any(self, payload: bytes) -> bytes | None:
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
        choices = value.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, Mapping):
                self.finished = self.finished or bool(choice.get("finish_reason"))
                self._meter_loose(choice)
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
        return frame(b"", _encode(value) if changed else payload)


class ChatStream(ChunkStream):
    """A streamed chat completion (`chat.completion.chunk`s with `delta`s)."""

    __slots__ = ()

    object = "chat.completion.chunk"
    empty_choice: ClassVar[dict[str, Any]] = {"index": 0, "delta": {}, "finish_reason": None}

    decoder = _chunk_decoder

    def _meter(self, chunk: _Chunk) -> None:
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

    def _meter_loose(self, choice: Mapping[str, Any]) -> None:
        self.text.extend(message_texts(choice.get("delta")))
        self.reasoning.extend(reasoning_texts(choice.get("delta")))


def _error_event(state: EndState, error: Any, scrub: Any) -> bytes:
    if state == "server_shutdown":
        body = error_body(
            "The server is shutting down: this stream was ended (what was delivered is billed).",
            "server_error",
            "server_shutdown",
        )
    elif state == "upstream_timeout":
        body = error_body("The upstream went silent mid-stream.", "upstream_error", "upstream_timeout")
    else:
        detail = ""
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            detail = ": " + scrub(error["message"].encode()).decode(errors="replace")[:500]
        body = error_body(f"The upstream broke off mid-stream{detail}", "upstream_error", "upstream_error")
    return b"data: " + body + b"\n\n"


def _without_usage(payload: bytes) -> bytes:
    value = _decode_any(payload)
    value["usage"] = None
    return _encode(value)


def _texts(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for part in value:
            if (type(part) is dict or isinstance(part, Mapping)) and isinstance(part.get("text"), str):
                yield part["text"]


def message_texts(message: Any) -> list[str]:
    """Every generated text in a message or delta: content, refusal, reasoning, tool calls."""
    if type(message) is not dict and not isinstance(message, Mapping):
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
    if type(message) is not dict and not isinstance(message, Mapping):
        return []
    return [t for key in ("reasoning_content", "reasoning") for t in _texts(message.get(key))]
