"""A key's spend at a period's start is read from its debits only: `ix_ledger_key_time` holds debits.

Revision ID: 0011
Revises: 0010

A key's running spend (`key_spent_nano`) moves only on a debit: a reservation
or a release carries the figure of the debit before it.  So the spend as it
stood at a moment is the `key_spent_nano` of the key's latest debit before it
(0 if none), the same figure the latest entry of any kind before it carries,
and the index that answers it (`key_id, created_at`) needs no reservation or
release in it.  Every billed request's reserve entry then writes one index
fewer (six, not seven), and on SQLite a commit of reservations dirties one
page fewer.  Its one reader, `KEY_SPENT_BEFORE` (a reservation's, and the usage
reports' key spend), says `kind = 'debit'` as a literal, which is what lets
either engine use a partial index.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_ledger_key_time", table_name="ledger_entries")
    op.create_index(
        "ix_ledger_key_time",
        "ledger_entries",
        ["key_id", "created_at"],
        sqlite_where=sa.text("kind = 'debit'"),
        postgresql_where=sa.text("kind = 'debit'"),
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_key_time", table_name="ledger_entries")
    op.create_index("ix_ledger_key_time", "ledger_entries", ["key_id", "created_at"])
