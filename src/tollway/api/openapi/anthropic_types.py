"""The Anthropic-protocol surface's bodies, for the document only (no request is decoded with these).

As for the OpenAI ones: the main fields and the validating Struct's bounds
(`surfaces/anthropic_messages.py`), every other field passed to the upstream untouched.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from tollway.usage import MAX_TOKENS

__all__ = ["AnthropicMessage", "CountTokensRequest", "MessageStreamEvent", "MessagesRequest", "TokenCount"]

Model = Annotated[str, Meta(min_length=1, description="A served model (GET /v1/models).")]
System = Annotated[
    str | list[dict[str, Any]] | None, Meta(description='A string, or text blocks (`{"type": "text", …}`).')
]


class InputMessage(Struct):
    role: Literal["user", "assistant"]
    content: Annotated[str | list[dict[str, Any]], Meta(description="Text, or content blocks.")]


class MessagesRequest(Struct):
    """Anthropic's Messages API request."""

    model: Model
    max_tokens: Annotated[
        int, Meta(ge=1, le=MAX_TOKENS, description="Required; bounds the output and the reservation.")
    ]
    messages: Annotated[list[InputMessage], Meta(min_length=1)]
    system: System = None
    stream: Annotated[bool | None, Meta(description="Answer with server-sent events.")] = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    temperature: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    metadata: dict[str, Any] | None = None


class CacheCreation(Struct):
    ephemeral_5m_input_tokens: int
    ephemeral_1h_input_tokens: int


class AnthropicUsage(Struct):
    """Anthropic's convention: `input_tokens` excludes cache reads and writes."""

    input_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cache_creation: CacheCreation
    output_tokens: int
    cost: Annotated[float, Meta(description="What the request cost, USD (a JSON number).")]


class AnthropicMessage(Struct):
    """The upstream's answer, `usage.cost` added."""

    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    content: list[dict[str, Any]]
    model: str
    stop_reason: str | None
    stop_sequence: str | None
    usage: AnthropicUsage


class MessageStreamEvent(Struct):
    """One event, relayed with its `event:` name.

    The last `message_delta` carries the complete usage, with `cost`.
    """

    type: Annotated[
        str,
        Meta(
            examples=[
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
                "ping",
                "error",
            ]
        ),
    ]
    message: dict[str, Any] | None = None
    index: int | None = None
    content_block: dict[str, Any] | None = None
    delta: dict[str, Any] | None = None
    usage: AnthropicUsage | None = None
    error: dict[str, Any] | None = None


class CountTokensRequest(Struct):
    """Anthropic's token-counting request: forwarded, not billed."""

    model: Model
    messages: list[InputMessage]
    system: System = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None


class TokenCount(Struct):
    """The upstream's answer, as it is."""

    input_tokens: int
