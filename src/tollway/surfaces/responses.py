"""`POST /v1/responses` (SPEC §6): OpenAI's Responses API, as one surface.

The body is decoded once into plain JSON values (so unknown fields pass to
the upstream untouched, only `model` renamed) and checked against
`ResponsesRequest` for what tollway itself relies on; any problem is a 400
whose `param` names the field.  Responses streams always end with usage in
their terminal event, so nothing is added to the forwarded body.

Counting, when the upstream reports no usage, treats the prompt as chat
messages (OpenAI's chat rule, `TokenCounter.count_prompt`): `instructions` a
system message; a string `input` one user message; `message` items (and items
with a `role`) with their text parts; `function_call_output` items a tool
message of their output text; `function_call` items an assistant tool call
(name and arguments); tools as their compact JSON, as on chat completions.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from tollway.billing.bounds import (
    MEDIA_PART_TOKENS,
    json_len,
    output_bound,
    template_margin,
    text_bytes,
)
from tollway.errors import InvalidRequest
from tollway.surfaces.base import BodyCall, OpenAIFamily, Reading, with_usage
from tollway.surfaces.responses_stream import ResponsesStream, output_texts, to_responses
from tollway.tokens import TokenCounter
from tollway.usage import MAX_TOKENS, Usage
from tollway.validation import convert, decode_object

__all__ = [
    "RESPONSES",
    "STORED_CONTEXT_TOKENS",
    "ParsedResponses",
    "Responses",
    "ResponsesRequest",
    "parse_responses_request",
    "prompt_messages",
]

_encode_json = msgspec.json.Encoder().encode
_encode_out = msgspec.json.Encoder(decimal_format="number").encode

# Prompt tokens allowed for context the upstream keeps itself and the body does not show
# (`previous_response_id`, `conversation`, a stored `prompt`): the body cannot bound them, so the
# reservation assumes a full 128k context window.
STORED_CONTEXT_TOKENS = 131_072
_STORED_CONTEXT_FIELDS = ("previous_response_id", "conversation", "prompt")
# `input_file` parts are not in `bounds`' media types (their bytes are counted there); a file's
# pages can also become images, so each gets the media allowance on top of its bytes.
_FILE_PART = "input_file"
_TEXT_PARTS = ("input_text", "output_text", "text")


class ResponsesRequest(Struct):
    # `input` and `instructions` are checked by hand (`_check_texts`): `convert` refuses NUL
    # characters in a struct's strings (a rule for what tollway stores), and prompts are not stored.
    model: Annotated[str, Meta(min_length=1)]
    stream: bool | None = None
    max_output_tokens: Annotated[int, Meta(ge=1, le=MAX_TOKENS)] | None = None
    tools: list[dict[str, Any]] | None = None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "array" if isinstance(value, list) else "object"


def _check_texts(body: Mapping[str, Any]) -> None:
    value = body.get("input")
    if value is not None and not isinstance(value, str | list):
        raise InvalidRequest(
            f"Invalid value for 'input': Expected `str | array | null`, got `{_json_type(value)}`.",
            code="invalid_type",
            param="input",
        )
    if isinstance(value, list):
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise InvalidRequest(
                    f"Invalid value for 'input[{index}]': Expected `object`, got `{_json_type(item)}`.",
                    code="invalid_type",
                    param=f"input[{index}]",
                )
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise InvalidRequest(
            f"Invalid value for 'instructions': Expected `str | null`, got `{_json_type(instructions)}`.",
            code="invalid_type",
            param="instructions",
        )


def _text_parts(parts: list[Any]) -> list[dict[str, Any]]:
    """The text parts of a Responses content list, as chat content parts (others are not counted)."""
    out: list[dict[str, Any]] = []
    for part in parts:
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
            out.append({"type": "text", "text": part["text"]})
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            out.append({"type": "refusal", "refusal": part["refusal"]})
    return out


def _content(value: Any) -> str | list[dict[str, Any]] | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return _text_parts(value)
    return None


def prompt_messages(body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[Any]]:
    """(the prompt as chat messages, by SPEC §6's rule; the input items that rule does not cover)."""
    messages: list[dict[str, Any]] = []
    others: list[Any] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        messages.append({"role": "system", "content": instructions})
    given = body.get("input")
    if isinstance(given, str):
        messages.append({"role": "user", "content": given})
    elif isinstance(given, list):
        for item in given:
            if not isinstance(item, Mapping):
                continue
            kind = item.get("type")
            if kind == "message" or (kind is None and "role" in item):
                message: dict[str, Any] = {}
                if isinstance(item.get("role"), str):
                    message["role"] = item["role"]
                content = _content(item.get("content"))
                if content is not None:
                    message["content"] = content
                messages.append(message)
            elif kind == "function_call_output":
                output = _content(item.get("output"))
                messages.append({"role": "tool", **({"content": output} if output is not None else {})})
            elif kind == "function_call":
                function = {k: item[k] for k in ("name", "arguments") if isinstance(item.get(k), str)}
                messages.append({"role": "assistant", "tool_calls": [{"function": function}]})
            else:
                others.append(item)  # reasoning, tool results of built-in tools, item references, …
    return messages, others


def _count_type(value: Any, kind: str) -> int:
    """How many objects inside `value` have `"type": kind` (iterative: any nesting depth)."""
    count = 0
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, Mapping):
            if item.get("type") == kind:
                count += 1
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return count


