"""Usage records and the daily rollup count the cache writes made to a 1-hour cache (Anthropic).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TABLES = ("usage_records", "usage_daily")


def upgrade() -> None:
    # A constant default: no existing row is rewritten (no UPDATE reaches the append-only triggers),
    # and it is true of every earlier record: none was billed a 1-hour cache write.
    for table in _TABLES:
        op.add_column(
            table,
            sa.Column("cache_write_1h_tokens", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        )


def downgrade() -> None:
    # Not batch mode: on SQLite it would rebuild the table without its append-only triggers.
    for table in reversed(_TABLES):
        op.execute(f"ALTER TABLE {table} DROP COLUMN cache_write_1h_tokens")
