"""Operating tollway: rate limits, low-balance thresholds, and the webhook outbox.

Revision ID: 0008
Revises: 0007

- `api_keys` and `workspaces` gain `requests_per_minute`, `tokens_per_minute`
  and `max_concurrent` (NULL: no limit); workspaces gain `low_balance_nano`.
  These rows are configuration, not money: PATCH changes them in place.
- `*_notified` columns remember that a once-per-crossing event was sent, so
  it is not sent again until the condition is re-armed (a credit, a PATCH).
- `rate_buckets`: requests and tokens admitted per subject (a key or a
  workspace) and second, while that subject has a per-minute limit; the
  60-second windows are summed from at most 60 rows.  `rate_admissions`: one
  row per request in flight while a concurrency limit is in force.  Both are
  written in the reservation's transaction (under the workspace's write lock,
  so every worker and host sees one count) and adjusted in the settlement's;
  they hold no money, and old buckets are pruned.
- `events` / `event_deliveries`: the outbox.  An event is written in the same
  transaction as its cause; each subscribed webhook gets a delivery row that
  the deliverer leases, attempts and marks.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_LIMITS = ("requests_per_minute", "tokens_per_minute", "max_concurrent")


def _id() -> sa.Column[int]:
    return sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )


def upgrade() -> None:
    for table in ("api_keys", "workspaces"):
        for name in _LIMITS:
            op.add_column(table, sa.Column(name, sa.BigInteger, nullable=True))
    op.add_column("workspaces", sa.Column("low_balance_nano", sa.BigInteger, nullable=True))
    false = sa.text("false")
    op.add_column(
        "workspaces", sa.Column("low_balance_notified", sa.Boolean, nullable=False, server_default=false)
    )
    op.add_column(
        "workspaces", sa.Column("exhausted_notified", sa.Boolean, nullable=False, server_default=false)
    )
    # The start (µs) of the spend-limit period in which spend_limit.reached was last sent; -1: total.
    op.add_column("api_keys", sa.Column("spend_notified_period", sa.BigInteger, nullable=True))

    # Requests admitted per subject (a key or a workspace id) and second, for the 60-second windows.
    op.create_table(
        "rate_buckets",
        sa.Column("subject", sa.String(40), nullable=False),
        sa.Column("second", sa.BigInteger, nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("subject", "second", name="pk_rate_buckets"),
    )
    # Requests in flight while a concurrency limit was in force (deleted when they end).
    op.create_table(
        "rate_admissions",
        sa.Column("request_id", sa.String(40), primary_key=True),
        sa.Column("workspace_id", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("admitted_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_rate_admissions_key", "rate_admissions", ["key_id"])
    op.create_index("ix_rate_admissions_ws", "rate_admissions", ["workspace_id"])

    op.create_table(
        "events",
        _id(),
        sa.Column("event_id", sa.String(40), nullable=False, unique=True),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("workspace_id", sa.String(40), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_index("ix_events_ws", "events", ["workspace_id", "id"])
    op.create_table(
        "event_deliveries",
        _id(),
        sa.Column("event_id", sa.String(40), sa.ForeignKey("events.event_id"), nullable=False),
        sa.Column("webhook", sa.String(1000), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),  # pending | delivered | failed
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
        sa.Column("lease_until", sa.BigInteger, nullable=True),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("delivered_at", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("event_id", "webhook", name="uq_delivery_event_webhook"),
    )
    op.create_index("ix_deliveries_due", "event_deliveries", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("event_deliveries")
    op.drop_table("events")
    op.drop_table("rate_admissions")
    op.drop_table("rate_buckets")
    # Not batch mode: on SQLite it would rebuild tables without their triggers.
    op.execute("ALTER TABLE api_keys DROP COLUMN spend_notified_period")
    for name in ("exhausted_notified", "low_balance_notified", "low_balance_nano"):
        op.execute(f"ALTER TABLE workspaces DROP COLUMN {name}")
    for table in ("workspaces", "api_keys"):
        for name in reversed(_LIMITS):
            op.execute(f"ALTER TABLE {table} DROP COLUMN {name}")
