"""`POST /v1/messages` (SPEC §6): Anthropic's Messages API, as one surface.

The body is decoded once into plain JSON values (unknown fields pass to the
upstream untouched, only `model` renamed) and checked against
`MessagesRequest` for what tollway relies on: `model`, `max_tokens`
(required: it bounds the reservation), a non-empty `messages` list, a
`system` string or list of text blocks.  Refusals use Anthropic's error shape
`{"type": "error", "error": {"type", "message"}}`; an upstream's own error
passes through as it is.  `anthropic-version` and `anthropic-beta` are passed
on, and the client's query string (Claude Code calls `?beta=true`).

Usage: Anthropic's `input_tokens` excludes cache reads and writes, so the
prompt is `input_tokens + cache_creation_input_tokens +
cache_read_input_tokens` (`read_anthropic`).  There is no public Claude
tokenizer: what the upstream does not report is counted with `o200k_base`
(the prompt by the chat rule over `system` and the messages' text blocks,
tool results and tool-use inputs; the completion as the text, thinking and
tool-input JSON relayed).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from tollway.billing.bounds import MEDIA_PART_TOKENS, json_len, output_bound, template_margin, text_bytes
from tollway.errors import APIError, InvalidRequest, UpstreamStatus
from tollway.surfaces.anthropic_stream import AnthropicStream, read_anthropic, to_anthropic
from tollway.surfaces.base import BodyCall, Reading, with_usage
from tollway.tokens import TokenCounter
from tollway.usage import MAX_TOKENS, Usage
from tollway.validation import convert, decode_object

__all__ = [
    "ANTHROPIC_MESSAGES",
    "AnthropicMessages",
    "MessagesRequest",
    "ParsedMessages",
    "anthropic_error",
    "parse_messages_request",
    "prompt_messages",
]

_encode_json = msgspec.json.Encoder().encode

# No public Claude tokenizer: counts are o200k_base estimates (SPEC §6).
COUNTING_ENCODING = "o200k_base"
DEFAULT_VERSION = "2023-06-01"
_PASSED_HEADERS = ("anthropic-version", "anthropic-beta")
# Characters a query string keeps as they are; anything else is percent-encoded.
_QUERY_SAFE = "&=+%-._~,:;!*'()/?@$"
_MAX_QUERY = 2048
# Blocks the body's bytes do not bound: each gets the media allowance (a PDF's pages become images).
_MEDIA_BLOCKS = ("image", "document")

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    502: "api_error",
    504: "timeout_error",
}


def anthropic_error(type_: str, message: str) -> bytes:
    return _encode_json({"type": "error", "error": {"type": type_, "message": message}})


def error_body(exc: APIError) -> bytes:
    """A refusal in Anthropic's shape; an upstream's own error passes through as it is."""
    if isinstance(exc, UpstreamStatus):
        return exc.body()
    kind = _ERROR_TYPES.get(exc.status) or ("invalid_request_error" if exc.status < 500 else "api_error")
    return anthropic_error(kind, exc.message)


class MessagesRequest(Struct):
    # `system` and message contents are checked by hand: `convert` refuses NUL characters in a
    # struct's strings (a rule for what tollway stores), and prompts are not stored.
    model: Annotated[str, Meta(min_length=1)]
    max_tokens: Annotated[int, Meta(ge=1, le=MAX_TOKENS)]
    messages: Annotated[list[dict[str, Any]], Meta(min_length=1)]
    stream: bool | None = None
    tools: list[dict[str, Any]] | None = None
    thinking: dict[str, Any] | None = None


def _check_system(body: Mapping[str, Any]) -> None:
    system = body.get("system")
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise InvalidRequest(
            "Invalid value for 'system': Expected a string or a list of text blocks.",
            code="invalid_type",
            param="system",
        )
    for index, block in enumerate(system):
        if (
            not isinstance(block, dict)
            or block.get("type") != "text"
            or not isinstance(block.get("text"), str)
        ):
            raise InvalidRequest(
                f"Invalid value for 'system[{index}]': Expected a text block.",
                code="invalid_type",
                param=f"system[{index}]",
            )


def _blocks_text(content: Any) -> list[dict[str, Any]]:
    """The counted text of an Anthropic content list, as chat text parts."""
    parts: list[dict[str, Any]] = []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        return parts
    for block in content:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "tool_result":
            parts.extend(_blocks_text(block.get("content")))
        elif kind == "tool_use" and "input" in block:
            try:
                parts.append({"type": "text", "text": _encode_json(block["input"]).decode()})
            except (TypeError, ValueError, OverflowError, msgspec.MsgspecError):
                continue
    return parts


def prompt_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The prompt as chat messages (SPEC §6): `system` a system message, then each message's text."""
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if isinstance(system, str):
        messages.append({"role": "system", "content": system})
    elif isinstance(system, list):
        messages.append({"role": "system", "content": _blocks_text(system)})
    given = body.get("messages")
    if isinstance(given, list):
        for message in given:
            if not isinstance(message, Mapping):
                continue
            out: dict[str, Any] = {"content": _blocks_text(message.get("content"))}
            if isinstance(message.get("role"), str):
                out["role"] = message["role"]
            messages.append(out)
    return messages


