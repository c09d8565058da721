"""Workspaces and their API keys: the store behind the admin API, the CLI and authentication."""

from __future__ import annotations

from typing import Any, Literal

from msgspec import Struct
from sqlalchemy import insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.clock import iso, now_us
from tollway.db.schema import api_keys, workspaces
from tollway.events import Outbox
from tollway.keys import display_prefix, generate_key, hash_key, new_id
from tollway.ledger.driver import DriverSql
from tollway.limits import NO_LIMITS, RateLimits

__all__ = ["AccountStore", "ApiKey", "NewKey", "Period", "Workspace"]

Period = Literal["total", "day", "month"]


class Workspace(Struct, frozen=True, kw_only=True):
    id: str
    name: str
    created_at: int
    limits: RateLimits = NO_LIMITS
    low_balance_nano: int | None = None


class ApiKey(Struct, frozen=True):
    id: str
    workspace_id: str
    name: str
    key_prefix: str
    spend_limit_nano: int | None
    spend_limit_period: str
    created_at: int
    revoked_at: int | None
    limits: RateLimits = NO_LIMITS


class NewKey(Struct, frozen=True):
    """A key as created: the only moment its secret exists outside the client."""

    key: ApiKey
    secret: str


def _workspace(row: RowMapping) -> Workspace:
    return Workspace(
        id=row["id"],
        name=row["name"],
        created_at=row["created_at"],
        limits=RateLimits.of(row),
        low_balance_nano=row["low_balance_nano"],
    )


def _api_key(row: RowMapping) -> ApiKey:
    return ApiKey(
        id=row["id"],
        workspace_id=row["workspace_id"],
        name=row["name"],
        key_prefix=row["key_prefix"],
        spend_limit_nano=row["spend_limit_nano"],
        spend_limit_period=row["spend_limit_period"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        limits=RateLimits.of(row),
    )


class AccountStore:
    def __init__(self, engine: AsyncEngine, outbox: Outbox | None = None) -> None:
        self._engine = engine
        self._outbox = outbox or Outbox()

    async def create_workspace(
        self, name: str, *, limits: RateLimits = NO_LIMITS, low_balance_nano: int | None = None
    ) -> Workspace:
        workspace = Workspace(
            id=new_id("ws"), name=name, created_at=now_us(), limits=limits, low_balance_nano=low_balance_nano
        )
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(workspaces).values(
                    id=workspace.id,
                    name=name,
                    created_at=workspace.created_at,
                    low_balance_nano=low_balance_nano,
                    **limits.columns(),
                )
            )
        return workspace

    async def list_workspaces(self) -> list[Workspace]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(workspaces).order_by(workspaces.c.created_at, workspaces.c.id))
            return [_workspace(row) for row in rows.mappings()]

    async def get_workspace(self, workspace_id: str) -> Workspace | None:
        async with self._engine.connect() as conn:
            row = (
                (await conn.execute(select(workspaces).where(workspaces.c.id == workspace_id)))
                .mappings()
                .first()
            )
        return None if row is None else _workspace(row)

    async def create_key(
        self,
        workspace_id: str,
        name: str,
        spend_limit_nano: int | None,
        period: Period,
        limits: RateLimits = NO_LIMITS,
    ) -> NewKey:
        secret = generate_key()
        key = ApiKey(
            id=new_id("key"),
            workspace_id=workspace_id,
            name=name,
            key_prefix=display_prefix(secret),
            spend_limit_nano=spend_limit_nano,
            spend_limit_period=period,
            created_at=now_us(),
            revoked_at=None,
            limits=limits,
        )
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(api_keys).values(
                    id=key.id,
                    workspace_id=workspace_id,
                    name=name,
                    key_hash=hash_key(secret),
                    key_prefix=key.key_prefix,
                    spend_limit_nano=spend_limit_nano,
                    spend_limit_period=period,
                    created_at=key.created_at,
                    **limits.columns(),
                )
            )
        return NewKey(key=key, secret=secret)

    async def list_keys(self, workspace_id: str) -> list[ApiKey]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(api_keys)
                .where(api_keys.c.workspace_id == workspace_id)
                .order_by(api_keys.c.created_at, api_keys.c.id)
            )
            return [_api_key(row) for row in rows.mappings()]

    async def get_key(self, key_id: str) -> ApiKey | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).mappings().first()
        return None if row is None else _api_key(row)

    async def revoke_key(self, key_id: str) -> ApiKey | None:
        """Revoke once; revoking again keeps the first revocation time.

        The first revocation writes `key.revoked` to the outbox in the same transaction.
        """
        async with self._engine.begin() as conn:
            revoked = await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now_us())
            )
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).mappings().first()
            if row is not None and revoked.rowcount == 1:
                key = _api_key(row)
                await self._outbox.emit(
                    DriverSql(conn),
                    "key.revoked",
                    key.workspace_id,
                    {
                        "workspace_id": key.workspace_id,
                        "key_id": key.id,
                        "name": key.name,
                        "key_prefix": key.key_prefix,
                        "revoked_at": iso(row["revoked_at"]),
                    },
                )
        return None if row is None else _api_key(row)

    async def update_key(self, key_id: str, changes: dict[str, Any]) -> ApiKey | None:
        """Change a key's configuration columns (name, spend limit, rate limits); None if unknown.

        A change to the spend limit re-arms `spend_limit.reached`.
        """
        values = dict(changes)
        if "spend_limit_nano" in values or "spend_limit_period" in values:
            values["spend_notified_period"] = None
        async with self._engine.begin() as conn:
            if values:
                await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(**values))
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).mappings().first()
        return None if row is None else _api_key(row)

    async def update_workspace(self, workspace_id: str, changes: dict[str, Any]) -> Workspace | None:
        """Change a workspace's configuration columns (name, low-balance threshold, rate limits).

        A new threshold re-arms `balance.low`: the next debit below it sends the event.
        """
        values = dict(changes)
        if "low_balance_nano" in values:
            values["low_balance_notified"] = False
        async with self._engine.begin() as conn:
            if values:
                await conn.execute(update(workspaces).where(workspaces.c.id == workspace_id).values(**values))
            row = (
                (await conn.execute(select(workspaces).where(workspaces.c.id == workspace_id)))
                .mappings()
                .first()
            )
        return None if row is None else _workspace(row)

    async def find_by_secret_hash(self, key_hash: str) -> ApiKey | None:
        async with self._engine.connect() as conn:
            row = (
                (await conn.execute(select(api_keys).where(api_keys.c.key_hash == key_hash)))
                .mappings()
                .first()
            )
        return None if row is None else _api_key(row)
