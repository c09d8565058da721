"""Rebuilding the daily usage rollup from the immutable usage records."""

from __future__ import annotations

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.db.engine import write_connection
from tollway.db.schema import usage_daily
from tollway.ledger.rollup import KEY, SUMMED
from tollway.ledger.verify import recomputed_rollup

__all__ = ["rebuild_rollup"]


async def rebuild_rollup(engine: AsyncEngine) -> int:
    """Replace the rollup with the sums of the records, atomically; return the number of rows."""
    columns = [*KEY, *SUMMED]
    async with engine.connect() as conn:
        await write_connection(conn)
        async with conn.begin():
            await conn.execute(delete(usage_daily))
            await conn.execute(insert(usage_daily).from_select(columns, recomputed_rollup()))
            return int((await conn.exec_driver_sql("SELECT count(*) FROM usage_daily")).scalar_one())
