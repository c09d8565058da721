"""`POST /v1/embeddings` (SPEC §6): OpenAI's embeddings, as one surface.

An embedding has input tokens only: the reservation is the inputs' UTF-8
bytes (a byte-level BPE token covers at least one byte; a token-array input
is its own length), the bill is the upstream's `prompt_tokens` at the model's
`input` rate plus its `request` fee, and when the upstream reports no usage
every input string is counted with tiktoken on its own (no chat overhead).

The answer's vectors are relayed untouched: only `usage` (and `model`, for an
alias) is replaced.  `render_body` re-encodes the decoded answer, which keeps
every float64 bit-exact (msgspec reads numbers correctly rounded and writes
the shortest text that reads back to the same bits; tests/surfaces/
test_embeddings.py checks subnormals, -0.0, the extreme exponents and
300,000 random bit patterns) and every string (base64 vectors) unchanged.
What re-encoding cannot keep is spelling: `1E5` comes back as `100000.0`, and
the integer literal `-0` (Go's encoding of a negative zero) is read as the
integer 0 and loses its sign.  `splice_usage` rewrites the upstream's own
bytes instead and keeps every byte of every other field; `render_raw` uses
it, for a pipeline that hands the surface the raw answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from tollway.billing.bounds import text_bytes
from tollway.errors import InvalidRequest
from tollway.surfaces.base import BodyCall, OpenAIFamily, Reading
from tollway.tokens import TokenCounter
from tollway.usage import MAX_TOKENS, ReportedUsage, Usage, read_reported
from tollway.validation import convert, decode_object

__all__ = [
    "EMBEDDINGS",
    "Embeddings",
    "EmbeddingsRequest",
    "Inputs",
    "ParsedEmbeddings",
    "input_only",
    "parse_embeddings_request",
    "read_inputs",
    "splice_usage",
]

_encode_json = msgspec.json.Encoder().encode
_encode_out = msgspec.json.Encoder(decimal_format="number").encode
_decode_top = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode


class Inputs(Struct, frozen=True):
    """A text input in any of OpenAI's four shapes (`input` here, `prompt` for completions)."""

    # Every string, in order.
    texts: list[str]
    # The lengths of every token-array input, in order.
    token_arrays: list[int]
    # How many separate inputs (a string or one flat token array is one).
    items: int

    @property
    def byte_bound(self) -> int:
        """Most tokens the inputs can be, without a tokenizer: UTF-8 bytes, token arrays' lengths."""
        return text_bytes(self.texts)[0] + sum(self.token_arrays)

    async def count(self, counter: TokenCounter, encoding: str) -> int:
        """Tokens of each string on its own (no overhead), token arrays their length."""
        total = sum(self.token_arrays)
        for text in self.texts:
            total += await counter.acount_text(encoding, text)
        return total


def _invalid(message: str, param: str, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(message, code=code, param=param)


def _token_ids(value: list[Any], param: str) -> int:
    for i, token in enumerate(value):
        if type(token) is not int:
            raise _invalid(
                f"'{param}[{i}]' must be a token id (an integer).", f"{param}[{i}]", "invalid_type"
            )
        if not 0 <= token <= MAX_TOKENS:
            raise _invalid(f"'{param}[{i}]' must be a non-negative token id.", f"{param}[{i}]")
    return len(value)


def read_inputs(value: Any, param: str, *, empty_strings: bool) -> Inputs:
    """Check `value` is a string, a list of strings, a list of token ids or a list of such lists.

    Lists must not be empty; strings must not be either unless `empty_strings`.  A problem is a
    400 naming the element (`input[2]`, `prompt[0][3]`).
    """
    shapes = "a string, an array of strings, an array of token ids or an array of token-id arrays"
    if isinstance(value, str):
        if not value and not empty_strings:
            raise _invalid(f"'{param}' must not be an empty string.", param)
        return Inputs([value], [], 1)
    if not isinstance(value, list):
        raise _invalid(f"'{param}' must be {shapes}.", param, "invalid_type")
    if not value:
        raise _invalid(f"'{param}' must not be an empty array.", param)
    first = value[0]
    if isinstance(first, str):
        for i, text in enumerate(value):
            if not isinstance(text, str):
                raise _invalid(
                    f"'{param}[{i}]' must be a string, as the first element is.",
                    f"{param}[{i}]",
                    "invalid_type",
                )
            if not text and not empty_strings:
                raise _invalid(f"'{param}[{i}]' must not be an empty string.", f"{param}[{i}]")
        return Inputs(list(value), [], len(value))
    if type(first) is int:
        return Inputs([], [_token_ids(value, param)], 1)
    if isinstance(first, list):
        lengths: list[int] = []
        for i, tokens in enumerate(value):
            if not isinstance(tokens, list):
                raise _invalid(
                    f"'{param}[{i}]' must be an array of token ids, as the first element is.",
                    f"{param}[{i}]",
                    "invalid_type",
                )
            if not tokens:
                raise _invalid(f"'{param}[{i}]' must not be an empty array.", f"{param}[{i}]")
            lengths.append(_token_ids(tokens, f"{param}[{i}]"))
        return Inputs([], lengths, len(value))
    raise _invalid(f"'{param}' must be {shapes}.", f"{param}[0]", "invalid_type")


class EmbeddingsRequest(Struct):
    model: Annotated[str, Meta(min_length=1)]
    input: Any  # checked by read_inputs
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int, Meta(ge=1, le=MAX_TOKENS)] | None = None


