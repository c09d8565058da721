"""Table definitions (SQLAlchemy Core).  Migrations create them; this mirrors the head revision.

Timestamps are integer microseconds since the Unix epoch (UTC): one type on
every engine, cheap to compare and index.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, MetaData, String, Table

__all__ = ["api_keys", "metadata", "workspaces"]

metadata = MetaData()

workspaces = Table(
    "workspaces",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("workspace_id", String(40), ForeignKey("workspaces.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False),
    Column("spend_limit_nano", BigInteger, nullable=True),
    Column("spend_limit_period", String(8), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
)

Index("ix_api_keys_workspace", api_keys.c.workspace_id)
