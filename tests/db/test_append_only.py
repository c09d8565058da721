"""The money tables refuse every indirect way to change or remove a row, on SQLite and PostgreSQL.

Real rows go in through tollway's own ledger API (a credit with an idempotency
key, a reservation settled by a debit with its usage record, a reservation left
open).  Then a separate raw connection, as an attacker with write access to the
database would open it, tries each way round the UPDATE/DELETE triggers: on
SQLite the conflict resolutions (`INSERT OR REPLACE`, `REPLACE`, upserts,
`UPDATE OR ...`) colliding on every uniqueness rule of the table, with
`PRAGMA recursive_triggers` on and off; on PostgreSQL TRUNCATE (also by
CASCADE), upserts, MERGE and the workspace row, in the normal session mode and
in replication mode (`session_replication_role = replica`).  Each must be
refused, or (where noted) change nothing; afterwards every column of every
money row is as it was and `verify_ledger` reports the ledger whole.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.ext.asyncio import AsyncEngine

import tollway.db
from tests.dbs import is_postgres
from tests.ledger.conftest import reserve, settle
from tollway.accounts import AccountStore
from tollway.billing.credits import credit
from tollway.db import create_engine, upgrade
from tollway.ledger import Ledger
from tollway.ledger.verify import verify_ledger

USD = 1_000_000_000
MONEY_TABLES = ("ledger_entries", "usage_records")
REFUSED = "is append-only"

on_sqlite = pytest.mark.skipif(is_postgres(), reason="SQLite's own statements and conflict resolutions")
on_postgres = pytest.mark.skipif(not is_postgres(), reason="PostgreSQL's own statements (needs a server)")


@dataclass(frozen=True)
class Money:
    """A migrated database holding real money rows, written by tollway."""

    url: str
    engine: AsyncEngine
    workspace_id: str


@pytest.fixture(name="money")
async def fixture_money(database_url: str) -> AsyncIterator[Money]:
    """#1 credit of $100 (idempotency key pay_1), #2 reserve req_1, #3 debit req_1 (+ its usage record),
    #4 reserve req_2 (left open)."""
    engine = create_engine(database_url)
    ledger = Ledger(engine)
    try:
        await upgrade(engine)
        accounts = AccountStore(engine)
        ws = (await accounts.create_workspace("acme")).id
        key = (await accounts.create_key(ws, "k", None, "total")).key.id
        await credit(ledger, ws, 100 * USD, "pay_1", "first payment")
        await reserve(ledger, ws, key, "req_1", 2 * USD, owner="inst_1")
        await settle(ledger, ws, key, "req_1", 2 * USD, 1 * USD)
        await reserve(ledger, ws, key, "req_2", 1 * USD, owner="inst_1")
        report = await verify_ledger(engine)
        assert report.ok, report.mismatches
        assert (report.entries, report.usage_records, report.open_reservations) == (4, 1, 1)
        yield Money(database_url, engine, ws)
    finally:
        ledger.close()
        await engine.dispose()


def _sqlite_path(url: str) -> str:
    return url.split(":///", 1)[1]


def _pg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


# -- reading the rows back, every column ---------------------------------------------------------

Snapshot = dict[str, list[dict[str, Any]]]


def _sqlite_snapshot(url: str) -> Snapshot:
    with contextlib.closing(sqlite3.connect(_sqlite_path(url))) as con:
        con.row_factory = sqlite3.Row
        return {
            table: [
                dict(row) for row in con.execute(f"SELECT rowid AS rowid_, * FROM {table} ORDER BY rowid")
            ]
            for table in MONEY_TABLES
        }


async def _pg_snapshot(url: str) -> Snapshot:
    import asyncpg

    con = await asyncpg.connect(_pg_dsn(url))
    try:
        return {
            table: [dict(row) for row in await con.fetch(f"SELECT * FROM {table} ORDER BY id")]
            for table in MONEY_TABLES
        }
    finally:
        await con.close()


