"""Database access: engine construction, schema, migrations."""

from tollway.db.engine import create_engine, is_sqlite
from tollway.db.migrate import (
    describe,
    ensure_current,
    is_empty,
    open_existing,
    prepare,
    sqlite_path,
    unavailable,
    upgrade,
)

__all__ = [
    "create_engine",
    "describe",
    "ensure_current",
    "is_empty",
    "is_sqlite",
    "open_existing",
    "prepare",
    "sqlite_path",
    "unavailable",
    "upgrade",
]
