"""`POST /v1/chat/completions` (SPEC §3): OpenAI's chat completions, as one surface.

The body is decoded once into plain JSON values (so unknown fields pass to
the upstream untouched) and then checked against `ChatRequest`, which names
only what tollway itself relies on.  Any problem is a 400 whose `param`
names the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from tollway.billing.bounds import (
    MEDIA_PART_TOKENS,
    media_parts,
    output_bound,
    prompt_byte_bound,
    template_margin,
)
from tollway.surfaces.base import BodyCall, OpenAIFamily, Reading, with_usage
from tollway.surfaces.chat_stream import ChatStream, message_texts, reasoning_texts
from tollway.tokens import TokenCounter
from tollway.usage import MAX_TOKENS, Usage, to_openai
from tollway.validation import convert, decode_object

__all__ = [
    "CHAT_COMPLETIONS",
    "ChatCompletions",
    "ChatRequest",
    "Message",
    "ParsedChat",
    "parse_chat_request",
]

_encode_json = msgspec.json.Encoder().encode
_encode_out = msgspec.json.Encoder(decimal_format="number").encode


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


class ParsedChat(Struct, BodyCall):
    """The validated request and the raw JSON object it came from: a `Call`."""

    injects_usage = True  # OpenAI's chunk streams report usage only when asked

    request: ChatRequest
    body: dict[str, Any]

    @property
    def asked_for_usage(self) -> bool:
        options = self.request.stream_options
        return options is not None and bool(options.include_usage)

    @property
    def output_cap(self) -> int | None:
        caps = [c for c in (self.request.max_tokens, self.request.max_completion_tokens) if c is not None]
        return min(caps) if caps else None

    def prompt_bound(self) -> int:
        return prompt_byte_bound(self.body.get("messages"), self.body.get("tools"))

    def output_bound(self, model_cap: int | None) -> int:
        return output_bound(self.output_cap, self.request.n or 1, model_cap)

    async def count_prompt(self, counter: TokenCounter, encoding: str) -> int:
        messages = self.body.get("messages")
        tools = self.body.get("tools")
        return await counter.acount_prompt(
            encoding,
            messages if isinstance(messages, list) else [],
            tools if isinstance(tools, list) else None,
        )

    async def tight_prompt_bound(self, counter: TokenCounter, encoding: str) -> int:
        messages = self.body.get("messages")
        count = len(messages) if isinstance(messages, list) else 0
        counted = await self.count_prompt(counter, encoding)
        return counted + template_margin(count) + media_parts(messages) * MEDIA_PART_TOKENS


def parse_chat_request(raw: bytes) -> ParsedChat:
    body = decode_object(raw)
    return ParsedChat(request=convert(body, ChatRequest), body=body)


class ChatCompletions(OpenAIFamily):
    operation = "chat.completions"
    path = "/chat/completions"

    def parse(self, raw: bytes) -> ParsedChat:
        return parse_chat_request(raw)

    def read_body(self, call: ParsedChat, payload: Mapping[str, Any]) -> Reading:
        text: list[str] = []
        reasoning: list[str] = []
        for choice in payload.get("choices") or ():
            if type(choice) is dict or isinstance(choice, Mapping):
                text.extend(message_texts(choice.get("message")))
                reasoning.extend(reasoning_texts(choice.get("message")))
        return Reading.of(payload, text, reasoning)

    def render_body(
        self,
        call: ParsedChat,
        payload: dict[str, Any],
        usage: Usage,
        cost: Decimal | None,
        served: str | None,
        raw: bytes,
    ) -> bytes:
        return with_usage(payload, to_openai(usage, cost), served)

    def stream_meter(self, call: ParsedChat, served: str | None, *, usage_with_choice: bool) -> ChatStream:
        return ChatStream(served, usage_with_choice=usage_with_choice and not call.asked_for_usage)


CHAT_COMPLETIONS = ChatCompletions()