async def _snapshot(url: str) -> Snapshot:
    return await _pg_snapshot(url) if is_postgres() else _sqlite_snapshot(url)


def _row(snapshot: Snapshot, table: str, **match: Any) -> dict[str, Any]:
    rows = [r for r in snapshot[table] if all(r[k] == v for k, v in match.items())]
    assert len(rows) == 1, (table, match, rows)
    return {k: v for k, v in rows[0].items() if k != "rowid_"}


async def _assert_untouched(money: Money, before: Snapshot) -> None:
    after = await _snapshot(money.url)
    for table in MONEY_TABLES:
        assert after[table] == before[table], f"{table} changed"
    report = await verify_ledger(money.engine)
    assert report.ok, report.mismatches
    assert (report.entries, report.usage_records, report.open_reservations) == (4, 1, 1)


# -- rows that collide with the existing ones, one uniqueness rule at a time -----------------------


@dataclass(frozen=True)
class Collision:
    table: str
    rule: str  # the rule the refusal names (SQLite); "*" for a row colliding on several
    row: Callable[[Snapshot], dict[str, Any]]
    target: str | None  # the ON CONFLICT target naming that rule (None: only the untargeted form)


def _credit(s: Snapshot) -> dict[str, Any]:
    return _row(s, "ledger_entries", ws_seq=1)


def _without_id(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "id"}


COLLISIONS = {
    # The security campaign's attack: the $100 credit, rewritten as $999 under its own id.
    "the whole credit rewritten": Collision(
        "ledger_entries",
        "*",
        lambda s: {**_credit(s), "amount_nano": 999 * USD, "balance_nano": 999 * USD},
        "(id)",
    ),
    "ledger id": Collision(
        "ledger_entries",
        "id",
        lambda s: {**_credit(s), "ws_seq": 99, "idempotency_key": None, "amount_nano": 999 * USD},
        "(id)",
    ),
    "(workspace_id, ws_seq)": Collision(
        "ledger_entries",
        "ux_ledger_ws_seq",
        lambda s: {**_without_id(_credit(s)), "idempotency_key": None, "amount_nano": 999 * USD},
        "(workspace_id, ws_seq)",
    ),
    "second debit for a settled reservation": Collision(
        "ledger_entries",
        "ux_ledger_settlement",
        lambda s: {**_without_id(_row(s, "ledger_entries", ws_seq=3)), "ws_seq": 99, "amount_nano": 0},
        "(reservation_id) WHERE kind IN ('debit', 'release')",
    ),
    "release of a settled reservation": Collision(
        "ledger_entries",
        "ux_ledger_settlement",
        lambda s: {
            **_without_id(_row(s, "ledger_entries", ws_seq=3)),
            "ws_seq": 99,
            "kind": "release",
            "amount_nano": 0,
        },
        "(reservation_id) WHERE kind IN ('debit', 'release')",
    ),
    "second reserve for an open reservation": Collision(
        "ledger_entries",
        "ux_ledger_reserve",
        lambda s: {**_without_id(_row(s, "ledger_entries", ws_seq=4)), "ws_seq": 99, "hold_nano": 0},
        "(reservation_id) WHERE kind = 'reserve'",
    ),
    "reused idempotency key": Collision(
        "ledger_entries",
        "ux_ledger_idempotency",
        lambda s: {**_without_id(_credit(s)), "ws_seq": 99, "amount_nano": 999 * USD},
        "(workspace_id, idempotency_key) WHERE idempotency_key IS NOT NULL",
    ),
    "usage record id": Collision(
        "usage_records",
        "id",
        lambda s: {**_row(s, "usage_records", id="req_1"), "cost_nano": 0},
        "(id)",
    ),
}
# SQLite only: the rowid, under the name rowid (ledger_entries: an alias of id; usage_records: hidden).
SQLITE_COLLISIONS = {
    **COLLISIONS,
    "ledger id, named rowid": Collision(
        "ledger_entries",
        "id",
        lambda s: {
            "rowid": _credit(s)["id"],
            **_without_id(_credit(s)),
            "ws_seq": 99,
            "idempotency_key": None,
            "amount_nano": 999 * USD,
        },
        None,
    ),
    "usage record rowid": Collision(
        "usage_records",
        "rowid",
        lambda s: {
            "rowid": s["usage_records"][0]["rowid_"],
            **_row(s, "usage_records", id="req_1"),
            "id": "req_forged",
            "cost_nano": 0,
        },
        None,
    ),
}

