"""The daily usage rollup: one row per workspace by UTC day by model by key, summed in place.

It is a derived cache of `usage_records`, written in the same transaction as
each record and rebuildable from them; `tollway ledger verify` checks it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite

from tollway.db.schema import usage_daily
from tollway.ledger.record import UsageRecord

__all__ = ["SUMMED", "day_of", "rollup_upsert"]

US_PER_DAY = 86_400_000_000
SUMMED = (
    "calls",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_nano",
)


def day_of(us: int) -> int:
    """The UTC day number (days since 1970-01-01) of a time in microseconds."""
    return us // US_PER_DAY


def rollup_upsert(dialect: str, record: UsageRecord) -> Insert:
    values: dict[str, Any] = {
        "workspace_id": record.workspace_id,
        "day": day_of(record.finished_at),
        "model": record.model,
        "key_id": record.key_id,
        "calls": 1,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cached_tokens": record.cached_tokens,
        "cache_write_tokens": record.cache_write_tokens,
        "reasoning_tokens": record.reasoning_tokens,
        "cost_nano": record.cost_nano,
    }
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(usage_daily).values(
        **values
    )
    return statement.on_conflict_do_update(
        index_elements=["workspace_id", "day", "model", "key_id"],
        set_={name: usage_daily.c[name] + statement.excluded[name] for name in SUMMED},
    )
