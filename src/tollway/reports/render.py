"""The JSON shapes of the report routes (money as nine-place decimal strings in `_usd` fields)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import msgspec

from tollway.clock import iso
from tollway.ledger.record import UsageRecord
from tollway.ledger.rollup import SUMMED
from tollway.money import format_usd
from tollway.reports.params import US_PER_DAY, Filters, Period
from tollway.reports.queries import Totals

__all__ = ["day_row", "log_row", "record_view", "stat_row", "summary_view", "totals_view"]


def totals_view(totals: Totals) -> dict[str, Any]:
    return {
        "input_tokens": totals.prompt_tokens,
        "output_tokens": totals.completion_tokens,
        "cached_tokens": totals.cached_tokens,
        "cache_write_tokens": totals.cache_write_tokens,
        "cache_write_1h_tokens": totals.cache_write_1h_tokens,
        "reasoning_tokens": totals.reasoning_tokens,
        "calls": totals.calls,
        "cost_usd": format_usd(totals.cost_nano),
    }


def summary_view(
    path: str, period: Period, filters: Filters, groups: dict[tuple[str, ...], Totals], names: tuple[str, ...]
) -> dict[str, Any]:
    """`groups` are keyed by the values of `names` (e.g. ("model",) or ("workspace_id", "model"))."""
    total = Totals()
    breakdown = []
    for key in sorted(groups):
        totals = groups[key]
        total.add([getattr(totals, name) for name in SUMMED])
        breakdown.append({**dict(zip(names, key, strict=True)), **totals_view(totals)})
    query = {"from": iso(period.from_us), "to": iso(period.to_us)}
    query |= {k: v for k, v in (("model", filters.model), ("key_id", filters.key_id)) if v is not None}
    return {
        "object": "usage.summary",
        "period": {"from": iso(period.from_us), "to": iso(period.to_us)},
        "totals": totals_view(total),
        "breakdown": breakdown,
        "links": {"self": f"{path}?{urlencode(query)}"},
    }


def stat_row(operation: str, model: str, totals: Totals) -> dict[str, Any]:
    return {
        "operation_type": operation,
        "model": model,
        "call_count": totals.calls,
        "total_input_tokens": totals.prompt_tokens,
        "total_output_tokens": totals.completion_tokens,
        "total_cache_read_tokens": totals.cached_tokens,
        "total_cache_write_tokens": totals.cache_write_tokens,
        "total_cache_write_1h_tokens": totals.cache_write_1h_tokens,
        "total_reasoning_tokens": totals.reasoning_tokens,
        "total_cost_usd": format_usd(totals.cost_nano),
    }


def day_row(day: int, totals: Totals) -> dict[str, Any]:
    row = stat_row("", "", totals)
    del row["operation_type"], row["model"]
    return {"date": iso(day * US_PER_DAY)[:10], **row}


def log_row(record: UsageRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "operation_type": record.operation_type,
        "model": record.model,
        "key_id": record.key_id,
        "input_tokens": record.prompt_tokens,
        "output_tokens": record.completion_tokens,
        "cache_read_tokens": record.cached_tokens,
        "cache_write_tokens": record.cache_write_tokens,
        "cache_write_1h_tokens": record.cache_write_1h_tokens,
        "reasoning_tokens": record.reasoning_tokens,
        "cost_usd": format_usd(record.cost_nano),
        "stream": record.stream,
        "end_state": record.end_state,
        "created_at": iso(record.finished_at),
    }


def record_view(record: UsageRecord, key_name: str | None) -> dict[str, Any]:
    rates = msgspec.json.decode(record.rates)
    rates.pop("price_id", None)
    return {
        "object": "usage.record",
        "id": record.id,
        "operation_type": record.operation_type,
        "model": record.model,
        "upstream": record.upstream,
        "upstream_model": record.upstream_model,
        "stream": record.stream,
        "end_state": record.end_state,
        "key": {"id": record.key_id, "name": key_name},
        "tokens": {
            "prompt": record.prompt_tokens,
            "completion": record.completion_tokens,
            "cached": record.cached_tokens,
            "cache_write": record.cache_write_tokens,
            "cache_write_1h": record.cache_write_1h_tokens,
            "reasoning": record.reasoning_tokens,
            "total": record.prompt_tokens + record.completion_tokens,
        },
        "sources": {
            "prompt": record.prompt_source,
            "completion": record.completion_source,
            "estimated": record.estimated,
            # The upstream's usage report was not believable (not integers below 2^53, or a cost past
            # the per-request maximum): it was ignored and every number counted.
            "upstream_report_invalid": record.report_invalid,
        },
        "price": {"id": record.price_id, "currency": "USD", "unit": "per_million_tokens", **rates},
        "cost_usd": format_usd(record.cost_nano),
        "started_at": iso(record.started_at),
        "finished_at": iso(record.finished_at),
        "links": {"self": f"/v1/usage/requests/{record.id}"},
    }
