"""The daily usage rollup: one row per workspace by UTC day by surface by model by key, summed in place.

It is a derived cache of `usage_records`, written in the same transaction as
each record (`sql.ROLLUP_UPSERT`) and rebuildable from them; `tollway ledger
verify` checks it.
"""

from __future__ import annotations

from tollway.ledger.record import UsageRecord

__all__ = ["KEY", "SUMMED", "day_of", "rollup_row"]

US_PER_DAY = 86_400_000_000
KEY = ("workspace_id", "day", "operation_type", "model", "key_id")
SUMMED = (
    "calls",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "cost_nano",
)


def day_of(us: int) -> int:
    """The UTC day number (days since 1970-01-01) of a time in microseconds."""
    return us // US_PER_DAY


def rollup_row(record: UsageRecord) -> tuple[object, ...]:
    """One record's share of its rollup row: the key, then the summed figures, in `KEY + SUMMED` order."""
    return (
        record.workspace_id,
        day_of(record.finished_at),
        record.operation_type,
        record.model,
        record.key_id,
        1,
        record.prompt_tokens,
        record.completion_tokens,
        record.cached_tokens,
        record.cache_write_tokens,
        record.cache_write_1h_tokens,
        record.reasoning_tokens,
        record.cost_nano,
    )
