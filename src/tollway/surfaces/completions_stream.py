"""A streamed legacy completion: `text_completion` chunks whose choices carry `text`.

The machinery is chat's (`ChunkStream`): chunks relayed byte for byte, usage
moved off a chunk that still has choices, the alias rename, non-JSON data
dropped, exactly one closing `"choices": []` usage chunk, then `[DONE]` or an
error event.  Only the chunk shape differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec
from msgspec import Struct

from tollway.surfaces.chat_stream import ChunkStream

__all__ = ["CompletionsStream"]


class _TextChoice(Struct):
    text: str | None = None
    finish_reason: str | None = None


class _TextChunk(Struct):
    id: Any = None
    created: Any = None
    model: Any = None
    choices: list[_TextChoice] | None = None
    usage: Any = None
    error: Any = None


_chunk_decoder = msgspec.json.Decoder(_TextChunk)


class CompletionsStream(ChunkStream):
    __slots__ = ()

    object = "text_completion"
    empty_choice: ClassVar[dict[str, Any]] = {"index": 0, "text": "", "logprobs": None, "finish_reason": None}

    decoder = _chunk_decoder

    def _meter(self, chunk: _TextChunk) -> None:
        for choice in chunk.choices or ():
            if choice.finish_reason:
                self.finished = True
            if choice.text:
                self.text.append(choice.text)

    def _meter_loose(self, choice: Mapping[str, Any]) -> None:
        text = choice.get("text")
        if isinstance(text, str) and text:
            self.text.append(text)
