"""The session table: hashed ids, idle expiry, token rotation, revoked keys."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.accounts import AccountStore
from tollway.console.sessions import IDLE_US, MAX_AGE_US, SessionStore, token_digest
from tollway.db import create_engine, upgrade


@pytest.fixture(name="engine")
async def fixture_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await upgrade(engine)
    yield engine
    await engine.dispose()


async def test_admin_sessions_expire_when_idle_and_with_the_token(engine: AsyncEngine) -> None:
    store = SessionStore(engine)
    digest = token_digest("secret")
    cookie, session = await store.open("admin", 1_000, digest=digest)
    assert (await store.find(cookie, "admin", 2_000, digest)) == session
    assert await store.find(cookie, "portal", 2_000, None) is None  # another area's cookie
    assert await store.find(cookie, "admin", 2_000, token_digest("rotated")) is None  # and it is gone now
    assert await store.find(cookie, "admin", 2_000, digest) is None
    cookie, _ = await store.open("admin", 1_000, digest=digest)
    assert await store.find(cookie, "admin", 1_000 + IDLE_US, digest) is None


async def test_use_keeps_a_session_alive_up_to_its_maximum_age(engine: AsyncEngine) -> None:
    store = SessionStore(engine)
    cookie, _ = await store.open("admin", 0, digest="d")
    now = 0
    while now + IDLE_US // 2 < MAX_AGE_US:
        now += IDLE_US // 2
        assert await store.find(cookie, "admin", now, "d") is not None
    assert await store.find(cookie, "admin", MAX_AGE_US, "d") is None


async def test_portal_sessions_die_with_their_key(engine: AsyncEngine) -> None:
    accounts = AccountStore(engine)
    workspace = await accounts.create_workspace("w")
    key = (await accounts.create_key(workspace.id, "k", None, "total")).key
    store = SessionStore(engine)
    cookie, session = await store.open("portal", 0, workspace_id=workspace.id, key_id=key.id)
    assert (await store.find(cookie, "portal", 1, None)) == session
    await accounts.revoke_key(key.id)
    assert await store.find(cookie, "portal", 2, None) is None


async def test_unknown_and_oversized_cookies(engine: AsyncEngine) -> None:
    store = SessionStore(engine)
    assert await store.find(None, "admin", 0, "d") is None
    assert await store.find("x" * 5000, "admin", 0, "d") is None
    assert await store.find("nope", "admin", 0, "d") is None
