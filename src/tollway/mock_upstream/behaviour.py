"""Per-request behaviour knobs, parsed from the model name and the body's `mock` object."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from tollway.mock_upstream.errors import BadRequest

UsageMode = Literal["present", "absent", "with_choices"]
CacheWriteField = Literal["cache_write_tokens", "cache_creation_tokens", "cache_creation_input_tokens"]

SSE_STYLES = frozenset(
    {"lf", "crlf", "multiline", "comments", "no_trailing_blank", "no_done", "split", "garbage"}
)

# Upper bounds, so that no single request can make the mock (or a server embedding it) do unbounded work.
MAX_CHUNKS = 10_000
MAX_DELAY_MS = 600_000  # ten minutes, for each pacing knob and for their sum over a whole response
MAX_TOKENS = 2**53 - 1  # the largest integer a JSON reader that uses doubles still reads exactly

_TOKEN_KNOBS = (
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cache_write_1h_tokens",
)
_CHUNK_KNOBS = ("chunks", "cut_after", "error_after")
_DELAY_KNOBS = ("headers_delay_ms", "ttft_ms", "chunk_delay_ms")
# As chat.py streams them: three reasoning words, a tool call in three pieces.
_REASONING_WORDS = 3
_TOOL_CALL_PIECES = 3


class KnobError(ValueError):
    """A knob value out of range; `knob` names it so the 400 can point at it."""

    def __init__(self, knob: str, message: str) -> None:
        super().__init__(message)
        self.knob = knob


class Behaviour(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """How the mock answers one request.

    usage: "present" | "absent" (never any usage) | "with_choices" (streams put usage on the last
        chunk that has choices instead of a separate usage chunk, whatever include_usage says).
    prompt_tokens / completion_tokens: override the reported numbers (defaults are estimated).
    cached_tokens, reasoning_tokens: reported in the usage details; cache_write_tokens is reported
        under the name cache_write_field picks (the last is a top-level, Anthropic-style field).
    cache_write_1h_tokens: Anthropic's Messages API only (anthropic.py): how many of the
        cache_write_tokens are 1-hour writes (`cache_creation.ephemeral_1h_input_tokens`; the rest are
        5-minute ones). At most cache_write_tokens. How the other knobs map onto Anthropic's answers
        (input_tokens, cache_read/cache_creation_input_tokens, thinking and tool_use blocks, events)
        is in anthropic_events.py and anthropic.py.
    usage_override: any JSON value (null included), sent verbatim as `usage` wherever usage would go
        (the non-streamed body, the stream's usage chunk, or its last chunk under "with_choices") in
        place of the computed object, for testing how a proxy copes with nonsense usage: huge,
        fractional or negative numbers, a string, a list. Not allowed with usage="absent".
    reasoning_text: stream three reasoning_content deltas first. tool_call: call get_weather instead.
    chunks: content words. headers_delay_ms, ttft_ms, chunk_delay_ms: pacing.
    fail: answer with this HTTP error status. cut_after / error_after: after that many content
        chunks, drop the connection / send an error event and end the stream. echo: answer with the
        request body as compact JSON. sse_style: framing variants, combined with "+": lf (default),
        crlf, multiline, comments, no_trailing_blank, no_done, split, and garbage (a few `data:`
        events whose payload is not JSON, such as `data: not json`, between the real ones).

    Bounds (a value outside them is a 400 naming the knob): token numbers 0..2**53-1; chunks,
    cut_after and error_after 0..10,000; each delay 0..600,000 ms, and headers_delay_ms + ttft_ms +
    chunk_delay_ms x (paced chunks) at most 600,000 ms too. `n` (a request field, not a knob) is
    1..128, and n x chunks may not exceed 100,000 nor n x the answer's characters 8,000,000.
    """

    usage: UsageMode = "present"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    cache_write_tokens: int | None = None
    cache_write_field: CacheWriteField = "cache_write_tokens"
    reasoning_tokens: int | None = None
    cache_write_1h_tokens: int = 0
    # UNSET (the default) means "compute usage"; every JSON value, null included, is an override.
    usage_override: Any = msgspec.UNSET
    reasoning_text: bool = False
    tool_call: bool = False
    chunks: int = 8
    headers_delay_ms: float = 0.0
    ttft_ms: float = 0.0
    chunk_delay_ms: float = 0.0
    fail: int | None = None
    cut_after: int | None = None
    error_after: int | None = None
    echo: bool = False
    # Styles combine with "+" (e.g. "crlf+split") because commas already separate knobs in a model name.
    sse_style: str | list[str] = "lf"

    def __post_init__(self) -> None:
        # msgspec turns ValueError raised here into a ValidationError whose __cause__ is this error.
        for names, limit in (
            (_TOKEN_KNOBS, MAX_TOKENS),
            (_CHUNK_KNOBS, MAX_CHUNKS),
            (_DELAY_KNOBS, MAX_DELAY_MS),
        ):
            for name in names:
                value = getattr(self, name)
                # Written so that NaN fails too (a model name can say `ttft_ms=nan` or `=inf`).
                if value is not None and not 0 <= value <= limit:
                    raise KnobError(name, f"`{name}` must be between 0 and {limit}")
        total = self.headers_delay_ms + self.ttft_ms + self.chunk_delay_ms * self.paced_steps
        if total > MAX_DELAY_MS:
            raise KnobError(
                "chunk_delay_ms",
                f"`headers_delay_ms` + `ttft_ms` + `chunk_delay_ms` x {self.paced_steps} paced chunks "
                f"comes to {total:.0f} ms; a response may take at most {MAX_DELAY_MS} ms",
            )
        if self.cache_write_1h_tokens > (self.cache_write_tokens or 0):
            raise KnobError(
                "cache_write_1h_tokens", "`cache_write_1h_tokens` may be at most `cache_write_tokens`"
            )
        if self.fail is not None and not 400 <= self.fail <= 599:
            raise KnobError("fail", "`fail` must be an HTTP error status between 400 and 599")
        if self.usage == "absent" and self.usage_override is not msgspec.UNSET:
            raise KnobError("usage_override", '`usage_override` cannot be combined with usage="absent"')
        unknown = self.sse_styles - SSE_STYLES
        if unknown:
            raise KnobError(
                "sse_style", f"unknown `sse_style` {sorted(unknown)}; expected some of {sorted(SSE_STYLES)}"
            )

    @property
    def paced_steps(self) -> int:
        """How many times a response waits `chunk_delay_ms` (at most: max_tokens can cut it short)."""
        content = _TOOL_CALL_PIECES if self.tool_call else 1 if self.echo else self.chunks
        if self.reasoning_text:
            # The tool call's opening gets a step of its own once reasoning comes before it.
            content += _REASONING_WORDS + (1 if self.tool_call else 0)
        # The first word goes out with the role chunk, right after ttft_ms.
        return max(content - 1, 0)

    @property
    def sse_styles(self) -> frozenset[str]:
        raw = self.sse_style
        parts = raw.split("+") if isinstance(raw, str) else raw
        return frozenset(p.strip() for p in parts if p.strip())


KNOBS = frozenset(Behaviour.__struct_fields__)
DEFAULT = Behaviour()


def parse_scalar(text: str) -> int | float | bool | str:
    """Type a value written in a model name: int, then float, then bool, else the string itself."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        pass
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return text


def model_options(model: str) -> dict[str, Any]:
    """Knobs written after the last colon of a model name, e.g. `demo:usage=absent,chunks=64`.

    A suffix without any `=` is left alone, so names like `ft:gpt-4o:org` carry no options.
    """
    _, colon, suffix = model.rpartition(":")
    if not colon or "=" not in suffix:
        return {}
    options: dict[str, Any] = {}
    for piece in suffix.split(","):
        if not piece.strip():
            continue
        key, eq, value = piece.partition("=")
        if not eq:
            raise BadRequest(f"Malformed mock option {piece!r} in model name; expected key=value", "model")
        options[key.strip()] = parse_scalar(value.strip())
    return options


def resolve(model: object, body_knobs: object) -> Behaviour:
    """Merge model-name options with the body's `mock` object (which wins) into a Behaviour."""
    merged: dict[str, Any] = model_options(model) if isinstance(model, str) else {}
    if body_knobs is not None:
        if not isinstance(body_knobs, dict):
            raise BadRequest("`mock` must be a JSON object", "mock")
        merged.update(body_knobs)
    if not merged:
        return DEFAULT
    for key in merged:
        if key not in KNOBS:
            raise BadRequest(
                f"Unknown mock knob {key!r}; known knobs: {', '.join(sorted(KNOBS))}",
                f"mock.{key}",
                "unknown_mock_knob",
            )
    try:
        return msgspec.convert(merged, Behaviour)
    except msgspec.ValidationError as exc:
        cause = exc.__cause__
        param = f"mock.{cause.knob}" if isinstance(cause, KnobError) else "mock"
        raise BadRequest(f"Invalid mock knob: {exc}", param) from exc