_SET = {
    "ledger_entries": "amount_nano = excluded.amount_nano",
    "usage_records": "cost_nano = excluded.cost_nano",
}


def _insert(verb: str, c: Collision, row: dict[str, Any], tail: str, mark: Callable[[int], str]) -> str:
    marks = ", ".join(mark(n) for n in range(1, len(row) + 1))
    return f"{verb} {c.table} ({', '.join(row)}) VALUES ({marks}){tail}"


# -- SQLite ----------------------------------------------------------------------------------------

# All refused, DO NOTHING and OR IGNORE too: the trigger's checks run before SQLite looks for the
# conflict, whatever the statement would then have done about it.
SQLITE_FORMS = {
    "INSERT OR REPLACE": ("INSERT OR REPLACE INTO", ""),
    "REPLACE INTO": ("REPLACE INTO", ""),
    "upsert": ("INSERT INTO", " ON CONFLICT DO UPDATE SET {set}"),
    "upsert on its target": ("INSERT INTO", " ON CONFLICT {target} DO UPDATE SET {set}"),
    "ON CONFLICT DO NOTHING": ("INSERT INTO", " ON CONFLICT DO NOTHING"),
    "INSERT OR IGNORE": ("INSERT OR IGNORE INTO", ""),
}

SQLITE_INSERTS = [
    pytest.param(collision, form, id=f"{form}: {name}")
    for name, collision in SQLITE_COLLISIONS.items()
    for form in SQLITE_FORMS
    if collision.target is not None or "{target}" not in SQLITE_FORMS[form][1]
]

SQLITE_STATEMENTS = [
    "UPDATE ledger_entries SET amount_nano = 999000000000 WHERE ws_seq = 1",
    "UPDATE ledger_entries SET note = 'edited'",
    "UPDATE ledger_entries SET rowid = rowid + 100 WHERE ws_seq = 4",
    "UPDATE OR REPLACE ledger_entries SET ws_seq = 1 WHERE ws_seq = 4",  # would delete #1
    "UPDATE OR REPLACE ledger_entries SET reservation_id = 'req_1' WHERE ws_seq = 4",  # would delete #2
    "UPDATE OR IGNORE ledger_entries SET amount_nano = 0",
    "UPDATE OR FAIL ledger_entries SET amount_nano = 0",
    "UPDATE ledger_entries SET amount_nano = 0 FROM workspaces WHERE workspaces.id = workspace_id",
    "DELETE FROM ledger_entries WHERE ws_seq = 4",
    "DELETE FROM ledger_entries",  # no WHERE: the truncate optimisation, had there been no trigger
    "UPDATE usage_records SET cost_nano = 0",
    "UPDATE OR REPLACE usage_records SET cost_nano = 0",
    "UPDATE OR IGNORE usage_records SET cost_nano = 0",
    "UPDATE usage_records SET rowid = rowid + 100",
    "DELETE FROM usage_records WHERE id = 'req_1'",
    "DELETE FROM usage_records",
]


@contextlib.contextmanager
def _sqlite_attacker(money: Money, recursive_triggers: bool) -> Iterator[sqlite3.Connection]:
    """A raw connection of its own: autocommit, foreign keys off (sqlite3's defaults)."""
    with contextlib.closing(sqlite3.connect(_sqlite_path(money.url), isolation_level=None)) as con:
        con.execute(f"PRAGMA recursive_triggers = {'ON' if recursive_triggers else 'OFF'}")
        assert con.execute("PRAGMA recursive_triggers").fetchone() == (int(recursive_triggers),)
        yield con


