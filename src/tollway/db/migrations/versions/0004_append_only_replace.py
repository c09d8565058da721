"""Close the indirect ways round the append-only triggers of 0002.

SQLite: `INSERT OR REPLACE` / `REPLACE INTO` resolve a uniqueness conflict by
deleting the old row, and that delete fires no DELETE trigger unless the
connection has `PRAGMA recursive_triggers` on (an attacker's won't).  A
BEFORE INSERT trigger on each money table therefore refuses any new row that
would collide with an existing one on any of the table's uniqueness rules, so
no conflict resolution ever gets to delete a row.  Each check is one index
probe; a normal insert collides with nothing and passes.  (In a BEFORE INSERT
trigger an id the database is about to assign reads as -1, which no stored
row has: SQLite only assigns positive rowids.)

PostgreSQL: upserts and MERGE already fire the row triggers, TRUNCATE (also
by CASCADE) the statement triggers.  What skipped them is replication mode:
`session_replication_role = replica` (a logical-replication apply worker, or
any role granted SET on that parameter) disables ordinary triggers.  They are
now ENABLE ALWAYS, so they fire in every session mode.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# (uniqueness rule named in the refusal, when a new row can collide on it, the existing row it
# would collide with).  One entry per PRIMARY KEY / UNIQUE index of the table, every one answered by
# that very index (or the rowid).
_RULES: dict[str, tuple[tuple[str, str | None, str], ...]] = {
    "ledger_entries": (
        ("id", None, "id = NEW.id"),
        ("ux_ledger_ws_seq", None, "workspace_id = NEW.workspace_id AND ws_seq = NEW.ws_seq"),
        (
            "ux_ledger_reserve",
            "NEW.kind = 'reserve'",
            "reservation_id = NEW.reservation_id AND kind = 'reserve'",
        ),
        (
            "ux_ledger_settlement",
            "NEW.kind IN ('debit', 'release')",
            "reservation_id = NEW.reservation_id AND kind IN ('debit', 'release')",
        ),
        (
            "ux_ledger_idempotency",
            "NEW.idempotency_key IS NOT NULL",
            "workspace_id = NEW.workspace_id AND idempotency_key = NEW.idempotency_key"
            " AND idempotency_key IS NOT NULL",
        ),
    ),
    # Not a rowid alias: its TEXT key has its own index, and the hidden rowid is unique too.
    "usage_records": (
        ("id", None, "id = NEW.id"),
        ("rowid", None, "rowid = NEW.rowid"),
    ),
}

_PG_TRIGGERS = {
    "ledger_entries": ("ledger_entries_append_only", "ledger_entries_no_truncate"),
    "usage_records": ("usage_records_append_only", "usage_records_no_truncate"),
}


def _no_replace(table: str) -> str:
    checks = " ".join(
        f"SELECT RAISE(ABORT, '{table} is append-only: INSERT colliding on {rule} refused')"
        f" WHERE {when + ' AND ' if when else ''}EXISTS (SELECT 1 FROM {table} WHERE {match});"
        for rule, when, match in _RULES[table]
    )
    return f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} BEGIN {checks} END"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for table in _RULES:
            op.execute(_no_replace(table))
    elif dialect == "postgresql":
        for table, triggers in _PG_TRIGGERS.items():
            for trigger in triggers:
                op.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {trigger}")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for table in _RULES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_replace")
    elif dialect == "postgresql":
        for table, triggers in _PG_TRIGGERS.items():
            for trigger in triggers:
                op.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")
