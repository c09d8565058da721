"""Counting admissions in the database, inside the reservation's transaction.

Two small tables, neither holding money:

- `rate_buckets`: per subject (a key id or a workspace id) and second, the
  requests admitted and their tokens, kept only for a subject with a
  per-minute limit.  A window is the sum of the last 60 buckets: a bounded
  read however busy the key is.  A request counts its token bound at
  admission; its settlement moves its bucket to the tokens actually used.
- `rate_admissions`: one row per request in flight, kept only while a
  concurrency limit is in force on its key or workspace; deleted when it
  ends (settled, released, or released by the crash rule).

The reservation transaction holds the workspace's write lock (SQLite: the
database's; PostgreSQL: the workspace row's) and every key belongs to one
workspace, so the count a request is judged by and the rows it then adds
are serialised with every other request of the workspace, in any process on
any host: N concurrent requests against a limit of L admit exactly L.
"""

from __future__ import annotations

from msgspec import Struct

from tollway.errors import RateLimitExceeded
from tollway.ledger.driver import Sql
from tollway.ledger.sql import statement
from tollway.limits.rates import WINDOW_US, RateLimits, Verdict, WindowStats, format_reset, judge

__all__ = [
    "Admission",
    "KeyConfig",
    "Ticket",
    "admit",
    "close_admission",
    "forget_admission",
    "prune_admissions",
    "read_config",
    "record",
]

_SECOND = 1_000_000
_WINDOW_S = WINDOW_US // _SECOND


def _window(subject: str, windowed: str) -> str:
    """The window's sums for one subject, read only when it has a per-minute limit."""
    where = f"FROM rate_buckets WHERE subject = {subject} AND second > $3"
    return ", ".join(
        f"CASE WHEN {windowed} THEN (SELECT {aggregate} {where}) END"
        for aggregate in ("coalesce(sum(requests), 0)", "coalesce(sum(tokens), 0)", "min(second)")
    )


def _open(column: str, subject: str, limit: str) -> str:
    count = f"SELECT count(*) FROM rate_admissions WHERE {column} = {subject}"
    return f"CASE WHEN {limit} IS NOT NULL THEN ({count}) END"


# One statement for everything a reservation judges besides money: the key's and its workspace's
# settings as they are now, and the counts of a subject only where it has a limit of that kind.
_CONFIG = statement(
    "SELECT k.requests_per_minute, k.tokens_per_minute, k.max_concurrent,"
    " w.requests_per_minute, w.tokens_per_minute, w.max_concurrent,"
    " k.spend_limit_nano, k.spend_limit_period, k.revoked_at, k.spend_notified_period,"
    " w.low_balance_nano, w.exhausted_notified, "
    + _window("$1", "(k.requests_per_minute IS NOT NULL OR k.tokens_per_minute IS NOT NULL)")
    + ", "
    + _open("key_id", "$1", "k.max_concurrent")
    + ", "
    + _window("$2", "(w.requests_per_minute IS NOT NULL OR w.tokens_per_minute IS NOT NULL)")
    + ", "
    + _open("workspace_id", "$2", "w.max_concurrent")
    + " FROM api_keys k JOIN workspaces w ON w.id = k.workspace_id WHERE k.id = $1 AND w.id = $2"
)
_BUCKETS = statement(
    "SELECT second, requests, tokens FROM rate_buckets WHERE subject = $1 AND second > $2 ORDER BY second"
)
_BUMP_VALUES = (
    " ON CONFLICT (subject, second) DO UPDATE SET"
    " requests = rate_buckets.requests + 1, tokens = rate_buckets.tokens + excluded.tokens"
)
_BUMP = {
    1: statement(
        "INSERT INTO rate_buckets (subject, second, requests, tokens) VALUES ($1, $2, 1, $3)" + _BUMP_VALUES
    ),
    2: statement(
        "INSERT INTO rate_buckets (subject, second, requests, tokens) VALUES ($1, $3, 1, $4), ($2, $3, 1, $4)"
        + _BUMP_VALUES
    ),
}
_ADJUST = statement("UPDATE rate_buckets SET tokens = tokens + $4 WHERE second = $3 AND subject IN ($1, $2)")
_INSERT = statement(
    "INSERT INTO rate_admissions (request_id, workspace_id, key_id, admitted_at) VALUES ($1, $2, $3, $4)"
)
_DELETE = statement("DELETE FROM rate_admissions WHERE request_id = $1")
_PRUNE = statement("DELETE FROM rate_buckets WHERE second <= $1")


