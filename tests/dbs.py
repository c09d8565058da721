"""Which database engine the database-facing suites run on, and fresh databases for them.

`TOLLWAY_TEST_DATABASE` unset: SQLite files.  Set to a PostgreSQL URL with
admin rights (e.g. from `scripts/pg-test-server start`): every test database
is a fresh PostgreSQL database created on that server and dropped after.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

T = TypeVar("T")

SERVER = os.environ.get("TOLLWAY_TEST_DATABASE") or None


def is_postgres() -> bool:
    return SERVER is not None


def _admin_url() -> str:
    assert SERVER is not None
    return SERVER


async def _admin(statement: str) -> None:
    import asyncpg

    dsn = _admin_url().replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def new_database_url(folder: Path) -> str:
    """A URL to a new, empty database (a file in `folder` on SQLite)."""
    if SERVER is None:
        return f"sqlite+aiosqlite:///{folder / f'test-{uuid.uuid4().hex[:8]}.db'}"
    name = f"tw_{uuid.uuid4().hex[:12]}"
    _run(_admin(f'CREATE DATABASE "{name}"'))
    return re.sub(r"/[^/]*$", f"/{name}", _admin_url())


def drop_database(url: str) -> None:
    if url.startswith("postgresql"):
        name = url.rsplit("/", 1)[1]
        _run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion, also from inside a running event loop (in a thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    result: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


class Reader:
    """Plain SQL reads for assertions, usable from sync and async tests alike (`?` placeholders)."""

    def __init__(self, url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._engine: AsyncEngine = create_async_engine(url)

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        names = iter(range(len(params)))
        statement = re.sub(r"\?", lambda _: f":p{next(names)}", sql)

        async def fetch() -> list[tuple[Any, ...]]:
            async with self._engine.connect() as conn:
                result = await conn.execute(text(statement), {f"p{i}": p for i, p in enumerate(params)})
                return [tuple(row) for row in result.all()]

        return asyncio.run_coroutine_threadsafe(fetch(), self._loop).result()

    def mappings(self, sql: str, *params: object) -> list[dict[str, Any]]:
        names = iter(range(len(params)))
        statement = re.sub(r"\?", lambda _: f":p{next(names)}", sql)

        async def fetch() -> list[dict[str, Any]]:
            async with self._engine.connect() as conn:
                result = await conn.execute(text(statement), {f"p{i}": p for i, p in enumerate(params)})
                return [dict(row) for row in result.mappings().all()]

        return asyncio.run_coroutine_threadsafe(fetch(), self._loop).result()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._engine.dispose(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