class ParsedEmbeddings(Struct, BodyCall):
    """The validated request, its inputs and the raw JSON object it came from: a `Call`."""

    request: EmbeddingsRequest
    inputs: Inputs
    body: dict[str, Any]

    @property
    def stream(self) -> bool:
        return False  # embeddings never stream; a `stream` field is passed on untouched

    def prompt_bound(self) -> int:
        return self.inputs.byte_bound

    def output_bound(self, model_cap: int | None) -> int:
        return 0

    async def count_prompt(self, counter: TokenCounter, encoding: str) -> int:
        return await self.inputs.count(counter, encoding)

    async def tight_prompt_bound(self, counter: TokenCounter, encoding: str) -> int:
        return await self.count_prompt(counter, encoding)


def parse_embeddings_request(raw: bytes) -> ParsedEmbeddings:
    body = decode_object(raw)
    request = convert(body, EmbeddingsRequest)
    return ParsedEmbeddings(request, read_inputs(request.input, "input", empty_strings=False), body)


def input_only(reported: ReportedUsage | None) -> ReportedUsage | None:
    """An embeddings report as billed: its prompt tokens, and nothing else (no output, no cache classes)."""
    if reported is None or reported.invalid:
        return reported  # absent: counted; invalid: counted and marked so
    return ReportedUsage(reported.prompt, 0, None, None, None, reported.raw)


def embeddings_usage(usage: Usage, cost: Decimal | None) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt_tokens": usage.prompt, "total_tokens": usage.total}
    if cost is not None:
        body["cost"] = cost
    return body


def splice_usage(raw: bytes, usage: Usage, cost: Decimal | None, served: str | None) -> bytes:
    """The upstream's answer with `usage` (and `model`, for an alias) replaced in its own bytes.

    Every other top-level value is written back exactly as the upstream wrote it (msgspec.Raw):
    only the whitespace between top-level members can change.
    """
    top = _decode_top(raw)
    if served is not None:
        top["model"] = msgspec.Raw(_encode_json(served))
    top["usage"] = msgspec.Raw(_encode_out(embeddings_usage(usage, cost)))
    return _encode_json(top)


class Embeddings(OpenAIFamily):
    operation = "embeddings"
    path = "/embeddings"

    def parse(self, raw: bytes) -> ParsedEmbeddings:
        return parse_embeddings_request(raw)

    def read_body(self, call: ParsedEmbeddings, payload: Mapping[str, Any]) -> Reading:
        model = payload.get("model")
        reported = input_only(read_reported(payload.get("usage")))
        return Reading([], [], reported, model if isinstance(model, str) else None)

    def render_body(
        self,
        call: ParsedEmbeddings,
        payload: dict[str, Any],
        usage: Usage,
        cost: Decimal | None,
        served: str | None,
        raw: bytes,
    ) -> bytes:
        """The upstream's own bytes with `usage` (and `model`) spliced in: vectors stay byte for byte."""
        return splice_usage(raw, usage, cost, served)

    def stream_meter(self, call: ParsedEmbeddings, served: str | None, *, usage_with_choice: bool) -> Any:
        raise AssertionError("embeddings never stream")  # `stream` is always False


EMBEDDINGS = Embeddings()
