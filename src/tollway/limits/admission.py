"""Counting admissions in the database, inside the reservation's transaction.

`rate_admissions` holds one row per request admitted while a limit was in
force on its key or its workspace.  The reservation transaction holds the
workspace's write lock (SQLite: the database's; PostgreSQL: the workspace
row's), and every key belongs to one workspace, so the count a request is
judged by and the row it then adds are serialised with every other request
of the workspace, in any process on any host: N concurrent requests against
a limit of L admit exactly L.  A row is closed (with the tokens actually
used) in the settlement's transaction; closed rows older than the window
are pruned by the recovery loop.
"""

from __future__ import annotations

from msgspec import Struct

from tollway.errors import RateLimitExceeded
from tollway.ledger.driver import Sql
from tollway.ledger.sql import Statement, statement
from tollway.limits.rates import WINDOW_US, RateLimits, Verdict, WindowStats, format_reset, judge

__all__ = ["Admission", "KeyConfig", "admit", "close_admission", "prune_admissions", "read_config", "record"]

_CONFIG = statement(
    "SELECT k.requests_per_minute, k.tokens_per_minute, k.max_concurrent,"
    " w.requests_per_minute, w.tokens_per_minute, w.max_concurrent,"
    " k.spend_limit_nano, k.spend_limit_period, k.revoked_at, k.spend_notified_period,"
    " w.low_balance_nano, w.exhausted_notified"
    " FROM api_keys k JOIN workspaces w ON w.id = k.workspace_id WHERE k.id = $1"
)


def _by(column: str) -> tuple[Statement, Statement, Statement, Statement]:
    where = f"FROM rate_admissions WHERE {column} = $1"
    return (
        statement(
            f"SELECT count(*), coalesce(sum(tokens), 0), min(admitted_at) {where} AND admitted_at > $2"
        ),
        statement(f"SELECT count(*) {where} AND closed_at IS NULL"),
        statement(f"SELECT admitted_at {where} AND admitted_at > $2 ORDER BY admitted_at LIMIT 1 OFFSET $3"),
        statement(f"SELECT admitted_at, tokens {where} AND admitted_at > $2 ORDER BY admitted_at"),
    )


_STATEMENTS = {"key": _by("key_id"), "workspace": _by("workspace_id")}
_INSERT = statement(
    "INSERT INTO rate_admissions (request_id, workspace_id, key_id, admitted_at, tokens)"
    " VALUES ($1, $2, $3, $4, $5)"
)
_CLOSE = statement(
    "UPDATE rate_admissions SET closed_at = $2, tokens = $3 WHERE request_id = $1 AND closed_at IS NULL"
)
_PRUNE = statement("DELETE FROM rate_admissions WHERE admitted_at < $1 AND closed_at IS NOT NULL")


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

    @property
    def rated(self) -> bool:
        return self.key.any or self.workspace.any


async def read_config(sql: Sql, key_id: str) -> KeyConfig | None:
    row = await sql.one(_CONFIG, key_id)
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
    )


class Admission(Struct, frozen=True):
    """What the request may go on with: the `x-ratelimit-*` headers of the tightest limits."""

    headers: dict[str, str]


async def _stats(sql: Sql, scope: str, subject: str, limits: RateLimits, now: int) -> WindowStats:
    window, open_, _, _ = _STATEMENTS[scope]
    requests = tokens = in_flight = 0
    oldest = None
    if limits.requests_per_minute is not None or limits.tokens_per_minute is not None:
        row = await sql.one(window, subject, now - WINDOW_US)
        if row is not None:
            requests, tokens, oldest = int(row[0]), int(row[1]), row[2]
    if limits.max_concurrent is not None:
        row = await sql.one(open_, subject)
        in_flight = 0 if row is None else int(row[0])
    return WindowStats(requests, tokens, oldest, in_flight)


async def _wait_us(
    sql: Sql,
    scope: str,
    subject: str,
    limits: RateLimits,
    stats: WindowStats,
    verdict: Verdict,
    tokens: int,
    now: int,
) -> int:
    """How long until the refused request would fit (the window sliding on; open requests may end sooner)."""
    _, _, nth, rows = _STATEMENTS[scope]
    since = now - WINDOW_US
    if verdict.refused == "requests" and limits.requests_per_minute is not None:
        row = await sql.one(nth, subject, since, stats.requests - limits.requests_per_minute)
        return WINDOW_US if row is None else int(row[0]) + WINDOW_US - now
    if verdict.refused == "tokens" and limits.tokens_per_minute is not None:
        must_free = stats.tokens + tokens - limits.tokens_per_minute
        freed = 0
        for admitted_at, used in await sql.all(rows, subject, since):
            freed += int(used)
            if freed >= must_free:
                return int(admitted_at) + WINDOW_US - now
        return WINDOW_US
    if verdict.refused == "tokens_never":
        return WINDOW_US
    return 1_000_000  # concurrency: a request in flight may end at any moment


def _refusal(verdict: Verdict, wait_us: int) -> RateLimitExceeded:
    seconds = max(1, -(-wait_us // 1_000_000))
    headers = {"retry-after": str(seconds), "retry-after-ms": str(max(1, -(-wait_us // 1000)))}
    if verdict.refused == "tokens_never":
        headers["x-should-retry"] = "false"  # waiting cannot help: the request alone exceeds the limit
    error = RateLimitExceeded(verdict.message, headers=headers)
    if verdict.refused in ("tokens", "tokens_never"):
        error.type = "tokens"
    return error


async def admit(
    sql: Sql, config: KeyConfig, workspace_id: str, key_id: str, tokens: int, now: int
) -> Admission:
    """Judge one more request of up to `tokens` tokens; raise `RateLimitExceeded`, or its headers."""
    judged: list[tuple[RateLimits, WindowStats, Verdict]] = []
    for scope, subject, limits in (
        ("key", key_id, config.key),
        ("workspace", workspace_id, config.workspace),
    ):
        if not limits.any:
            continue
        stats = await _stats(sql, scope, subject, limits, now)
        verdict = judge(scope, limits, stats, tokens)
        if verdict.refused is not None:
            wait = await _wait_us(sql, scope, subject, limits, stats, verdict, tokens, now)
            raise _refusal(verdict, wait)
        judged.append((limits, stats, verdict))
    return Admission(_headers(judged, now))


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
    """Until the oldest admission in the window leaves it (this request, if it is the only one)."""
    oldest = now if stats.oldest_us is None else int(stats.oldest_us)
    return oldest + WINDOW_US - now


async def record(sql: Sql, request_id: str, workspace_id: str, key_id: str, tokens: int, now: int) -> None:
    """The admitted request's row, in the transaction that writes its reservation."""
    await sql.run(_INSERT, request_id, workspace_id, key_id, now, tokens)


async def close_admission(sql: Sql, request_id: str, tokens: int, now: int) -> None:
    """The request ended: it no longer counts as in flight, and counts `tokens` (what it used)."""
    await sql.run(_CLOSE, request_id, now, tokens)


async def prune_admissions(sql: Sql, now: int) -> None:
    """Forget closed admissions that left the window: they can no longer count against anything."""
    await sql.run(_PRUNE, now - WINDOW_US)