class KeyConfig(Struct, frozen=True, kw_only=True):
    """A key's and its workspace's current settings, read under the workspace's lock."""

    key: RateLimits
    workspace: RateLimits
    spend_limit_nano: int | None
    spend_limit_period: str
    revoked: bool
    spend_notified_period: int | None
    low_balance_nano: int | None
    exhausted_notified: bool
    key_stats: WindowStats
    workspace_stats: WindowStats

    @property
    def rated(self) -> bool:
        return self.key.any or self.workspace.any


def _stats(
    requests: int | None, tokens: int | None, oldest: int | None, in_flight: int | None
) -> WindowStats:
    return WindowStats(
        int(requests or 0), int(tokens or 0), None if oldest is None else int(oldest), int(in_flight or 0)
    )


async def read_config(sql: Sql, key_id: str, workspace_id: str, now: int) -> KeyConfig | None:
    """The key's and workspace's settings and, where a limit is set, its counts: one statement."""
    row = await sql.one(_CONFIG, key_id, workspace_id, now // _SECOND - _WINDOW_S)
    if row is None:
        return None
    return KeyConfig(
        key=RateLimits(requests_per_minute=row[0], tokens_per_minute=row[1], max_concurrent=row[2]),
        workspace=RateLimits(requests_per_minute=row[3], tokens_per_minute=row[4], max_concurrent=row[5]),
        spend_limit_nano=row[6],
        spend_limit_period=row[7],
        revoked=row[8] is not None,
        spend_notified_period=row[9],
        low_balance_nano=row[10],
        exhausted_notified=bool(row[11]),
        key_stats=_stats(row[12], row[13], row[14], row[15]),
        workspace_stats=_stats(row[16], row[17], row[18], row[19]),
    )


class Ticket(Struct, frozen=True):
    """What an admitted request wrote, so its settlement can adjust exactly that."""

    second: int
    tokens: int  # the bound it was admitted with
    subjects: tuple[str, ...]  # whose buckets counted it
    in_flight: bool  # whether it has a rate_admissions row
    # Whether a tokens-per-minute limit was in force: only then does settlement move the buckets'
    # tokens from the bound to the actual count.
    metered: bool = True


class Admission(Struct, frozen=True):
    """The request may go on: what to record, and what its `x-ratelimit-*` headers are made from."""

    ticket: Ticket
    judged: list[tuple[RateLimits, WindowStats, Verdict]]
    now: int

    def headers(self) -> dict[str, str]:
        """The headers of the tightest limits in force (built on the event loop, not under the lock)."""
        return _headers(self.judged, self.now)


def _windowed(limits: RateLimits) -> bool:
    return limits.requests_per_minute is not None or limits.tokens_per_minute is not None


async def _wait_us(
    sql: Sql, subject: str, limits: RateLimits, stats: WindowStats, verdict: Verdict, tokens: int, now: int
) -> int:
    """How long until the refused request fits as the window slides on (open requests may end sooner)."""
    if verdict.refused in ("requests", "tokens"):
        rpm, tpm = limits.requests_per_minute, limits.tokens_per_minute
        must_free = (
            stats.requests - (rpm or 0) + 1
            if verdict.refused == "requests"
            else stats.tokens + tokens - (tpm or 0)
        )
        freed = 0
        for second, requests, used in await sql.all(_BUCKETS, subject, now // _SECOND - _WINDOW_S):
            freed += int(requests) if verdict.refused == "requests" else int(used)
            if freed >= must_free:
                return _leaves_at(int(second)) - now
        return WINDOW_US
    if verdict.refused == "tokens_never":
        return WINDOW_US
    return _SECOND  # concurrency: a request in flight may end at any moment


def _leaves_at(second: int) -> int:
    """When a bucket's admissions leave the window (µs)."""
    return (second + _WINDOW_S) * _SECOND


def _refusal(verdict: Verdict, wait_us: int) -> RateLimitExceeded:
    wait_us = max(wait_us, 1)
    headers = {"retry-after": str(-(-wait_us // _SECOND)), "retry-after-ms": str(-(-wait_us // 1000))}
    if verdict.refused == "tokens_never":
        headers["x-should-retry"] = "false"  # waiting cannot help: the request alone exceeds the limit
    error = RateLimitExceeded(verdict.message, headers=headers)
    if verdict.refused in ("tokens", "tokens_never"):
        error.type = "tokens"
    return error


async def admit(
    sql: Sql, config: KeyConfig, workspace_id: str, key_id: str, tokens: int, now: int
) -> Admission:
    """Judge one more request of up to `tokens` tokens: raise `RateLimitExceeded`, or admit it."""
    now_s = now // _SECOND
    judged: list[tuple[RateLimits, WindowStats, Verdict]] = []
    for scope, subject, limits, stats in (
        ("key", key_id, config.key, config.key_stats),
        ("workspace", workspace_id, config.workspace, config.workspace_stats),
    ):
        if not limits.any:
            continue
        verdict = judge(scope, limits, stats, tokens)
        if verdict.refused is not None:
            raise _refusal(verdict, await _wait_us(sql, subject, limits, stats, verdict, tokens, now))
        judged.append((limits, stats, verdict))
    subjects = tuple(
        subject
        for subject, limits in ((key_id, config.key), (workspace_id, config.workspace))
        if _windowed(limits)
    )
    in_flight = config.key.max_concurrent is not None or config.workspace.max_concurrent is not None
    metered = config.key.tokens_per_minute is not None or config.workspace.tokens_per_minute is not None
    return Admission(Ticket(now_s, tokens, subjects, in_flight, metered), judged, now)


def _headers(judged: list[tuple[RateLimits, WindowStats, Verdict]], now: int) -> dict[str, str]:
    headers: dict[str, str] = {}
    by_requests = [j for j in judged if j[2].remaining_requests is not None]
    if by_requests:
        limits, stats, verdict = min(by_requests, key=lambda j: j[2].remaining_requests or 0)
        headers["x-ratelimit-limit-requests"] = str(limits.requests_per_minute)
        headers["x-ratelimit-remaining-requests"] = str(verdict.remaining_requests)
        headers["x-ratelimit-reset-requests"] = format_reset(_reset(stats, now))
    by_tokens = [j for j in judged if j[2].remaining_tokens is not None]
    if by_tokens:
        limits, stats, verdict = min(by_tokens, key=lambda j: j[2].remaining_tokens or 0)
        headers["x-ratelimit-limit-tokens"] = str(limits.tokens_per_minute)
        headers["x-ratelimit-remaining-tokens"] = str(verdict.remaining_tokens)
        headers["x-ratelimit-reset-tokens"] = format_reset(_reset(stats, now))
    return headers


def _reset(stats: WindowStats, now: int) -> int:
    """Until the oldest admissions in the window leave it (this request's, if it is the only one)."""
    oldest = now // _SECOND if stats.oldest_us is None else stats.oldest_us
    return _leaves_at(oldest) - now


async def record(sql: Sql, ticket: Ticket, request_id: str, workspace_id: str, key_id: str, now: int) -> None:
    """The admitted request's share of its subjects' buckets (and its in-flight row), with its reservation."""
    subjects = ticket.subjects
    if len(subjects) == 2:
        await sql.run(_BUMP[2], subjects[0], subjects[1], ticket.second, ticket.tokens)
    elif subjects:
        await sql.run(_BUMP[1], subjects[0], ticket.second, ticket.tokens)
    if ticket.in_flight:
        await sql.run(_INSERT, request_id, workspace_id, key_id, now)


async def close_admission(sql: Sql, ticket: Ticket, request_id: str, used_tokens: int) -> None:
    """The request ended: it counts the tokens it used, and no longer counts as in flight."""
    subjects = ticket.subjects
    if ticket.metered and used_tokens != ticket.tokens and subjects:
        await sql.run(_ADJUST, subjects[0], subjects[-1], ticket.second, used_tokens - ticket.tokens)
    if ticket.in_flight:
        await sql.run(_DELETE, request_id)


async def forget_admission(sql: Sql, request_id: str) -> None:
    """A request whose process died: no longer in flight (its bound stays counted until its bucket leaves)."""
    await sql.run(_DELETE, request_id)


async def prune_admissions(sql: Sql, now: int) -> None:
    """Drop buckets that left the window: they can no longer count against anything."""
    await sql.run(_PRUNE, now // _SECOND - _WINDOW_S)
