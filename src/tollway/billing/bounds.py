"""Worst-case token bounds for a request, used to size its credit reservation.

The prompt bound needs no tokenizer: a byte-level BPE token covers at least
one byte, so a text's UTF-8 length bounds its token count for any such
tokenizer, plus a margin for chat-template tokens.  Media parts (images,
audio, files) are not bytes of text: each gets a fixed allowance.  When the
balance cannot cover the byte bound, the tighter tiktoken count is tried
(for models whose encoding is known).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "MAX_OUTPUT_TOKENS",
    "MEDIA_PART_TOKENS",
    "json_len",
    "media_parts",
    "output_bound",
    "prompt_byte_bound",
    "template_margin",
    "text_bytes",
]

# Enough for a high-detail image of the largest size OpenAI bills (and for most audio clips).
MEDIA_PART_TOKENS = 8192
# Output cap assumed when neither the request nor the model entry gives one.
DEFAULT_OUTPUT_TOKENS = 16384
# No request produces more tokens than this (the spec's bound on believable usage numbers):
# a larger `max_tokens` changes nothing but the size of the numbers the reservation works with.
MAX_OUTPUT_TOKENS = 2**53 - 1
_PER_MESSAGE = 8
_PER_REQUEST = 16
_MEDIA_TYPES = frozenset({"image_url", "input_image", "input_audio", "audio", "file", "image"})
_encode_json = msgspec.json.Encoder().encode


def template_margin(messages: int) -> int:
    """Tokens chat templates add around messages (OpenAI's format uses 3 + 3; others a few more)."""
    return _PER_MESSAGE * messages + _PER_REQUEST


def text_bytes(value: Any) -> tuple[int, int]:
    """(UTF-8 bytes of every string inside `value`, number of media parts).

    Iterative, so no nesting depth can exhaust the stack.  A string is counted as 4 bytes per
    character when it cannot be encoded (a lone surrogate): still an upper bound.
    """
    total = media = 0
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            total += _utf8_len(item)
        elif type(item) is list:  # JSON's own types first: `isinstance(…, Mapping)` is an ABC's check
            pending.extend(item)
        elif type(item) is dict or isinstance(item, Mapping):
            kind = item.get("type")  # any JSON value: only a string can be hashed into the set
            if isinstance(kind, str) and kind in _MEDIA_TYPES:
                media += 1
            else:
                pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return total, media


def _utf8_len(text: str) -> int:
    if text.isascii():
        return len(text)
    try:
        return len(text.encode())
    except UnicodeEncodeError:
        return 4 * len(text)


def json_len(value: object) -> int:
    """Bytes of `value` as compact JSON, or an upper bound when it cannot be encoded as it is."""
    try:
        return len(_encode_json(value))
    except (TypeError, ValueError, OverflowError, RecursionError, msgspec.MsgspecError):
        # Every string at its longest escaped form (\uXXXX, 6 bytes a character) plus punctuation.
        size, _media = text_bytes(value)
        return 6 * size + _punctuation(value)


def _punctuation(value: object) -> int:
    """Generous bytes of brackets, commas, colons, quotes and scalars outside strings."""
    count = 0
    pending = [value]
    while pending:
        item = pending.pop()
        count += 32
        if isinstance(item, Mapping):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return count


def prompt_byte_bound(messages: object, tools: object = None) -> int:
    """The byte bound of a list of chat-style messages (and tool schemas)."""
    size, media = text_bytes(messages)
    # Tool schemas reach the model as JSON text: keys and punctuation count too.
    tools_size = json_len(tools) if tools else 0
    count = len(messages) if isinstance(messages, list) else 0
    return size + tools_size + media * MEDIA_PART_TOKENS + template_margin(count)


def media_parts(value: object) -> int:
    return text_bytes(value)[1]


def output_bound(cap: int | None, choices: int, model_cap: int | None) -> int:
    """Most output tokens a request can produce: `choices` times its cap (or the model's).

    Never more than `MAX_OUTPUT_TOKENS`, however large the client's cap and choice count: a
    reservation is sized from it, and its numbers must stay printable and storable.
    """
    if cap is None:
        cap = model_cap or DEFAULT_OUTPUT_TOKENS
    elif model_cap is not None:
        cap = min(cap, model_cap)
    return min(choices * min(cap, MAX_OUTPUT_TOKENS), MAX_OUTPUT_TOKENS)