class ParsedResponses(Struct, BodyCall):
    """The validated request and the raw JSON object it came from: a `Call`."""

    request: ResponsesRequest
    body: dict[str, Any]

    def _allowances(self) -> int:
        """Tokens the body's bytes do not show: media parts, files, and context kept upstream."""
        given = self.body.get("input")
        media = text_bytes(given)[1] + _count_type(given, _FILE_PART)
        stored = any(self.body.get(name) is not None for name in _STORED_CONTEXT_FIELDS)
        return media * MEDIA_PART_TOKENS + (STORED_CONTEXT_TOKENS if stored else 0)

    def _schema_bytes(self) -> int:
        """Bytes of what reaches the model as JSON text: tool schemas and a structured-output format."""
        size = json_len(self.request.tools) if self.request.tools else 0
        text = self.body.get("text")
        return size + (json_len(text) if isinstance(text, dict) else 0)

    def _items(self) -> int:
        given = self.body.get("input")
        items = len(given) if isinstance(given, list) else 1
        return items + (1 if self.body.get("instructions") is not None else 0)

    def prompt_bound(self) -> int:
        size = text_bytes(self.body.get("input"))[0] + text_bytes(self.body.get("instructions"))[0]
        return size + self._schema_bytes() + self._allowances() + template_margin(self._items())

    def output_bound(self, model_cap: int | None) -> int:
        return output_bound(self.request.max_output_tokens, 1, model_cap)

    async def count_prompt(self, counter: TokenCounter, encoding: str) -> int:
        messages, _ = prompt_messages(self.body)
        return await counter.acount_prompt(encoding, messages, self.request.tools)

    async def tight_prompt_bound(self, counter: TokenCounter, encoding: str) -> int:
        messages, others = prompt_messages(self.body)
        counted = await counter.acount_prompt(encoding, messages, self.request.tools)
        text = self.body.get("text")
        formats = json_len(text) if isinstance(text, dict) else 0
        # Items the chat rule does not cover are bounded by their bytes, as in `prompt_bound`.
        uncovered = text_bytes(others)[0]
        margin = template_margin(len(messages) + len(others))
        return counted + formats + uncovered + self._allowances() + margin


def parse_responses_request(raw: bytes) -> ParsedResponses:
    body = decode_object(raw)
    request = convert(body, ResponsesRequest)
    _check_texts(body)
    return ParsedResponses(request=request, body=body)


class Responses(OpenAIFamily):
    operation = "responses"
    path = "/responses"

    def parse(self, raw: bytes) -> ParsedResponses:
        return parse_responses_request(raw)

    def read_body(self, call: ParsedResponses, payload: Mapping[str, Any]) -> Reading:
        text, reasoning = output_texts(payload.get("output"))
        return Reading.of(payload, text, reasoning)

    def render_body(
        self,
        call: ParsedResponses,
        payload: dict[str, Any],
        usage: Usage,
        cost: Decimal | None,
        served: str | None,
        raw: bytes,
    ) -> bytes:
        return with_usage(payload, to_responses(usage, cost), served)

    def stream_meter(
        self, call: ParsedResponses, served: str | None, *, usage_with_choice: bool
    ) -> ResponsesStream:
        return ResponsesStream(served, call.model)


RESPONSES = Responses()
