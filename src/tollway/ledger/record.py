"""One billed request, as recorded: immutable once written."""

from __future__ import annotations

from msgspec import Struct

__all__ = ["UsageRecord"]


class UsageRecord(Struct, frozen=True, kw_only=True):
    id: str
    workspace_id: str
    key_id: str
    model: str
    upstream: str
    price_id: str
    stream: bool
    end_state: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    prompt_source: str
    completion_source: str
    estimated: bool
    rates: str
    cost_nano: int
    started_at: int
    finished_at: int
    # The upstream sent a usage report that was not believable: it was ignored and the usage counted.
    report_invalid: bool = False
    # What the upstream called the model that answered (the served name is `model`).
    upstream_model: str = ""
    # The API surface that served it (SPEC §6), e.g. "chat.completions", "responses".
    operation_type: str = "chat.completions"
    # The part of `cache_write_tokens` written to a 1-hour cache (Anthropic), billed at `cache_write_1h`.
    cache_write_1h_tokens: int = 0
