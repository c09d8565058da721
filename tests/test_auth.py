"""Authentication against a real SQLite file: warm keys cost no query, revocation is honoured."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.accounts import AccountStore, ApiKey
from tollway.auth import Authenticator
from tollway.db import create_engine, upgrade
from tollway.errors import AuthenticationFailed
from tollway.keys import hash_key


class CountingStore(AccountStore):
    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.lookups = 0

    async def find_by_secret_hash(self, key_hash: str) -> ApiKey | None:
        self.lookups += 1
        return await super().find_by_secret_hash(key_hash)


@pytest.fixture(name="engine")
async def fixture_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await upgrade(engine)
    yield engine
    await engine.dispose()


async def test_keys_are_stored_hashed_and_shown_once(engine: AsyncEngine) -> None:
    store = AccountStore(engine)
    workspace = await store.create_workspace("acme")
    created = await store.create_key(workspace.id, "ci", 5_000_000_000, "month")
    assert created.secret.startswith("tw-") and len(created.secret) == 46
    async with engine.connect() as conn:
        rows = (await conn.exec_driver_sql("select key_hash, key_prefix from api_keys")).all()
    assert rows == [(hash_key(created.secret), created.secret[:10])]
    assert all(created.secret not in str(value) for row in rows for value in row[:1])
    [listed] = await store.list_keys(workspace.id)
    assert listed == created.key and listed.spend_limit_nano == 5_000_000_000


async def test_warm_key_costs_no_database_round_trip(engine: AsyncEngine) -> None:
    store = CountingStore(engine)
    workspace = await store.create_workspace("acme")
    created = await store.create_key(workspace.id, "k", None, "total")
    auth = Authenticator(store, ttl=60)
    for _ in range(100):
        principal = await auth.authenticate(f"Bearer {created.secret}")
    assert principal.workspace_id == workspace.id
    assert store.lookups == 1


async def test_local_revocation_bites_at_once(engine: AsyncEngine) -> None:
    store = CountingStore(engine)
    workspace = await store.create_workspace("acme")
    created = await store.create_key(workspace.id, "k", None, "total")
    auth = Authenticator(store, ttl=60)
    await auth.authenticate(f"Bearer {created.secret}")
    await store.revoke_key(created.key.id)
    auth.forget(created.key.id)
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(f"Bearer {created.secret}")


async def test_revocation_elsewhere_bites_after_the_ttl(engine: AsyncEngine) -> None:
    store = CountingStore(engine)
    workspace = await store.create_workspace("acme")
    created = await store.create_key(workspace.id, "k", None, "total")
    auth = Authenticator(store, ttl=0)  # every use re-checks: the bound is the ttl
    await auth.authenticate(f"Bearer {created.secret}")
    await AccountStore(engine).revoke_key(created.key.id)  # another process, as far as `auth` knows
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(f"Bearer {created.secret}")


async def test_revoking_twice_keeps_the_first_time(engine: AsyncEngine) -> None:
    store = AccountStore(engine)
    workspace = await store.create_workspace("acme")
    created = await store.create_key(workspace.id, "k", None, "total")
    first = await store.revoke_key(created.key.id)
    second = await store.revoke_key(created.key.id)
    assert first is not None and second is not None and first.revoked_at == second.revoked_at
    assert await store.revoke_key("key_missing") is None


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Token tw-x", "Bearer sk-abc", "Bearer tw-" + "x" * 300]
)
async def test_malformed_headers(engine: AsyncEngine, header: str | None) -> None:
    auth = Authenticator(AccountStore(engine), ttl=5)
    with pytest.raises(AuthenticationFailed) as info:
        await auth.authenticate(header)
    assert info.value.status == 401 and info.value.code == "invalid_api_key"


async def test_an_x_api_key_header_authenticates_like_a_bearer_token(engine: AsyncEngine) -> None:
    """Anthropic's SDK and Claude Code send `x-api-key: tw-…`; Authorization wins when both come."""
    store = AccountStore(engine)
    workspace = await store.create_workspace("acme")
    created = await store.create_key(workspace.id, "k", None, "total")
    auth = Authenticator(store, ttl=60)
    assert (await auth.authenticate(None, created.secret)).key_id == created.key.id
    assert (await auth.authenticate(f"Bearer {created.secret}", "tw-other")).key_id == created.key.id
    for bad in ("sk-ant-x", "tw-unknownunknownunknownunknown", "tw-" + "a" * 300):
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate(None, bad)
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(None, None)
