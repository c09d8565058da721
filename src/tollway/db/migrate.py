"""Alembic migrations, run programmatically on an existing async engine, and start-up's schema rule.

`prepare` is what `serve` runs (SPEC §1): an empty database (no tables at all)
is given the schema on either engine; with `migrate_on_start` the schema is
brought up to date; otherwise an older schema is refused, naming the command
that fixes it.  Every failure to reach the database becomes one
`DatabaseUnavailable` naming the database, never a traceback.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.db.engine import create_engine
from tollway.errors import DatabaseUnavailable, SchemaOutdated

__all__ = [
    "describe",
    "ensure_current",
    "is_empty",
    "open_existing",
    "prepare",
    "sqlite_path",
    "unavailable",
    "upgrade",
]

_SCRIPTS = Path(__file__).with_name("migrations")


def _alembic_config(connection: Connection | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.attributes["connection"] = connection
    return cfg


def describe(url: str) -> str:
    """The database for messages: the SQLite file's absolute path, or the URL without its password."""
    path = sqlite_path(url)
    if path is not None:
        return str(path)
    return make_url(url).render_as_string(hide_password=True)


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL names (absolute), or None for another engine or an in-memory database."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    if not parsed.database or parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return None
    return Path(parsed.database).resolve()


def unavailable(url: str, exc: BaseException) -> DatabaseUnavailable:
    """One clear message for a database that cannot be opened or read."""
    reason: object = exc
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        reason = exc.orig
    elif isinstance(exc, SQLAlchemyError):
        reason = exc.args[0] if exc.args else type(exc).__name__
    elif isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    text = " ".join(str(reason).split()) or type(reason).__name__
    return DatabaseUnavailable(f"cannot open the database {describe(url)}: {text[:300]}")


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to `revision` (idempotent)."""
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync_conn: command.upgrade(_alembic_config(sync_conn), revision))


async def is_empty(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
    return not tables


async def ensure_current(engine: AsyncEngine) -> None:
    """Refuse to run on a schema older (or newer) than this tollway's migrations."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    async with engine.connect() as conn:
        current = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    if current != head:
        raise SchemaOutdated(
            f"the database {describe(engine.url.render_as_string(hide_password=False))} has schema revision "
            f"{current or 'none'}, this tollway needs {head}: run `tollway db upgrade` "
            "(or set [database] migrate_on_start = true)"
        )


async def open_existing(url: str) -> AsyncEngine:
    """An engine on a database that exists and has this tollway's schema (for the admin commands).

    Never creates one: a missing SQLite file is an error naming the path looked for.
    """
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise DatabaseUnavailable(
            f"no database at {path} (from [database] url {url!r}): run the command where `tollway serve` "
            "runs, or with the same --config / TOLLWAY_DATABASE_URL; `tollway serve` or `tollway db upgrade` "
            "creates it"
        )
    engine = create_engine(url, pool_size=2)
    try:
        await ensure_current(engine)
    except (SQLAlchemyError, OSError) as exc:
        await engine.dispose()
        await _settle_driver_threads()
        raise unavailable(url, exc) from exc
    except BaseException:
        await engine.dispose()
        raise
    return engine


async def prepare(engine: AsyncEngine, *, migrate: bool) -> None:
    """Start-up's schema rule (see the module docstring); `DatabaseUnavailable` if it cannot be reached."""
    url = engine.url.render_as_string(hide_password=False)
    path = sqlite_path(url)
    if path is not None and not path.parent.is_dir():
        raise DatabaseUnavailable(f"cannot open the database {path}: its folder {path.parent} does not exist")
    try:
        if migrate or await is_empty(engine):
            await upgrade(engine)
        else:
            await ensure_current(engine)
    except (SQLAlchemyError, OSError) as exc:
        await _settle_driver_threads()
        raise unavailable(url, exc) from exc


async def _settle_driver_threads() -> None:
    """Let aiosqlite's worker thread hand back its failed connection before the loop may close.

    After a failed connect it answers on the loop a moment later; were the loop gone by then
    (start-up exits on this error), that thread would print a traceback of its own.
    """
    await asyncio.sleep(0.05)
