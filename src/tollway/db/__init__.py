"""Database access: engine construction, schema, migrations."""

from tollway.db.engine import create_engine, is_sqlite
from tollway.db.migrate import upgrade

__all__ = ["create_engine", "is_sqlite", "upgrade"]
