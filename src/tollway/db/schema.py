"""Table definitions (SQLAlchemy Core).  Migrations create them; this mirrors the head revision.

Timestamps are integer microseconds since the Unix epoch (UTC): one type on
every engine, cheap to compare and index.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

__all__ = [
    "api_keys",
    "console_sessions",
    "event_deliveries",
    "events",
    "instances",
    "ledger_entries",
    "metadata",
    "rate_admissions",
    "rate_buckets",
    "usage_daily",
    "usage_records",
    "workspaces",
]

metadata = MetaData()

workspaces = Table(
    "workspaces",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    *(
        Column(name, BigInteger, nullable=True)
        for name in ("requests_per_minute", "tokens_per_minute", "max_concurrent")
    ),
    Column("low_balance_nano", BigInteger, nullable=True),
    Column("low_balance_notified", Boolean, nullable=False, server_default=text("false")),
    Column("exhausted_notified", Boolean, nullable=False, server_default=text("false")),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("workspace_id", String(40), ForeignKey("workspaces.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False),
    Column("spend_limit_nano", BigInteger, nullable=True),
    Column("spend_limit_period", String(8), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    *(
        Column(name, BigInteger, nullable=True)
        for name in ("requests_per_minute", "tokens_per_minute", "max_concurrent")
    ),
    Column("spend_notified_period", BigInteger, nullable=True),
)

Index("ix_api_keys_workspace", api_keys.c.workspace_id)


def _id_column() -> Column[int]:
    # A 64-bit identity everywhere; SQLite only auto-assigns an INTEGER PRIMARY KEY.
    return Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)


# Immutable money events.  `amount_nano` moves the balance, `hold_nano` moves
# what is reserved; the running figures after the entry are stored on it and
# chained by hash to the workspace's previous entry.
ledger_entries = Table(
    "ledger_entries",
    metadata,
    _id_column(),
    Column("workspace_id", String(40), ForeignKey("workspaces.id"), nullable=False),
    Column("ws_seq", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("amount_nano", BigInteger, nullable=False),
    Column("hold_nano", BigInteger, nullable=False),
    Column("balance_nano", BigInteger, nullable=False),
    Column("held_nano", BigInteger, nullable=False),
    Column("key_id", String(40), nullable=True),
    Column("key_spent_nano", BigInteger, nullable=True),
    Column("key_held_nano", BigInteger, nullable=True),
    Column("reservation_id", String(40), nullable=True),
    Column("owner", String(40), nullable=True),
    Column("idempotency_key", String(200), nullable=True),
    Column("note", String(500), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# One immutable record per billed request.
usage_records = Table(
    "usage_records",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("workspace_id", String(40), ForeignKey("workspaces.id"), nullable=False),
    Column("key_id", String(40), nullable=False),
    Column("model", String(200), nullable=False),
    Column("upstream", String(200), nullable=False),
    Column("price_id", String(300), nullable=False),
    Column("stream", Boolean, nullable=False),
    Column("end_state", String(32), nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("cache_write_tokens", BigInteger, nullable=False),
    Column("reasoning_tokens", BigInteger, nullable=False),
    Column("prompt_source", String(16), nullable=False),
    Column("completion_source", String(16), nullable=False),
    Column("estimated", Boolean, nullable=False),
    Column("rates", String(1000), nullable=False),
    Column("cost_nano", BigInteger, nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=False),
    Column("report_invalid", Boolean, nullable=False, server_default=text("false")),
    Column("upstream_model", String(200), nullable=False, server_default=""),
    Column("operation_type", String(40), nullable=False, server_default="chat.completions"),
    Column("cache_write_1h_tokens", BigInteger, nullable=False, server_default=text("0")),
)

# Live tollway processes; reservations of a process that stopped beating are released.
instances = Table(
    "instances",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("heartbeat_at", BigInteger, nullable=False),
    Column("reaped_at", BigInteger, nullable=True),
)

usage_daily = Table(
    "usage_daily",
    metadata,
    Column("workspace_id", String(40), primary_key=True),
    Column("day", Integer, primary_key=True),
    Column("operation_type", String(40), primary_key=True),
    Column("model", String(200), primary_key=True),
    Column("key_id", String(40), primary_key=True),
    Column("calls", BigInteger, nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("cache_write_tokens", BigInteger, nullable=False),
    Column("reasoning_tokens", BigInteger, nullable=False),
    Column("cost_nano", BigInteger, nullable=False),
    Column("cache_write_1h_tokens", BigInteger, nullable=False, server_default=text("0")),
)

# Requests and tokens admitted per subject (key or workspace id) and second (see limits/).
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("subject", String(40), primary_key=True),
    Column("second", BigInteger, primary_key=True),
    Column("requests", BigInteger, nullable=False),
    Column("tokens", BigInteger, nullable=False),
)

# Requests in flight while a concurrency limit is in force on their key or workspace.
rate_admissions = Table(
    "rate_admissions",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("workspace_id", String(40), nullable=False),
    Column("key_id", String(40), nullable=False),
    Column("admitted_at", BigInteger, nullable=False),
)

Index("ix_rate_admissions_key", rate_admissions.c.key_id)
Index("ix_rate_admissions_ws", rate_admissions.c.workspace_id)

# The webhook outbox: each event is written in the transaction of its cause.
events = Table(
    "events",
    metadata,
    _id_column(),
    Column("event_id", String(40), nullable=False, unique=True),
    Column("type", String(40), nullable=False),
    Column("workspace_id", String(40), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("data", Text, nullable=False),
)

Index("ix_events_ws", events.c.workspace_id, events.c.id)

event_deliveries = Table(
    "event_deliveries",
    metadata,
    _id_column(),
    Column("event_id", String(40), ForeignKey("events.event_id"), nullable=False),
    Column("webhook", String(1000), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("lease_until", BigInteger, nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("delivered_at", BigInteger, nullable=True),
    UniqueConstraint("event_id", "webhook", name="uq_delivery_event_webhook"),
)

Index("ix_deliveries_due", event_deliveries.c.state, event_deliveries.c.next_attempt_at)

# Sign-in sessions of /console and /portal: the cookie's id is stored as its SHA-256 only.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("workspace_id", String(40), nullable=True),
    Column("key_id", String(40), nullable=True),
    Column("token_digest", String(64), nullable=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

Index("ix_console_sessions_key", console_sessions.c.key_id)
Index("ix_console_sessions_expires", console_sessions.c.expires_at)