def _refused(pattern: str) -> pytest.RaisesExc[sqlite3.IntegrityError]:
    return pytest.raises(sqlite3.IntegrityError, match=pattern)


@on_sqlite
@pytest.mark.parametrize("recursive_triggers", [False, True], ids=["recursive_triggers off", "on"])
@pytest.mark.parametrize(("collision", "form"), SQLITE_INSERTS)
async def test_sqlite_refuses_inserts_that_would_replace(
    money: Money, collision: Collision, form: str, recursive_triggers: bool
) -> None:
    before = _sqlite_snapshot(money.url)
    row = collision.row(before)
    verb, tail = SQLITE_FORMS[form]
    conflict = tail.format(set=_SET[collision.table], target=collision.target)
    sql = _insert(verb, collision, row, conflict, lambda _: "?")
    rule = r"\w+" if collision.rule == "*" else re.escape(collision.rule)
    with (
        _sqlite_attacker(money, recursive_triggers) as con,
        _refused(rf"{collision.table} is append-only: INSERT colliding on {rule} refused"),
    ):
        con.execute(sql, tuple(row.values()))
    await _assert_untouched(money, before)


@on_sqlite
@pytest.mark.parametrize("recursive_triggers", [False, True], ids=["recursive_triggers off", "on"])
@pytest.mark.parametrize("statement", SQLITE_STATEMENTS)
async def test_sqlite_refuses_updates_and_deletes(
    money: Money, statement: str, recursive_triggers: bool
) -> None:
    before = _sqlite_snapshot(money.url)
    action = "UPDATE" if statement.startswith("UPDATE") else "DELETE"
    with _sqlite_attacker(money, recursive_triggers) as con, _refused(f"is append-only: {action} refused"):
        con.execute(statement)
    await _assert_untouched(money, before)


@on_sqlite
@pytest.mark.parametrize("statement", ["DELETE FROM workspaces", "UPDATE workspaces SET id = 'ws_other'"])
async def test_sqlite_workspace_row_is_held_by_its_entries(money: Money, statement: str) -> None:
    """With foreign keys on (as on every tollway connection) the workspace can't be taken away.
    (With them off it can, but nothing cascades: the money rows stay exactly as they are.)"""
    before = _sqlite_snapshot(money.url)
    with contextlib.closing(sqlite3.connect(_sqlite_path(money.url), isolation_level=None)) as con:
        con.execute("PRAGMA foreign_keys = ON")
        with _refused("FOREIGN KEY constraint failed"):
            con.execute(statement)
    await _assert_untouched(money, before)


def _trigger_sql(con: sqlite3.Connection, table: str) -> str:
    row = con.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (f"{table}_no_replace",)
    ).fetchone()
    assert row is not None, f"{table}_no_replace is missing"
    return str(row[0])


@on_sqlite
@pytest.mark.parametrize("table", MONEY_TABLES)
async def test_sqlite_guards_every_uniqueness_rule(money: Money, table: str) -> None:
    """Every PRIMARY KEY / UNIQUE index of the table (and its rowid) has its check in the trigger,
    so a uniqueness rule added later without one fails here."""
    with contextlib.closing(sqlite3.connect(_sqlite_path(money.url))) as con:
        guarded = set(re.findall(r"INSERT colliding on (\w+) refused", _trigger_sql(con, table)))
        rules = {"rowid"} if table == "usage_records" else {"id"}  # ledger_entries: id IS the rowid
        for _, name, unique, origin, _ in con.execute(f"PRAGMA index_list({table})"):
            if unique:
                rules.add("id" if origin == "pk" else name)
    assert guarded == rules


