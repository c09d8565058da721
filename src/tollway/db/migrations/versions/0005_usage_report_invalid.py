"""Usage records say when an upstream's usage report was ignored as invalid, and which model answered.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: no existing row is rewritten (no UPDATE reaches the append-only triggers).
    op.add_column(
        "usage_records",
        sa.Column("report_invalid", sa.Boolean, nullable=False, server_default=sa.text("false")),
    )
    # The model the upstream said answered (e.g. a dated snapshot), beside the served name in `model`.
    op.add_column(
        "usage_records",
        sa.Column("upstream_model", sa.String(200), nullable=False, server_default=""),
    )


def downgrade() -> None:
    # Not batch mode: on SQLite it would rebuild the table without its append-only triggers.
    for column in ("upstream_model", "report_invalid"):
        op.execute(f"ALTER TABLE usage_records DROP COLUMN {column}")
