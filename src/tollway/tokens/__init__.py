"""Token counting: offline tiktoken encodings and OpenAI's chat-format rule."""

from tollway.tokens.chat import PromptTexts, prompt_texts
from tollway.tokens.counter import DEFAULT_OFFLOAD_CHARS, TokenCounter
from tollway.tokens.encodings import (
    ENCODING_NAMES,
    EXPECTED_SHA256,
    EncodingError,
    encoding_for_model,
    load_encoding,
)

__all__ = [
    "DEFAULT_OFFLOAD_CHARS",
    "ENCODING_NAMES",
    "EXPECTED_SHA256",
    "EncodingError",
    "PromptTexts",
    "TokenCounter",
    "encoding_for_model",
    "load_encoding",
    "prompt_texts",
]
