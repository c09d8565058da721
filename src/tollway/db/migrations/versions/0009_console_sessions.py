"""Sign-in sessions of the web console (/console) and the customer portal (/portal).

Revision ID: 0009
Revises: 0008

The cookie holds an opaque random id; only its SHA-256 is stored, so a copy of
the database cannot be replayed as a cookie.  A row is a session of `kind`
admin (the admin token; `token_digest` ties it to the token it was opened with,
so rotating the token ends it) or portal (an API key: `workspace_id`, `key_id`;
revoking the key ends it).  `csrf_token` is the token every form of the session
carries.  Sessions hold no money: sign-out and expiry delete them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),  # admin | portal
        sa.Column("workspace_id", sa.String(40), nullable=True),
        sa.Column("key_id", sa.String(40), nullable=True),
        sa.Column("token_digest", sa.String(64), nullable=True),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("last_seen", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_console_sessions_key", "console_sessions", ["key_id"])
    op.create_index("ix_console_sessions_expires", "console_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("console_sessions")
