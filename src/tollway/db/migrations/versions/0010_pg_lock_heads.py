"""PostgreSQL: take a workspace's write lock and read its heads in one round trip.

Revision ID: 0010
Revises: 0009

`tollway_lock_heads(workspace_id, key_id)` locks the workspace's row as
`SELECT … FOR NO KEY UPDATE` does, then returns the workspace's and the key's
heads: the same rows as the ledger's `HEADS` statement, told apart the same way
(`ws_seq` is NULL on the key's row).  A `VOLATILE` function takes a fresh
snapshot for each statement it runs, so the heads it reads are the ones the
previous holder of the lock committed: a single statement that locked and read
would read from a snapshot taken before it waited for the lock.

It saves the round trip between the lock and the first read, both spent while
the lock is held: on one busy workspace, that is throughput.  SQLite needs no
such function (its write lock is the database's, taken at `BEGIN IMMEDIATE`).
The ledger's `tests/db` checks the function's statements against `ledger/sql.py`.
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Frozen here as it was written; a test compares it with the statements in ledger/sql.py.
LOCK_HEADS_FUNCTION = """
CREATE OR REPLACE FUNCTION tollway_lock_heads(text, text)
RETURNS TABLE (ws_seq bigint, balance_nano bigint, held_nano bigint, hash text)
LANGUAGE sql VOLATILE AS $fn$
SELECT id FROM workspaces WHERE id = $1 FOR NO KEY UPDATE;
SELECT * FROM (SELECT ws_seq, balance_nano, held_nano, hash FROM ledger_entries
 WHERE workspace_id = $1 ORDER BY ws_seq DESC LIMIT 1) AS h
 UNION ALL SELECT * FROM (SELECT CAST(NULL AS BIGINT), key_spent_nano, key_held_nano, CAST(NULL AS TEXT)
 FROM ledger_entries
 WHERE key_id = $2 ORDER BY id DESC LIMIT 1) AS k;
$fn$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(LOCK_HEADS_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS tollway_lock_heads(text, text)")