@on_sqlite
@pytest.mark.parametrize("table", MONEY_TABLES)
async def test_sqlite_checks_each_probe_one_index(money: Money, table: str) -> None:
    """Each check of the trigger, planned as SQLite plans it there (NEW.x are bound values)."""
    with contextlib.closing(sqlite3.connect(_sqlite_path(money.url))) as con:
        checks = re.findall(r"EXISTS \((SELECT 1 FROM \w+ WHERE .*?)\);", _trigger_sql(con, table))
        assert len(checks) == {"ledger_entries": 5, "usage_records": 2}[table]
        for check in checks:
            query = re.sub(r"NEW\.\w+", "?", check)
            plan = [row[3] for row in con.execute(f"EXPLAIN QUERY PLAN {query}", (1,) * query.count("?"))]
            assert len(plan) == 1, (check, plan)
            assert re.fullmatch(
                rf"SEARCH {table} USING (COVERING )?(INDEX \w+|INTEGER PRIMARY KEY) .*", plan[0]
            ), (
                check,
                plan,
            )


# -- PostgreSQL ------------------------------------------------------------------------------------

PG_UPSERT = "ON CONFLICT {target} DO UPDATE SET {set}"
PG_INSERTS = [
    pytest.param(collision, PG_UPSERT, "append-only: UPDATE refused", id=f"upsert: {name}")
    for name, collision in COLLISIONS.items()
] + [
    pytest.param(collision, "ON CONFLICT DO NOTHING", None, id=f"ON CONFLICT DO NOTHING: {name}")
    for name, collision in COLLISIONS.items()
]

_MERGE = "MERGE INTO {table} AS t USING (SELECT 1) AS s ON {on} WHEN MATCHED THEN {action}"
PG_STATEMENTS = {
    "UPDATE ledger_entries SET amount_nano = 999000000000 WHERE ws_seq = 1": "UPDATE",
    "UPDATE ledger_entries SET note = 'edited'": "UPDATE",
    "DELETE FROM ledger_entries WHERE ws_seq = 4": "DELETE",
    "DELETE FROM ledger_entries": "DELETE",
    "DELETE FROM ledger_entries USING workspaces WHERE workspaces.id = ledger_entries.workspace_id": "DELETE",
    "WITH gone AS (DELETE FROM ledger_entries RETURNING id) SELECT count(*) FROM gone": "DELETE",
    "UPDATE usage_records SET cost_nano = 0": "UPDATE",
    "DELETE FROM usage_records": "DELETE",
    "TRUNCATE ledger_entries": "TRUNCATE",
    "TRUNCATE usage_records": "TRUNCATE",
    "TRUNCATE ledger_entries, usage_records RESTART IDENTITY": "TRUNCATE",
    "TRUNCATE workspaces CASCADE": "TRUNCATE",
    "TRUNCATE workspaces, api_keys, ledger_entries, usage_records": "TRUNCATE",
    _MERGE.format(
        table="ledger_entries", on="t.ws_seq = 1", action="UPDATE SET amount_nano = 999000000000"
    ): ("UPDATE"),
    _MERGE.format(table="ledger_entries", on="t.ws_seq = 4", action="DELETE"): "DELETE",
    _MERGE.format(table="usage_records", on="t.id = 'req_1'", action="UPDATE SET cost_nano = 0"): "UPDATE",
    _MERGE.format(table="usage_records", on="true", action="DELETE"): "DELETE",
}
# Refused by the foreign keys, whose checks replication mode switches off (nothing cascades then either).
PG_WORKSPACE_STATEMENTS = {
    "DELETE FROM workspaces": "violates foreign key constraint",
    "UPDATE workspaces SET id = 'ws_other'": "violates foreign key constraint",
    "TRUNCATE workspaces": "cannot truncate a table referenced in a foreign key constraint",
}

PG_SESSIONS = pytest.mark.parametrize(
    "replica", [False, True], ids=["session_replication_role origin", "replica"]
)


@contextlib.asynccontextmanager
async def _pg_attacker(money: Money, replica: bool) -> AsyncIterator[Any]:
    """A raw asyncpg connection of its own, as the server's superuser, in autocommit."""
    import asyncpg

    con = await asyncpg.connect(_pg_dsn(money.url))
    try:
        if replica:  # replication mode: what a logical-replication apply worker runs in
            await con.execute("SET session_replication_role = replica")
        yield con
    finally:
        await con.close()


