"""Alembic migrations, run programmatically on an existing async engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.errors import ConfigError

__all__ = ["ensure_current", "upgrade"]

_SCRIPTS = Path(__file__).with_name("migrations")


def _alembic_config(connection: Connection | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.attributes["connection"] = connection
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to `revision` (idempotent)."""
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync_conn: command.upgrade(_alembic_config(sync_conn), revision))


async def ensure_current(engine: AsyncEngine) -> None:
    """Refuse to run on a schema older (or newer) than this tollway's migrations."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    async with engine.connect() as conn:
        current = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    if current != head:
        raise ConfigError(
            f"the database schema is at revision {current or 'none'}, this tollway needs {head}: "
            "run `tollway db upgrade` (or set [database] migrate_on_start = true)"
        )
