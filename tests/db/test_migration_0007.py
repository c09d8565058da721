"""0007 adds `cache_write_1h_tokens` to the usage records and the rollup, rewriting no row (both engines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

import tollway.db
from tests.dbs import is_postgres
from tollway.db import create_engine, upgrade

_RECORD_0006 = (
    "INSERT INTO usage_records (id, workspace_id, key_id, model, upstream, price_id, stream, end_state,"
    " prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, prompt_source,"
    " completion_source, estimated, rates, cost_nano, started_at, finished_at, report_invalid,"
    " upstream_model, operation_type) VALUES ('req_old', :ws, 'key_x', 'demo', 'demo', 'demo@x', false,"
    " 'completed', 10, 5, 2, 3, 0, 'upstream', 'upstream', false, '{}', 1234, 1, 2, false, 'demo',"
    " 'chat.completions')"
)
_ROLLUP_0006 = (
    "INSERT INTO usage_daily (workspace_id, day, operation_type, model, key_id, calls, prompt_tokens,"
    " completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_nano)"
    " VALUES (:ws, 0, 'chat.completions', 'demo', 'key_x', 1, 10, 5, 2, 3, 0, 1234)"
)


def _alembic(connection: Any) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(tollway.db.__file__).with_name("migrations")))
    cfg.attributes["connection"] = connection
    return cfg


async def _triggers(conn: AsyncConnection) -> set[str]:
    if is_postgres():
        result = await conn.exec_driver_sql("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
    else:
        result = await conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    return {name for (name,) in result}


async def _columns(conn: AsyncConnection, table: str) -> list[str]:
    if is_postgres():
        result = await conn.execute(
            text(
                "SELECT column_name FROM information_schema.columns WHERE table_name = :t"
                " ORDER BY ordinal_position"
            ),
            {"t": table},
        )
        return [name for (name,) in result]
    return [row[1] for row in await conn.exec_driver_sql(f"PRAGMA table_info({table})")]


async def test_0007_adds_the_column_with_zero_to_existing_rows_and_keeps_the_triggers(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine, "0006")
        ws = "ws_old"
        async with engine.begin() as conn:  # as 0006 knew workspaces (today's store writes later columns)
            await conn.execute(
                text("INSERT INTO workspaces (id, name, created_at) VALUES (:ws, 'old', 1)"), {"ws": ws}
            )
            await conn.execute(text(_RECORD_0006), {"ws": ws})
            await conn.execute(text(_ROLLUP_0006), {"ws": ws})
        async with engine.connect() as conn:
            before = await _triggers(conn)
        assert before  # the append-only guards exist

        await upgrade(engine)
        async with engine.connect() as conn:
            assert await _triggers(conn) == before
            assert (await _columns(conn, "usage_records"))[-1] == "cache_write_1h_tokens"
            assert (await _columns(conn, "usage_daily"))[-1] == "cache_write_1h_tokens"
            old = (
                await conn.exec_driver_sql(
                    "SELECT cache_write_tokens, cache_write_1h_tokens, cost_nano FROM usage_records"
                )
            ).all()
            assert [tuple(row) for row in old] == [(3, 0, 1234)]
            rollup = (
                await conn.exec_driver_sql(
                    "SELECT cache_write_tokens, cache_write_1h_tokens FROM usage_daily"
                )
            ).all()
            assert [tuple(row) for row in rollup] == [(3, 0)]
        # Still append-only after the change.
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.exec_driver_sql("UPDATE usage_records SET cache_write_1h_tokens = 1")

        # And back: the column goes, the triggers and the rows stay.
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(_alembic(c), "0006"))
        async with engine.connect() as conn:
            assert await _triggers(conn) == before
            assert "cache_write_1h_tokens" not in await _columns(conn, "usage_records")
            assert "cache_write_1h_tokens" not in await _columns(conn, "usage_daily")
            count = (await conn.exec_driver_sql("SELECT count(*) FROM usage_records")).scalar_one()
            assert count == 1
        await upgrade(engine)
    finally:
        await engine.dispose()
