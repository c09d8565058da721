"""Per-request behaviour knobs, parsed from the model name and the body's `mock` object."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from tollway.mock_upstream.errors import BadRequest

UsageMode = Literal["present", "absent", "with_choices"]
CacheWriteField = Literal["cache_write_tokens", "cache_creation_tokens", "cache_creation_input_tokens"]

SSE_STYLES = frozenset({"lf", "crlf", "multiline", "comments", "no_trailing_blank", "no_done", "split"})


_NON_NEGATIVE = (
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "chunks",
    "cut_after",
    "error_after",
    "headers_delay_ms",
    "ttft_ms",
    "chunk_delay_ms",
)


class Behaviour(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """How the mock answers one request.

    usage: "present" | "absent" (never any usage) | "with_choices" (streams put usage on the last
        chunk that has choices instead of a separate usage chunk, whatever include_usage says).
    prompt_tokens / completion_tokens: override the reported numbers (defaults are estimated).
    cached_tokens, reasoning_tokens: reported in the usage details; cache_write_tokens is reported
        under the name cache_write_field picks (the last is a top-level, Anthropic-style field).
    reasoning_text: stream three reasoning_content deltas first. tool_call: call get_weather instead.
    chunks: content words. headers_delay_ms, ttft_ms, chunk_delay_ms: pacing.
    fail: answer with this HTTP error status. cut_after / error_after: after that many content
        chunks, drop the connection / send an error event and end the stream. echo: answer with the
        request body as compact JSON. sse_style: framing variants, combined with "+".
    """

    usage: UsageMode = "present"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    cache_write_tokens: int | None = None
    cache_write_field: CacheWriteField = "cache_write_tokens"
    reasoning_tokens: int | None = None
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
        # msgspec turns ValueError raised here into a ValidationError naming the problem.
        for name in _NON_NEGATIVE:
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"`{name}` must be >= 0")
        if self.fail is not None and not 400 <= self.fail <= 599:
            raise ValueError("`fail` must be an HTTP error status between 400 and 599")
        unknown = self.sse_styles - SSE_STYLES
        if unknown:
            raise ValueError(f"unknown sse_style {sorted(unknown)}; expected some of {sorted(SSE_STYLES)}")

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
        raise BadRequest(f"Invalid mock knob: {exc}", "mock") from exc
