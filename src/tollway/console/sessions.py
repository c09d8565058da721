"""Sign-in sessions of the console and the portal, stored server-side.

The cookie carries an opaque random id (256 bits); the table keeps only its
SHA-256, so every worker and host sees the same sessions, sign-out ends one
everywhere, and a copy of the database is no cookie.  A session expires after
`IDLE_US` without use and in any case `MAX_AGE_US` after sign-in.  An admin
session is tied to the digest of the admin token it was opened with (rotating
the token ends it); a portal session to its key (revoking the key ends it).
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Literal

from msgspec import Struct
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.db.schema import api_keys, console_sessions

__all__ = ["IDLE_US", "MAX_AGE_US", "Session", "SessionStore", "token_digest"]

Kind = Literal["admin", "portal"]

IDLE_US = 12 * 3600 * 1_000_000
MAX_AGE_US = 7 * 24 * 3600 * 1_000_000
# last_seen is written at most this often, so reading pages costs no write each time.
_TOUCH_US = 60 * 1_000_000
_S = console_sessions.c


class Session(Struct, frozen=True, kw_only=True):
    kind: Kind
    csrf_token: str
    workspace_id: str | None = None
    key_id: str | None = None


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def token_digest(admin_token: str) -> str:
    """What an admin session remembers of the token it was opened with."""
    return hashlib.sha256(b"tollway-console:" + admin_token.encode()).hexdigest()


class SessionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def open(
        self,
        kind: Kind,
        now: int,
        *,
        workspace_id: str | None = None,
        key_id: str | None = None,
        digest: str | None = None,
    ) -> tuple[str, Session]:
        """A new session: the cookie value (shown once, never stored) and the session."""
        session_id = secrets.token_urlsafe(32)
        session = Session(
            kind=kind, csrf_token=secrets.token_urlsafe(32), workspace_id=workspace_id, key_id=key_id
        )
        async with self._engine.begin() as conn:
            # Sign-in is the moment to sweep the expired ones (an indexed range).
            await conn.execute(delete(console_sessions).where(_S.expires_at <= now))
            await conn.execute(
                insert(console_sessions).values(
                    id_hash=_hash(session_id),
                    kind=kind,
                    workspace_id=workspace_id,
                    key_id=key_id,
                    token_digest=digest,
                    csrf_token=session.csrf_token,
                    created_at=now,
                    last_seen=now,
                    expires_at=now + IDLE_US,
                )
            )
        return session_id, session

    async def find(self, session_id: str | None, kind: Kind, now: int, digest: str | None) -> Session | None:
        """The live session of `kind` for the cookie value, or None (and a dead one is deleted)."""
        if not session_id or len(session_id) > 100:
            return None
        id_hash = _hash(session_id)
        query = (
            select(console_sessions, api_keys.c.revoked_at, api_keys.c.workspace_id.label("key_workspace"))
            .outerjoin(api_keys, api_keys.c.id == _S.key_id)
            .where(_S.id_hash == id_hash)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None or row["kind"] != kind:
            return None
        alive = row["expires_at"] > now and row["created_at"] + MAX_AGE_US > now
        if kind == "admin":
            alive = alive and digest is not None and secrets.compare_digest(row["token_digest"] or "", digest)
        else:
            alive = (
                alive
                and row["key_workspace"] is not None
                and row["key_workspace"] == row["workspace_id"]
                and row["revoked_at"] is None
            )
        if not alive:
            await self.close(session_id)
            return None
        if now - row["last_seen"] >= _TOUCH_US:
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(console_sessions)
                    .where(_S.id_hash == id_hash)
                    .values(last_seen=now, expires_at=now + IDLE_US)
                )
        return Session(
            kind=kind, csrf_token=row["csrf_token"], workspace_id=row["workspace_id"], key_id=row["key_id"]
        )

    async def close(self, session_id: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(delete(console_sessions).where(_S.id_hash == _hash(session_id)))

    async def close_for_key(self, key_id: str) -> None:
        """End every portal session of a key (it was revoked)."""
        async with self._engine.begin() as conn:
            await conn.execute(delete(console_sessions).where(_S.key_id == key_id))
