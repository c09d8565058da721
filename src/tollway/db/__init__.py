"""Database access: engine construction, schema, migrations."""

from tollway.db.engine import create_engine, is_sqlite
from tollway.db.migrate import ensure_current, upgrade

__all__ = ["create_engine", "ensure_current", "is_sqlite", "upgrade"]