async def _pg_attempt(
    money: Money, replica: bool, sql: str, args: tuple[Any, ...], refused: str | None
) -> None:
    import asyncpg

    async with _pg_attacker(money, replica) as con:
        if refused is None:
            await con.execute(sql, *args)
        else:
            with pytest.raises(asyncpg.PostgresError, match=refused):
                await con.execute(sql, *args)


@on_postgres
@PG_SESSIONS
@pytest.mark.parametrize(("collision", "tail", "refused"), PG_INSERTS)
async def test_postgres_refuses_upserts(
    money: Money, collision: Collision, tail: str, refused: str | None, replica: bool
) -> None:
    before = await _pg_snapshot(money.url)
    row = collision.row(before)
    conflict = " " + tail.format(set=_SET[collision.table], target=collision.target)
    sql = _insert("INSERT INTO", collision, row, conflict, lambda n: f"${n}")
    pattern = None if refused is None else f"{collision.table} is {refused}"
    await _pg_attempt(money, replica, sql, tuple(row.values()), pattern)
    await _assert_untouched(money, before)


@on_postgres
@PG_SESSIONS
@pytest.mark.parametrize("statement", [pytest.param(s, id=s) for s in PG_STATEMENTS])
async def test_postgres_refuses_updates_deletes_truncate_merge(
    money: Money, statement: str, replica: bool
) -> None:
    before = await _pg_snapshot(money.url)
    await _pg_attempt(money, replica, statement, (), f"is append-only: {PG_STATEMENTS[statement]} refused")
    await _assert_untouched(money, before)


@on_postgres
@PG_SESSIONS
@pytest.mark.parametrize("statement", list(PG_WORKSPACE_STATEMENTS))
async def test_postgres_workspace_row(money: Money, statement: str, replica: bool) -> None:
    before = await _pg_snapshot(money.url)
    refused = PG_WORKSPACE_STATEMENTS[statement]
    if replica and not statement.startswith("TRUNCATE"):
        refused = None  # no foreign-key checks in replication mode; the money rows still stand
    await _pg_attempt(money, replica, statement, (), refused)
    await _assert_untouched(money, before)


@on_postgres
async def test_postgres_triggers_fire_in_every_session_mode(money: Money) -> None:
    import asyncpg

    con = await asyncpg.connect(_pg_dsn(money.url))
    try:
        rows = await con.fetch(
            "SELECT tgrelid::regclass::text AS tbl, tgname, tgenabled::text FROM pg_trigger"
            " WHERE NOT tgisinternal AND tgrelid::regclass::text = ANY($1::text[]) ORDER BY 1, 2",
            list(MONEY_TABLES),
        )
    finally:
        await con.close()
    assert [(r["tbl"], r["tgname"], r["tgenabled"]) for r in rows] == [
        (table, f"{table}_{name}", "A") for table in MONEY_TABLES for name in ("append_only", "no_truncate")
    ]


# -- the migration itself --------------------------------------------------------------------------


def _alembic(connection: Any) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(tollway.db.__file__).with_name("migrations")))
    cfg.attributes["connection"] = connection
    return cfg


async def test_downgrade_takes_back_only_0004(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine, "0004")
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(_alembic(c), "0003"))
        async with engine.connect() as conn:
            if is_postgres():
                result = await conn.exec_driver_sql(
                    "SELECT tgname, tgenabled::text FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1"
                )
                assert {(name, enabled) for name, enabled in result} == {
                    (f"{table}_{name}", "O")
                    for table in MONEY_TABLES
                    for name in ("append_only", "no_truncate")
                }
            else:
                result = await conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                assert {name for (name,) in result} == {
                    f"{table}_no_{action}" for table in MONEY_TABLES for action in ("update", "delete")
                }
        await upgrade(engine, "0004")  # and back up again
    finally:
        await engine.dispose()
