"""SQLite: `ledger_entries`' kind check as comparisons, so an insert builds no ephemeral index.

Revision ID: 0012
Revises: 0011

0002 wrote the check as `kind IN ('credit', 'adjustment', 'reserve', 'debit',
'release')`.  SQLite evaluates an IN list of more than two constants by
building an ephemeral index of them (a b-tree created, filled and dropped)
for every statement that checks it: each entry's INSERT did, two per billed
request (in isolation, on a thread, an insert into a small table with the IN
list took 3.6-3.8 µs against 1.8-2.6 µs with comparisons).  The same check
written as `kind = 'credit' OR ...` admits exactly the same rows and is five
comparisons.

SQLite cannot alter a constraint, and copying the ledger into a new table
would take as long as the ledger is big; the check changes no stored byte,
so this is SQLite's own procedure for such changes ("Making Other Kinds Of
Table Schema Changes", lang_altertable.html): the table's text in
`sqlite_master` rewritten under `writable_schema`, the schema version
bumped so every connection reads it anew.  Every row already satisfies the
rewritten check, which is the same predicate.  PostgreSQL evaluates the list
as one array comparison: nothing to do there.
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

KINDS = ("credit", "adjustment", "reserve", "debit", "release")
IN_LIST = "CHECK (kind IN (" + ", ".join(f"'{kind}'" for kind in KINDS) + "))"
COMPARISONS = "CHECK (" + " OR ".join(f"kind = '{kind}'" for kind in KINDS) + ")"


def _rewrite(old: str, new: str) -> None:
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        return
    found = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'ledger_entries'"
    ).scalar_one()
    if found.count(old) != 1:
        raise RuntimeError(f"ledger_entries' kind check is not the one this migration rewrites: {found}")
    version = conn.exec_driver_sql("PRAGMA schema_version").scalar_one()
    conn.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        conn.exec_driver_sql(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'ledger_entries'",
            (found.replace(old, new),),
        )
        conn.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        conn.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    _rewrite(IN_LIST, COMPARISONS)


def downgrade() -> None:
    _rewrite(COMPARISONS, IN_LIST)
