"""The ledger's statements, written once for both engines and run without a query builder.

A billed request runs a handful of small statements; building them with
SQLAlchemy's expression language and computing their cache keys cost more CPU
than SQLite spent executing them (about 5 ms per request on the benchmark
machine, against 0.2 ms for the SQL itself).  Placeholders are `$n`,
PostgreSQL's own; SQLite reads the same text with `?n`.
"""

from __future__ import annotations

from msgspec import Struct

from tollway.ledger.chain import Entry
from tollway.ledger.record import UsageRecord
from tollway.ledger.rollup import KEY as ROLLUP_KEY
from tollway.ledger.rollup import SUMMED as ROLLUP_SUMMED

__all__ = [
    "CREDIT_BY_KEY",
    "ENTRY_COLUMNS",
    "HEAD",
    "HEADS",
    "INSERT_ENTRY",
    "INSERT_USAGE",
    "KEY_HEAD",
    "KEY_SPENT_BEFORE",
    "LOCK_HEADS",
    "LOCK_WORKSPACE",
    "RESERVATION_ENTRIES",
    "ROLLUP_UPSERT",
    "SETTLE_PG",
    "Statement",
    "statement",
]


class Statement(Struct, frozen=True):
    postgresql: str
    sqlite: str

    def text(self, dialect: str) -> str:
        return self.sqlite if dialect == "sqlite" else self.postgresql


def statement(text: str) -> Statement:
    """A statement written with PostgreSQL's `$n` placeholders, for both engines."""
    return Statement(postgresql=text, sqlite=text.replace("$", "?"))


_sql = statement


def _placeholders(count: int, first: int = 1) -> str:
    return ", ".join(f"${n}" for n in range(first, first + count))


# Every column of an entry but its id, in `Entry` field order; rows read back end with the id.
# The id is the entry's last field, so a row to insert is `astuple(entry)[:-1]`.
ENTRY_COLUMNS = Entry.__struct_fields__[:-1]
assert Entry.__struct_fields__[-1] == "id"
_ENTRY_SELECT = ", ".join((*ENTRY_COLUMNS, "id"))
_USAGE_COLUMNS = UsageRecord.__struct_fields__

HEAD = _sql(
    "SELECT ws_seq, balance_nano, held_nano, hash FROM ledger_entries"
    " WHERE workspace_id = $1 ORDER BY ws_seq DESC LIMIT 1"
)
KEY_HEAD = _sql(
    "SELECT key_spent_nano, key_held_nano FROM ledger_entries WHERE key_id = $1 ORDER BY id DESC LIMIT 1"
)
# Both heads in one statement, one round trip under the lock: the workspace's row (if any), then
# the key's (if any), told apart by their first column (`ws_seq` is never NULL).
HEADS = _sql(
    "SELECT * FROM (SELECT ws_seq, balance_nano, held_nano, hash FROM ledger_entries"
    " WHERE workspace_id = $1 ORDER BY ws_seq DESC LIMIT 1) AS h"
    " UNION ALL SELECT * FROM (SELECT CAST(NULL AS BIGINT), key_spent_nano, key_held_nano, CAST(NULL AS TEXT)"
    " FROM ledger_entries"
    " WHERE key_id = $2 ORDER BY id DESC LIMIT 1) AS k"
)
# PostgreSQL only: LOCK_WORKSPACE, then HEADS, in one round trip (migration 0010's function).
LOCK_HEADS = _sql("SELECT * FROM tollway_lock_heads($1, $2)")
# Only a debit moves a key's spend, so its latest debit before the moment carries the figure
# (migration 0011: `ix_ledger_key_time` holds debits only, which `kind = 'debit'` lets the engines use).
KEY_SPENT_BEFORE = _sql(
    "SELECT key_spent_nano FROM ledger_entries WHERE key_id = $1 AND kind = 'debit' AND created_at < $2"
    " ORDER BY created_at DESC, id DESC LIMIT 1"
)
# Run with `Sql.insert`, which answers the new entry's id.  SQLite's text has no RETURNING: SQLite
# gathers a RETURNING clause's rows in an ephemeral table (a b-tree created, its pages zeroed, for
# every insert), and the id is the rowid, which the connection reports after the INSERT anyway.
_INSERT_ENTRY = (
    f"INSERT INTO ledger_entries ({', '.join(ENTRY_COLUMNS)}) VALUES ({_placeholders(len(ENTRY_COLUMNS))})"
)
INSERT_ENTRY = Statement(postgresql=f"{_INSERT_ENTRY} RETURNING id", sqlite=_sql(_INSERT_ENTRY).sqlite)
RESERVATION_ENTRIES = _sql(f"SELECT {_ENTRY_SELECT} FROM ledger_entries WHERE reservation_id = $1")
CREDIT_BY_KEY = _sql(
    f"SELECT {_ENTRY_SELECT} FROM ledger_entries WHERE workspace_id = $1 AND idempotency_key = $2"
)
INSERT_USAGE = _sql(
    f"INSERT INTO usage_records ({', '.join(_USAGE_COLUMNS)}) VALUES ({_placeholders(len(_USAGE_COLUMNS))})"
)
_ROLLUP_COLUMNS = (*ROLLUP_KEY, *ROLLUP_SUMMED)
_ROLLUP_CONFLICT = f" ON CONFLICT ({', '.join(ROLLUP_KEY)}) DO UPDATE SET " + ", ".join(
    f"{name} = usage_daily.{name} + excluded.{name}" for name in ROLLUP_SUMMED
)
ROLLUP_UPSERT = _sql(
    f"INSERT INTO usage_daily ({', '.join(_ROLLUP_COLUMNS)})"
    f" VALUES ({_placeholders(len(_ROLLUP_COLUMNS))})" + _ROLLUP_CONFLICT
)
# PostgreSQL only: a settlement's usage record, its share of the rollup and its debit in one statement
# (one round trip under the workspace's lock instead of three).  Placeholders run on from one part to
# the next: the usage record's columns, the rollup's, then the entry's.
_U, _R = len(_USAGE_COLUMNS), len(_ROLLUP_COLUMNS)
SETTLE_PG = Statement(
    postgresql=(
        f"WITH u AS (INSERT INTO usage_records ({', '.join(_USAGE_COLUMNS)})"
        f" VALUES ({_placeholders(_U)})),"
        f" r AS (INSERT INTO usage_daily ({', '.join(_ROLLUP_COLUMNS)})"
        f" VALUES ({_placeholders(_R, _U + 1)}){_ROLLUP_CONFLICT})"
        f" INSERT INTO ledger_entries ({', '.join(ENTRY_COLUMNS)})"
        f" VALUES ({_placeholders(len(ENTRY_COLUMNS), _U + _R + 1)}) RETURNING id"
    ),
    sqlite="",  # SQLite runs the three statements (each without a round trip)
)
# PostgreSQL only: serialises the workspace's ledger writers without blocking
# foreign-key checks (e.g. creating one of its keys).  SQLite's writers are
# serialised by BEGIN IMMEDIATE instead.
LOCK_WORKSPACE = _sql("SELECT id FROM workspaces WHERE id = $1 FOR NO KEY UPDATE")
