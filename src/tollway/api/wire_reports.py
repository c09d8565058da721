"""Wire types of the usage reports and the query strings of the list and report routes.

The report routes return the dicts `tollway.reports` builds (the CLI prints the same ones), so
these Structs document them rather than build them; `tests/e2e/test_openapi.py` holds every
report a server returns to its Struct, field for field.  The query Structs are never decoded
either: each route reads its own query string (`tollway.reports.params`, for its own 400s),
and `tollway.api.openapi` turns their fields into the documented query parameters.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType, field

from tollway.events import EVENT_TYPES
from tollway.surfaces.base import EndState

__all__ = [
    "AllUsageSummary",
    "DailyReport",
    "DayRow",
    "DaysQuery",
    "EventsQuery",
    "LogRow",
    "PageQuery",
    "PeriodQuery",
    "StatRow",
    "StatsReport",
    "UsageLogPage",
    "UsageRecordRead",
    "UsageRow",
    "UsageSummary",
    "UsageTotals",
    "WorkspaceUsageRow",
]

Source = Literal["upstream", "counted"]

# --- query strings ------------------------------------------------------------------------------

Limit = Annotated[int, Meta(ge=1, le=100, description="Entries per page (1 to 100).")]
Cursor = Annotated[str, Meta(description="The `next_cursor` of the previous page, as it was returned.")]
Model = Annotated[str, Meta(min_length=1, max_length=200, description="Only this served model.")]
KeyId = Annotated[str, Meta(min_length=1, max_length=200, description="Only this API key's requests.")]
Instant = Annotated[
    str,
    Meta(
        description="ISO 8601 date or time; a bare date or time is UTC.",
        examples=["2026-11-01", "2026-11-01T00:00:00Z"],
    ),
]
Days = Annotated[
    int,
    Meta(ge=1, description="Whole UTC days ending today, at most `[reports] max_range_days` (366)."),
]


class PageQuery(Struct, kw_only=True):
    limit: Limit = 20
    cursor: Cursor | UnsetType = UNSET


class LogQuery(Struct, kw_only=True):
    limit: Limit = 20
    cursor: Cursor | UnsetType = UNSET
    model: Model | UnsetType = UNSET
    key_id: KeyId | UnsetType = UNSET


class PeriodQuery(Struct, kw_only=True):
    """A half-open period [from, to), at most `[reports] max_range_days` long."""

    from_: Annotated[Instant, Meta(description="Start of the period; default: 30 days before `to`.")] | (
        UnsetType
    ) = field(name="from", default=UNSET)
    to: Annotated[Instant, Meta(description="End of the period (excluded); default: now.")] | UnsetType = (
        UNSET
    )
    model: Model | UnsetType = UNSET
    key_id: KeyId | UnsetType = UNSET


class EventsQuery(Struct, kw_only=True):
    limit: Limit = 20
    cursor: Cursor | UnsetType = UNSET
    type: Annotated[
        str, Meta(description="Only events of this type.", extra_json_schema={"enum": [*EVENT_TYPES]})
    ] | (UnsetType) = UNSET
    workspace_id: Annotated[str, Meta(description="Only this workspace's events.")] | UnsetType = UNSET


class DaysQuery(Struct, kw_only=True):
    days: Days = 30
    model: Model | UnsetType = UNSET
    key_id: KeyId | UnsetType = UNSET


# --- reports --------------------------------------------------------------------------------------


class Period(Struct, kw_only=True):
    from_: str = field(name="from")
    to: str


class SelfLink(Struct, kw_only=True):
    self_: str = field(name="self")


class UsageTotals(Struct, kw_only=True):
    """Tokens by class (cached and cache-write tokens are input, reasoning tokens output), calls, cost."""

    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    cache_write_1h_tokens: int
    reasoning_tokens: int
    calls: int
    cost_usd: str


class UsageRow(UsageTotals, kw_only=True):
    """The totals of one surface (`operation_type`) and model."""

    operation_type: str
    model: str


class WorkspaceUsageRow(UsageRow, kw_only=True):
    """The totals of one workspace, surface and model."""

    workspace_id: str
    workspace_name: str | None


class UsageSummary(Struct, kw_only=True):
    object: Literal["usage.summary"]
    period: Period
    totals: UsageTotals
    breakdown: list[UsageRow]
    links: SelfLink


class AllUsageSummary(Struct, kw_only=True):
    """Every workspace's usage; the breakdown is per workspace, surface and model."""

    object: Literal["usage.summary"]
    period: Period
    totals: UsageTotals
    breakdown: list[WorkspaceUsageRow]
    links: SelfLink


class StatRow(Struct, kw_only=True):
    operation_type: str
    model: str
    call_count: int
    total_input_tokens: int
    total_output_tokens: int
    total_cache_read_tokens: int
    total_cache_write_tokens: int
    total_cache_write_1h_tokens: int
    total_reasoning_tokens: int
    total_cost_usd: str


class StatsReport(Struct, kw_only=True):
    stats: list[StatRow]
    period_days: int
    period: Period


class DayRow(Struct, kw_only=True):
    date: Annotated[str, Meta(description="The UTC day, YYYY-MM-DD.")]
    call_count: int
    total_input_tokens: int
    total_output_tokens: int
    total_cache_read_tokens: int
    total_cache_write_tokens: int
    total_cache_write_1h_tokens: int
    total_reasoning_tokens: int
    total_cost_usd: str


class DailyReport(Struct, kw_only=True, tag_field="object", tag="list"):
    """One row per UTC day, oldest first, days without requests included."""

    data: list[DayRow]
    period_days: int


class LogRow(Struct, kw_only=True):
    id: Annotated[str, Meta(description="The request id (its X-Request-Id).")]
    operation_type: str
    model: str
    key_id: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cache_write_1h_tokens: int
    reasoning_tokens: int
    cost_usd: str
    stream: bool
    end_state: EndState
    created_at: str


class UsageLogPage(Struct, kw_only=True, tag_field="object", tag="list"):
    """Requests newest first; pass `next_cursor` as `cursor` for the next page."""

    data: list[LogRow]
    has_more: bool
    next_cursor: str | None


class RecordKey(Struct, kw_only=True):
    id: str
    name: str | None


class RecordTokens(Struct, kw_only=True):
    prompt: int
    completion: int
    cached: int
    cache_write: int
    cache_write_1h: int
    reasoning: int
    total: int


class RecordSources(Struct, kw_only=True):
    """Where each number came from: the upstream's usage report, or tollway's own count."""

    prompt: Source
    completion: Source
    estimated: Annotated[bool, Meta(description="Counted with a tokenizer that is not the model's own.")]
    upstream_report_invalid: Annotated[
        bool, Meta(description="The upstream's usage report was not believable: it was ignored.")
    ]


class AppliedPrice(Struct, kw_only=True):
    """The rates the request was billed at, USD per million tokens, and the per-request fee."""

    id: str
    currency: Literal["USD"]
    unit: Literal["per_million_tokens"]
    input: str
    cached_input: str
    cache_write: str
    cache_write_1h: str | UnsetType = UNSET  # absent from records billed before 1-hour cache writes
    output: str
    reasoning: str
    request: str


class UsageRecordRead(Struct, kw_only=True):
    """One billed request: tokens by class and source, the rates applied, the cost."""

    object: Literal["usage.record"]
    id: str
    operation_type: str
    model: str
    upstream: str
    upstream_model: str
    stream: bool
    end_state: EndState
    key: RecordKey
    tokens: RecordTokens
    sources: RecordSources
    price: AppliedPrice
    cost_usd: str
    started_at: str
    finished_at: str
    links: SelfLink
