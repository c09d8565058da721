"""`POST /v1/completions` (SPEC §6): OpenAI's legacy completions, as one surface.

`prompt` is a string, a list of strings, a list of token ids or a list of
such lists; each prompt gets `n` choices (`best_of` candidates generated).
Bounds: the prompts' UTF-8 bytes (token arrays their length); output
`max(n, best_of)` x the cap (`max_tokens`, else the model's
`max_output_tokens`, else `DEFAULT_OUTPUT_TOKENS`: providers' defaults differ,
so OpenAI's 16 is not assumed) for every prompt, plus, with `echo`, the
prompts again, since they come back as output text.  When the upstream
reports no usage, the prompt is the tokens of each prompt string (no chat
overhead) and the completion the tokens of the text relayed (echoed prompts
included).  Streams follow the chat rules (see `completions_stream`).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from tollway.billing.bounds import MAX_OUTPUT_TOKENS, output_bound
from tollway.errors import InvalidRequest
from tollway.surfaces.base import BodyCall, OpenAIFamily, Reading, with_usage
from tollway.surfaces.completions_stream import CompletionsStream
from tollway.surfaces.embeddings import Inputs, read_inputs
from tollway.tokens import TokenCounter
from tollway.usage import MAX_TOKENS, Usage, to_openai
from tollway.validation import convert, decode_object

__all__ = [
    "COMPLETIONS",
    "Completions",
    "CompletionsRequest",
    "ParsedCompletion",
    "parse_completions_request",
]

_encode_json = msgspec.json.Encoder().encode
_encode_out = msgspec.json.Encoder(decimal_format="number").encode

MAX_N = 128
MAX_BEST_OF = 20  # OpenAI's limit


class StreamOptions(Struct):
    include_usage: bool | None = None


class CompletionsRequest(Struct):
    model: Annotated[str, Meta(min_length=1)]
    prompt: Any  # checked by read_inputs
    max_tokens: Annotated[int, Meta(ge=1, le=MAX_TOKENS)] | None = None
    n: Annotated[int, Meta(ge=1, le=MAX_N)] | None = None
    best_of: Annotated[int, Meta(ge=1, le=MAX_BEST_OF)] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    echo: bool | None = None


class ParsedCompletion(Struct, BodyCall):
    """The validated request, its prompts and the raw JSON object it came from: a `Call`."""

    injects_usage = True  # OpenAI's chunk streams report usage only when asked

    request: CompletionsRequest
    prompts: Inputs
    body: dict[str, Any]

    @property
    def asked_for_usage(self) -> bool:
        options = self.request.stream_options
        return options is not None and bool(options.include_usage)

    @property
    def candidates(self) -> int:
        """Completions generated per prompt: `best_of` when given (it is at least `n`), else `n`."""
        n = self.request.n or 1
        return max(n, self.request.best_of or n)

    def prompt_bound(self) -> int:
        return self.prompts.byte_bound

    def output_bound(self, model_cap: int | None) -> int:
        candidates = self.candidates
        generated = output_bound(self.request.max_tokens, candidates * self.prompts.items, model_cap)
        echoed = candidates * self.prompts.byte_bound if self.request.echo else 0
        return min(generated + echoed, MAX_OUTPUT_TOKENS)

    async def count_prompt(self, counter: TokenCounter, encoding: str) -> int:
        return await self.prompts.count(counter, encoding)

    async def tight_prompt_bound(self, counter: TokenCounter, encoding: str) -> int:
        return await self.count_prompt(counter, encoding)


def parse_completions_request(raw: bytes) -> ParsedCompletion:
    body = decode_object(raw)
    request = convert(body, CompletionsRequest)
    n = request.n or 1
    if request.best_of is not None and request.best_of < n:
        raise InvalidRequest(
            f"'best_of' must be at least 'n' ({n}); it is {request.best_of}.",
            code="invalid_value",
            param="best_of",
        )
    return ParsedCompletion(request, read_inputs(request.prompt, "prompt", empty_strings=True), body)


class Completions(OpenAIFamily):
    operation = "completions"
    path = "/completions"

    def parse(self, raw: bytes) -> ParsedCompletion:
        return parse_completions_request(raw)

    def read_body(self, call: ParsedCompletion, payload: Mapping[str, Any]) -> Reading:
        text: list[str] = []
        choices = payload.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, Mapping) and isinstance(choice.get("text"), str):
                text.append(choice["text"])
        return Reading.of(payload, text, [])

    def render_body(
        self,
        call: ParsedCompletion,
        payload: dict[str, Any],
        usage: Usage,
        cost: Decimal | None,
        served: str | None,
        raw: bytes,
    ) -> bytes:
        return with_usage(payload, to_openai(usage, cost), served)

    def stream_meter(
        self, call: ParsedCompletion, served: str | None, *, usage_with_choice: bool
    ) -> CompletionsStream:
        return CompletionsStream(served, usage_with_choice=usage_with_choice and not call.asked_for_usage)


COMPLETIONS = Completions()
