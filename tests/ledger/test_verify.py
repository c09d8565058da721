"""`verify_ledger` and `tollway ledger verify` against tampering.

A small ledger is built through the normal write path and verifies clean.
Then, on a copy of its SQLite file with the append-only triggers dropped,
one row at a time is edited, deleted or forged; each must be reported, by
workspace and `#ws_seq` (ledger rows) or by request id (usage records).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.accounts import AccountStore
from tollway.billing.credits import credit
from tollway.db import create_engine, upgrade
from tollway.ledger import Entry, Ledger
from tollway.ledger.chain import entry_hash
from tollway.ledger.store import entry_from_row
from tollway.ledger.verify import Report, verify_ledger

from .conftest import release, reserve, settle, sqlite_url

USD = 1_000_000_000


@dataclass(frozen=True)
class Built:
    path: Path
    a: str  # workspace with 8 entries (see `built`)
    b: str  # workspace with 4 entries, one reservation left open


@pytest.fixture(name="sqlite_engine")
async def fixture_sqlite_engine(db_path: Path) -> AsyncIterator[AsyncEngine]:
    """Tampering goes behind the database's back with the sqlite3 module: SQLite files only."""
    engine = create_engine(sqlite_url(db_path))
    try:
        await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture(name="built")
async def fixture_built(sqlite_engine: AsyncEngine, db_path: Path) -> Built:
    """Workspace a: #1 credit, #2 reserve req_1, #3 debit req_1, #4 reserve req_2, #5 debit req_2,
    #6 reserve req_3, #7 release req_3, #8 credit.  Workspace b: #1 credit, #2 reserve req_4,
    #3 debit req_4, #4 reserve req_5 (left open)."""
    engine = sqlite_engine
    accounts, ledger = AccountStore(engine), Ledger(engine)
    a = (await accounts.create_workspace("a")).id
    b = (await accounts.create_workspace("b")).id
    ka = (await accounts.create_key(a, "ka", None, "total")).key.id
    kb = (await accounts.create_key(b, "kb", 10 * USD, "total")).key.id

    await credit(ledger, a, 10 * USD, "pay_1", "first payment")
    await reserve(ledger, a, ka, "req_1", 2 * USD, owner="inst_1")
    await settle(ledger, a, ka, "req_1", 2 * USD, 1 * USD)
    await reserve(ledger, a, ka, "req_2", 3 * USD, owner="inst_1")
    await settle(ledger, a, ka, "req_2", 3 * USD, 2 * USD)
    await reserve(ledger, a, ka, "req_3", 1 * USD, owner="inst_1")
    await release(ledger, a, ka, "req_3", 1 * USD)
    await credit(ledger, a, 5 * USD, None, None)
    await credit(ledger, b, 4 * USD, None, None)
    await reserve(ledger, b, kb, "req_4", 1 * USD)
    await settle(ledger, b, kb, "req_4", 1 * USD, 1 * USD // 3)
    await reserve(ledger, b, kb, "req_5", 1 * USD)

    report = await verify_ledger(engine)
    assert report.ok, report.mismatches
    assert (report.workspaces, report.entries, report.usage_records, report.open_reservations) == (
        2,
        12,
        3,
        1,
    )
    async with engine.connect() as conn:
        await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    await engine.dispose()
    return Built(db_path, a, b)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    for suffix in ("-wal", "-shm"):
        if Path(f"{src}{suffix}").exists():
            shutil.copyfile(f"{src}{suffix}", f"{dst}{suffix}")
    return dst


def _tamper(built: Built, dst: Path, edit: Callable[[sqlite3.Connection, Built], None]) -> Path:
    path = _copy(built.path, dst)
    with contextlib.closing(sqlite3.connect(path)) as con:
        # Whoever can write the file can drop every trigger: what verify must catch then.
        money = "tbl_name IN ('ledger_entries', 'usage_records')"
        for (trigger,) in con.execute(
            f"SELECT name FROM sqlite_master WHERE type = 'trigger' AND {money}"
        ).fetchall():
            con.execute(f"DROP TRIGGER {trigger}")
        edit(con, built)
        con.commit()
    return path


async def _verify(path: Path) -> Report:
    engine = create_engine(sqlite_url(path))
    try:
        return await verify_ledger(engine)
    finally:
        await engine.dispose()


def _row(con: sqlite3.Connection, ws: str, seq: int) -> Entry:
    con.row_factory = sqlite3.Row
    try:
        row = con.execute(
            "SELECT * FROM ledger_entries WHERE workspace_id = ? AND ws_seq = ?", (ws, seq)
        ).fetchone()
    finally:
        con.row_factory = None
    return entry_from_row(dict(row))


# -- the edits ---------------------------------------------------------------------------------


def edit_credit_amount(con: sqlite3.Connection, built: Built) -> None:
    con.execute(
        "UPDATE ledger_entries SET amount_nano = amount_nano + 1 WHERE workspace_id = ? AND ws_seq = 1",
        (built.a,),
    )


def edit_debit_amount(con: sqlite3.Connection, built: Built) -> None:
    con.execute("UPDATE ledger_entries SET amount_nano = 0 WHERE workspace_id = ? AND ws_seq = 3", (built.a,))


def edit_credit_amount_and_rehash(con: sqlite3.Connection, built: Built) -> None:
    """A forger who keeps the edited row self-consistent: the next row still gives it away."""
    old = _row(con, built.a, 1)
    new = msgspec.structs.replace(old, amount_nano=old.amount_nano * 2, balance_nano=old.balance_nano * 2)
    new = msgspec.structs.replace(new, hash=entry_hash(new))
    con.execute(
        "UPDATE ledger_entries SET amount_nano = ?, balance_nano = ?, hash = ? WHERE id = ?",
        (new.amount_nano, new.balance_nano, new.hash, old.id),
    )


def edit_note(con: sqlite3.Connection, built: Built) -> None:
    """A field no running figure depends on: only the hash catches it."""
    con.execute("UPDATE ledger_entries SET note = 'bonus' WHERE workspace_id = ? AND ws_seq = 1", (built.a,))


def delete_middle_entry(con: sqlite3.Connection, built: Built) -> None:
    con.execute("DELETE FROM ledger_entries WHERE workspace_id = ? AND ws_seq = 4", (built.a,))


def insert_forged_credit(con: sqlite3.Connection, built: Built) -> None:
    """A well-formed credit chained after #4, claiming #5 (the unique sequence index dropped)."""
    con.execute("DROP INDEX ux_ledger_ws_seq")
    after = _row(con, built.a, 4)
    forged = Entry(
        workspace_id=built.a,
        ws_seq=5,
        kind="credit",
        amount_nano=100 * USD,
        hold_nano=0,
        balance_nano=after.balance_nano + 100 * USD,
        held_nano=after.held_nano,
        key_id=None,
        key_spent_nano=None,
        key_held_nano=None,
        reservation_id=None,
        owner=None,
        idempotency_key=None,
        note=None,
        created_at=after.created_at + 1,
        prev_hash=after.hash,
        hash="",
    )
    forged = msgspec.structs.replace(forged, hash=entry_hash(forged))
    values = {n: getattr(forged, n) for n in Entry.__struct_fields__ if n != "id"}
    con.execute(
        f"INSERT INTO ledger_entries ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
        tuple(values.values()),
    )


def edit_usage_cost(con: sqlite3.Connection, built: Built) -> None:
    con.execute("UPDATE usage_records SET cost_nano = cost_nano - 1 WHERE id = 'req_1'")


def delete_usage_record(con: sqlite3.Connection, built: Built) -> None:
    con.execute("DELETE FROM usage_records WHERE id = 'req_2'")


def edit_other_workspace(con: sqlite3.Connection, built: Built) -> None:
    con.execute("UPDATE ledger_entries SET held_nano = 0 WHERE workspace_id = ? AND ws_seq = 4", (built.b,))


# (edit, the text some mismatch must contain: "{a}"/"{b}" stand for the workspace ids)
CASES = {
    "edit credit amount": (edit_credit_amount, "workspace {a} entry #1 "),
    "edit debit amount": (edit_debit_amount, "workspace {a} entry #3 "),
    "edit debit amount (usage side)": (edit_debit_amount, "usage record req_1: costs"),
    "edit and rehash": (edit_credit_amount_and_rehash, "workspace {a} entry #2 "),
    "edit note": (edit_note, "workspace {a} entry #1 (id 1, credit): hash is"),
    "delete middle entry": (delete_middle_entry, "workspace {a} entry #5 "),
    "insert forged credit": (insert_forged_credit, "workspace {a} entry #5 "),
    "edit usage cost": (edit_usage_cost, "usage record req_1: costs"),
    "delete usage record": (delete_usage_record, "workspace {a} entry #5 "),
    "edit other workspace": (edit_other_workspace, "workspace {b} entry #4 "),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_tampering_is_reported(built: Built, tmp_path: Path, case: str) -> None:
    edit, expected = CASES[case]
    clean = await _verify(_copy(built.path, tmp_path / "clean.db"))
    assert clean.ok, clean.mismatches

    report = await _verify(_tamper(built, tmp_path / "tampered.db", edit))
    assert not report.ok
    wanted = expected.format(a=built.a, b=built.b)
    assert any(wanted in m for m in report.mismatches), report.mismatches


async def test_tampering_details(built: Built, tmp_path: Path) -> None:
    """What the reports say, for the cases where the wording is the point."""
    a = built.a
    deleted = await _verify(_tamper(built, tmp_path / "deleted.db", delete_middle_entry))
    assert any(
        f"workspace {a} entry #5 (id 5, debit): ws_seq is 5, recomputed 4" in m for m in deleted.mismatches
    )
    assert any("closes reservation req_2, which was never made" in m for m in deleted.mismatches)

    no_usage = await _verify(_tamper(built, tmp_path / "no_usage.db", delete_usage_record))
    assert f"workspace {a} entry #5 (id 5, debit): debit for req_2 has no usage record" in no_usage.mismatches

    cost = await _verify(_tamper(built, tmp_path / "cost.db", edit_usage_cost))
    assert (
        f"usage record req_1: costs {USD - 1} nano-USD but workspace {a} entry #3 (id 3, debit) debits {USD}"
        in cost.mismatches
    )

    forged = await _verify(_tamper(built, tmp_path / "forged.db", insert_forged_credit))
    assert forged.entries == 13
    assert any(
        f"workspace {a} entry #5 " in m and "ws_seq is 5, recomputed 6" in m for m in forged.mismatches
    )


# -- the command line --------------------------------------------------------------------------


def _cli_verify(path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / f"{path.stem}.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url(path)}"\nmigrate_on_start = false\n')
    env = {k: v for k, v in os.environ.items() if k not in ("TOLLWAY_CONFIG", "TOLLWAY_DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "tollway", "ledger", "verify", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


def test_cli_verify(built: Built, tmp_path: Path) -> None:
    clean = _cli_verify(_copy(built.path, tmp_path / "clean.db"), tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "ledger verify: consistent" in clean.stdout
    assert "2 workspace(s), 12 entries, 3 usage record(s), 1 open reservation(s)" in clean.stdout

    tampered = _cli_verify(_tamper(built, tmp_path / "tampered.db", edit_credit_amount), tmp_path)
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert "mismatch(es)" in tampered.stdout
    assert f"workspace {built.a} entry #1 (id 1, credit): balance_nano" in tampered.stdout