def _walk(value: Any) -> tuple[int, int]:
    """(bytes of tool-use inputs as JSON, image and document blocks) inside `value` (iterative)."""
    inputs = media = 0
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, Mapping):
            kind = item.get("type")
            if kind in _MEDIA_BLOCKS:
                media += 1
            elif kind == "tool_use" and "input" in item:
                inputs += json_len(item["input"])
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return inputs, media


class ParsedMessages(Struct, BodyCall):
    """The validated request and the raw JSON object it came from: a `Call`."""

    request: MessagesRequest
    body: dict[str, Any]

    def prompt_bound(self) -> int:
        messages = self.body.get("messages")
        system = self.body.get("system")
        size = text_bytes(messages)[0] + text_bytes(system)[0]
        inputs, media = _walk(messages)
        tools = json_len(self.request.tools) if self.request.tools else 0
        count = (len(messages) if isinstance(messages, list) else 0) + (1 if system is not None else 0)
        return size + inputs + tools + media * MEDIA_PART_TOKENS + template_margin(count)

    def output_bound(self, model_cap: int | None) -> int:
        # Thinking tokens are part of `max_tokens`.
        return output_bound(self.request.max_tokens, 1, model_cap)

    async def count_prompt(self, counter: TokenCounter, encoding: str) -> int:
        # The model entry's encoding may be anything: Claude's counts are o200k_base estimates.
        return await counter.acount_prompt(COUNTING_ENCODING, prompt_messages(self.body), self.request.tools)

    async def tight_prompt_bound(self, counter: TokenCounter, encoding: str) -> int:
        # o200k_base does not bound Claude's tokenizer: only the byte bound is safe.
        return self.prompt_bound()


def parse_messages_request(raw: bytes) -> ParsedMessages:
    body = decode_object(raw)
    request = convert(body, MessagesRequest)
    _check_system(body)
    return ParsedMessages(request=request, body=body)


def output_texts(content: Any) -> list[str]:
    """Every generated text of a non-stream answer: text, thinking, tool-use input JSON."""
    texts: list[str] = []
    if not isinstance(content, list):
        return texts
    for block in content:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            texts.append(block["thinking"])
        elif kind == "tool_use" and "input" in block:
            try:
                texts.append(_encode_json(block["input"]).decode())
            except (TypeError, ValueError, OverflowError, msgspec.MsgspecError):
                continue
    return texts


def _query(query: str) -> str:
    if not query or len(query) > _MAX_QUERY:
        return ""
    return "?" + urllib.parse.quote(query, safe=_QUERY_SAFE)


class AnthropicMessages:
    operation = "messages"
    path = "/messages"
    protocol = "anthropic"

    def parse(self, raw: bytes) -> ParsedMessages:
        return parse_messages_request(raw)

    def upstream_request(self, headers: Mapping[str, str], query: str) -> tuple[str, dict[str, str]]:
        passed = {name: value for name in _PASSED_HEADERS if (value := headers.get(name))}
        passed.setdefault("anthropic-version", DEFAULT_VERSION)
        return self.path + _query(query), passed

    def error_body(self, exc: APIError) -> bytes:
        return error_body(exc)

    def read_body(self, call: ParsedMessages, payload: Mapping[str, Any]) -> Reading:
        model = payload.get("model")
        return Reading(
            output_texts(payload.get("content")),
            [],
            read_anthropic(payload.get("usage")),
            model if isinstance(model, str) else None,
        )

    def render_body(
        self,
        call: ParsedMessages,
        payload: dict[str, Any],
        usage: Usage,
        cost: Decimal | None,
        served: str | None,
        raw: bytes,
    ) -> bytes:
        return with_usage(payload, to_anthropic(usage, cost), served)

    def stream_meter(
        self, call: ParsedMessages, served: str | None, *, usage_with_choice: bool
    ) -> AnthropicStream:
        return AnthropicStream(served, call.model)


ANTHROPIC_MESSAGES = AnthropicMessages()
