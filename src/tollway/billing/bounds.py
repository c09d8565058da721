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

from tollway.chat.request import ParsedChat

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "MEDIA_PART_TOKENS",
    "media_parts",
    "output_bound",
    "prompt_byte_bound",
    "template_margin",
]

# Enough for a high-detail image of the largest size OpenAI bills (and for most audio clips).
MEDIA_PART_TOKENS = 8192
# Output cap assumed when neither the request nor the model entry gives one.
DEFAULT_OUTPUT_TOKENS = 16384
_PER_MESSAGE = 8
_PER_REQUEST = 16
_MEDIA_TYPES = frozenset({"image_url", "input_image", "input_audio", "audio", "file", "image"})


def template_margin(messages: int) -> int:
    """Tokens chat templates add around messages (OpenAI's format uses 3 + 3; others a few more)."""
    return _PER_MESSAGE * messages + _PER_REQUEST


def _text_bytes(value: Any) -> tuple[int, int]:
    """(UTF-8 bytes of every string inside `value`, number of media parts)."""
    if isinstance(value, str):
        return len(value.encode()), 0
    if isinstance(value, Mapping):
        if value.get("type") in _MEDIA_TYPES:
            return 0, 1
        total = media = 0
        for item in value.values():
            size, count = _text_bytes(item)
            total, media = total + size, media + count
        return total, media
    if isinstance(value, list):
        total = media = 0
        for item in value:
            size, count = _text_bytes(item)
            total, media = total + size, media + count
        return total, media
    return 0, 0


def prompt_byte_bound(chat: ParsedChat) -> int:
    messages = chat.body.get("messages")
    size, media = _text_bytes(messages)
    tools = chat.body.get("tools")
    # Tool schemas reach the model as JSON text: keys and punctuation count too.
    tools_size = len(msgspec.json.encode(tools)) if tools else 0
    count = len(messages) if isinstance(messages, list) else 0
    return size + tools_size + media * MEDIA_PART_TOKENS + template_margin(count)


def media_parts(chat: ParsedChat) -> int:
    return _text_bytes(chat.body.get("messages"))[1]


def output_bound(chat: ParsedChat, model_cap: int | None) -> int:
    """Most completion tokens the request can produce: n choices times its cap."""
    cap = chat.output_cap
    if cap is None:
        cap = model_cap or DEFAULT_OUTPUT_TOKENS
    elif model_cap is not None:
        cap = min(cap, model_cap)
    return (chat.request.n or 1) * cap
