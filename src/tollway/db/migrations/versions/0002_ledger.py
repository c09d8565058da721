"""The ledger: immutable entries and usage records, refused UPDATE/DELETE by the database.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MONEY_TABLES = ("ledger_entries", "usage_records")


def _id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        _id(),
        sa.Column("workspace_id", sa.String(40), sa.ForeignKey("workspaces.id"), nullable=False),
        sa.Column("ws_seq", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_nano", sa.BigInteger, nullable=False),
        sa.Column("hold_nano", sa.BigInteger, nullable=False),
        sa.Column("balance_nano", sa.BigInteger, nullable=False),
        sa.Column("held_nano", sa.BigInteger, nullable=False),
        sa.Column("key_id", sa.String(40), nullable=True),
        sa.Column("key_spent_nano", sa.BigInteger, nullable=True),
        sa.Column("key_held_nano", sa.BigInteger, nullable=True),
        sa.Column("reservation_id", sa.String(40), nullable=True),
        sa.Column("owner", sa.String(40), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("note", sa.String(500), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.CheckConstraint("kind IN ('credit', 'adjustment', 'reserve', 'debit', 'release')", name="ck_kind"),
    )
    op.create_index("ux_ledger_ws_seq", "ledger_entries", ["workspace_id", "ws_seq"], unique=True)
    op.create_index("ix_ledger_key_seq", "ledger_entries", ["key_id", "id"])
    op.create_index("ix_ledger_key_time", "ledger_entries", ["key_id", "created_at"])
    # The database itself guarantees one reserve and at most one settlement per reservation,
    # and one credit per idempotency key.
    op.create_index(
        "ux_ledger_reserve",
        "ledger_entries",
        ["reservation_id"],
        unique=True,
        sqlite_where=sa.text("kind = 'reserve'"),
        postgresql_where=sa.text("kind = 'reserve'"),
    )
    op.create_index(
        "ux_ledger_settlement",
        "ledger_entries",
        ["reservation_id"],
        unique=True,
        sqlite_where=sa.text("kind IN ('debit', 'release')"),
        postgresql_where=sa.text("kind IN ('debit', 'release')"),
    )
    op.create_index(
        "ux_ledger_idempotency",
        "ledger_entries",
        ["workspace_id", "idempotency_key"],
        unique=True,
        sqlite_where=sa.text("idempotency_key IS NOT NULL"),
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_index(
        "ix_ledger_owner",
        "ledger_entries",
        ["owner"],
        sqlite_where=sa.text("kind = 'reserve'"),
        postgresql_where=sa.text("kind = 'reserve'"),
    )
    op.create_table(
        "usage_records",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("workspace_id", sa.String(40), sa.ForeignKey("workspaces.id"), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("upstream", sa.String(200), nullable=False),
        sa.Column("price_id", sa.String(300), nullable=False),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("end_state", sa.String(32), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False),
        sa.Column("cached_tokens", sa.BigInteger, nullable=False),
        sa.Column("cache_write_tokens", sa.BigInteger, nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger, nullable=False),
        sa.Column("prompt_source", sa.String(16), nullable=False),
        sa.Column("completion_source", sa.String(16), nullable=False),
        sa.Column("estimated", sa.Boolean, nullable=False),
        sa.Column("rates", sa.String(1000), nullable=False),
        sa.Column("cost_nano", sa.BigInteger, nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("finished_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_usage_ws_time", "usage_records", ["workspace_id", "finished_at"])
    op.create_table(
        "instances",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("heartbeat_at", sa.BigInteger, nullable=False),
        sa.Column("reaped_at", sa.BigInteger, nullable=True),
    )
    _append_only(MONEY_TABLES)


def _append_only(tables: tuple[str, ...]) -> None:
    dialect = op.get_bind().dialect.name
    for table in tables:
        if dialect == "sqlite":
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {action} refused'); END"
                )
        elif dialect == "postgresql":
            op.execute(
                "CREATE OR REPLACE FUNCTION tollway_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP; END $$"
            )
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION tollway_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION tollway_append_only()"
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in MONEY_TABLES:
        if dialect == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    op.drop_table("instances")
    op.drop_table("usage_records")
    op.drop_table("ledger_entries")
