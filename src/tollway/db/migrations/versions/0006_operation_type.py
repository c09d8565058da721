"""Usage records and the daily rollup say which API surface served each request (`operation_type`).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ROLLUP_COLUMNS = (
    "calls",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_nano",
)


def upgrade() -> None:
    # A constant default: no existing record is rewritten (nothing reaches the append-only triggers);
    # every record before this revision was a chat completion.
    op.add_column(
        "usage_records",
        sa.Column("operation_type", sa.String(40), nullable=False, server_default="chat.completions"),
    )
    # The rollup is derived (rebuildable), so it is rebuilt with the surface in its key.
    op.create_table(
        "usage_daily_next",
        sa.Column("workspace_id", sa.String(40), nullable=False),
        sa.Column("day", sa.Integer, nullable=False),
        sa.Column("operation_type", sa.String(40), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        *(sa.Column(name, sa.BigInteger, nullable=False) for name in _ROLLUP_COLUMNS),
        sa.PrimaryKeyConstraint(
            "workspace_id", "day", "operation_type", "model", "key_id", name="pk_usage_daily_next"
        ),
    )
    sums = ", ".join(_ROLLUP_COLUMNS)
    op.execute(
        f"INSERT INTO usage_daily_next (workspace_id, day, operation_type, model, key_id, {sums}) "
        f"SELECT workspace_id, day, 'chat.completions', model, key_id, {sums} FROM usage_daily"
    )
    op.drop_index("ix_usage_daily_day", "usage_daily")
    op.drop_table("usage_daily")
    op.rename_table("usage_daily_next", "usage_daily")
    op.create_index("ix_usage_daily_day", "usage_daily", ["day"])


def downgrade() -> None:
    raise NotImplementedError("0006 has no downgrade: restore a backup taken before upgrading")
