"""Which strings of a chat request are tokens, following OpenAI's published counting rule.

The rule is the OpenAI cookbook's ``num_tokens_from_messages`` ("How to count tokens with
tiktoken"), which matches the API's ``prompt_tokens`` for gpt-3.5-turbo, gpt-4 and gpt-4o:
every message costs 3 framing tokens plus its string fields, a ``name`` costs 1 more, and the
reply is primed with 3. This module only collects the strings and the fixed overhead; the
encoding is done by `TokenCounter`, so a large prompt can be encoded off the event loop.

Requests are client input that has not necessarily been validated yet: anything that is not
the expected shape is skipped, never raised on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

__all__ = ["TOKENS_PER_MESSAGE", "TOKENS_PER_NAME", "TOKENS_REPLY_PRIMING", "PromptTexts", "prompt_texts"]

TOKENS_PER_MESSAGE = 3  # <|start|>{role}<|message|> ... <|end|>, less the role itself
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3  # <|start|>assistant<|message|>

# What msgspec can fail with on arbitrary client JSON re-encoded (unsupported types, lone
# surrogates, very deep nesting).
_ENCODE_ERRORS = (TypeError, ValueError, OverflowError, RecursionError, msgspec.MsgspecError)


@dataclass(slots=True)
class PromptTexts:
    """The strings to encode one by one, and the tokens the format adds around them."""

    texts: list[str] = field(default_factory=list)
    overhead: int = 0

    @property
    def chars(self) -> int:
        return sum(len(text) for text in self.texts)


def prompt_texts(messages: object, tools: object = None) -> PromptTexts:
    """Collect the strings of a chat-completions prompt that count as tokens.

    Per message: every string-valued field (role, content, name, tool_call_id, refusal, ...);
    of a list ``content``, the ``text`` of "text" parts (and the ``refusal`` of "refusal"
    parts) — image, audio and file parts are not counted; of ``tool_calls`` and the legacy
    ``function_call``, the function name and arguments strings.

    Tools are counted as their compact JSON. That is an estimate: OpenAI renders tool
    definitions into the prompt in an unpublished format. On the cookbook's weather-tool
    example the API reported 101 prompt tokens (gpt-4o) and 105 (gpt-4); this gives 118 and
    117, so it errs on the high side there.
    """
    out = PromptTexts(overhead=TOKENS_REPLY_PRIMING)
    if isinstance(messages, list | tuple):
        for message in messages:
            if isinstance(message, Mapping):
                out.overhead += TOKENS_PER_MESSAGE
                _add_message(out, message)
    if isinstance(tools, list | tuple):
        for tool in tools:
            text = _compact_json(tool)
            if text is not None:
                out.texts.append(text)
    return out


def _add_message(out: PromptTexts, message: Mapping[Any, Any]) -> None:
    for key, value in message.items():
        if isinstance(value, str):
            out.texts.append(value)
            if key == "name":
                out.overhead += TOKENS_PER_NAME
        elif key == "content" and isinstance(value, list):
            _add_content_parts(out, value)
        elif key == "tool_calls" and isinstance(value, list):
            for call in value:
                if isinstance(call, Mapping):
                    _add_function(out, call.get("function"))
        elif key == "function_call":
            _add_function(out, value)


def _add_content_parts(out: PromptTexts, parts: list[Any]) -> None:
    for part in parts:
        if not isinstance(part, Mapping):
            continue
        # Only these parts are text the model reads; image, audio and file parts are billed
        # by other rules (tiles, seconds) that a tokenizer cannot reproduce.
        part_type = part.get("type")
        if part_type in ("text", "refusal"):
            text = part.get(part_type)
            if isinstance(text, str):
                out.texts.append(text)


def _add_function(out: PromptTexts, function: object) -> None:
    if isinstance(function, Mapping):
        for key in ("name", "arguments"):
            value = function.get(key)
            if isinstance(value, str):
                out.texts.append(value)


def _compact_json(value: object) -> str | None:
    try:
        return msgspec.json.encode(value).decode()
    except _ENCODE_ERRORS:
        return None
