"""Validating a chat completion request without losing what the client sent.

The body is decoded once into plain JSON values (so unknown fields pass to
the upstream untouched) and then checked against `ChatRequest`, which names
only what tollway itself relies on.  Any problem is a 400 whose `param`
names the field.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from tollway.usage import MAX_TOKENS
from tollway.validation import convert, decode_object

__all__ = ["ChatRequest", "Message", "ParsedChat", "parse_chat_request"]

_encode_json = msgspec.json.Encoder().encode


class Message(Struct):
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None


class Function(Struct):
    name: str


class Tool(Struct):
    type: str
    function: Function | None = None


class StreamOptions(Struct):
    include_usage: bool | None = None


class ChatRequest(Struct):
    model: Annotated[str, Meta(min_length=1)]
    messages: Annotated[list[Message], Meta(min_length=1)]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int, Meta(ge=1, le=MAX_TOKENS)] | None = None
    max_completion_tokens: Annotated[int, Meta(ge=1, le=MAX_TOKENS)] | None = None
    n: Annotated[int, Meta(ge=1, le=128)] | None = None
    tools: list[Tool] | None = None


class ParsedChat(Struct):
    """The validated request and the raw JSON object it came from."""

    request: ChatRequest
    body: dict[str, Any]

    @property
    def stream(self) -> bool:
        return bool(self.request.stream)

    @property
    def output_cap(self) -> int | None:
        caps = [c for c in (self.request.max_tokens, self.request.max_completion_tokens) if c is not None]
        return min(caps) if caps else None

    def upstream_body(self, upstream_model: str, *, include_usage: bool) -> bytes:
        """The bytes to forward: the client's body with the model renamed and usage asked for."""
        body = dict(self.body)
        body["model"] = upstream_model
        if self.stream and include_usage:
            options = body.get("stream_options")
            body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        return _encode_json(body)


def parse_chat_request(raw: bytes) -> ParsedChat:
    body = decode_object(raw)
    return ParsedChat(request=convert(body, ChatRequest), body=body)
