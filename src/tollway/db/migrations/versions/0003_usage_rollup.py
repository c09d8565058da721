"""Daily usage rollup and the indexes the reports read through.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Derived from usage_records (rebuildable, checked by `tollway ledger verify`), kept in
    # the same transaction as each record so reports never sum raw history.
    op.create_table(
        "usage_daily",
        sa.Column("workspace_id", sa.String(40), nullable=False),
        sa.Column("day", sa.Integer, nullable=False),  # UTC days since 1970-01-01
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("calls", sa.BigInteger, nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False),
        sa.Column("cached_tokens", sa.BigInteger, nullable=False),
        sa.Column("cache_write_tokens", sa.BigInteger, nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_nano", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "day", "model", "key_id", name="pk_usage_daily"),
    )
    op.create_index("ix_usage_daily_day", "usage_daily", ["day"])
    op.drop_index("ix_usage_ws_time", "usage_records")
    op.create_index("ix_usage_ws_time", "usage_records", ["workspace_id", "finished_at", "id"])
    op.create_index("ix_usage_time", "usage_records", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_usage_time", "usage_records")
    op.drop_index("ix_usage_ws_time", "usage_records")
    op.create_index("ix_usage_ws_time", "usage_records", ["workspace_id", "finished_at"])
    op.drop_index("ix_usage_daily_day", "usage_daily")
    op.drop_table("usage_daily")
