"""Several tollway processes on one database: workers, separate servers, revocation across them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.dbs import drop_database
from tests.e2e.conftest import Mock, Tollway, launch, shut
from tests.e2e.test_billing import balance_nano
from tests.e2e.test_billing_races import COST, HI, debits


async def spread(servers: list[Tollway], key: str, count: int) -> list[int]:
    """`count` concurrent requests, spread over the servers, streams and non-streams alternating."""
    clients = [
        httpx.AsyncClient(base_url=s.url, timeout=60, limits=httpx.Limits(max_connections=count))
        for s in servers
    ]
    try:

        async def one(i: int) -> int:
            body: dict[str, object] = {
                "model": "gpt-4o-mini",
                "messages": HI,
                "max_tokens": 8,
                "stream": bool(i % 2),
            }
            response = await clients[i % len(clients)].post(
                "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
            )
            return response.status_code

        return list(await asyncio.gather(*(one(i) for i in range(count))))
    finally:
        for client in clients:
            await client.aclose()


def warm(server: Tollway, key: str) -> int:
    """One billed request: the server's database connection is open, the key cached and the server
    has written into the workspace's chain, so the race that follows is between two ready writers
    (on a slow machine one server's first batch could otherwise reserve all the credit before the
    other's first job arrives, and only one process would have written)."""
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": HI, "max_tokens": 8},
        headers={"authorization": f"Bearer {key}"},
    )
    return response.status_code


def verify_clean(server: Tollway) -> None:
    result = server.cli("ledger", "verify", "--config", str(server.config))
    assert result.returncode == 0, result.stdout


async def test_two_servers_one_database_never_overdraw(mock: Mock, tmp_path: Path) -> None:
    first, one = launch(mock, tmp_path)
    second, two = launch(mock, tmp_path)
    try:
        account = first.new_account("shared", credit_usd="0.01")
        for server in (first, second):  # both warm, each with one billed request in the chain
            assert warm(server, account.key) == 200
        statuses = await spread([first, second], account.key, 200)
        ok = statuses.count(200)
        assert set(statuses) <= {200, 402} and 0 < ok < 200
        assert debits(first, account.workspace_id) == [-COST] * (ok + 2)
        assert balance_nano(first, account) == 10_000_000 - (ok + 2) * COST >= 0
        owners = first.db.rows("select count(distinct owner) from ledger_entries where kind = 'reserve'")
        assert owners == [(2,)]  # both processes reserved, in one chain
        verify_clean(first)
    finally:
        shut(first, one)
        shut(second, two)
        drop_database(first.database_url)


async def test_serve_with_two_workers(mock: Mock, tmp_path: Path) -> None:
    server, process = launch(mock, tmp_path, extra=("--workers", "2"))
    try:
        account = server.new_account("workers", credit_usd="0.01")
        statuses = await spread([server], account.key, 200)
        ok = statuses.count(200)
        assert set(statuses) <= {200, 402} and 0 < ok < 200
        assert balance_nano(server, account) == 10_000_000 - ok * COST >= 0
        instances = server.db.rows("select count(*) from instances")
        assert instances == [(2,)]  # two worker processes, each its own instance
        verify_clean(server)
    finally:
        shut(server, process)
        drop_database(server.database_url)


def test_a_key_revoked_in_one_process_stops_in_the_other_within_5_seconds(mock: Mock, tmp_path: Path) -> None:
    first, one = launch(mock, tmp_path)
    second, two = launch(mock, tmp_path)
    try:
        account = first.new_account("revoked-elsewhere", credit_usd="1.00")
        headers = {"authorization": f"Bearer {account.key}"}
        assert httpx.get(f"{second.url}/v1/models", headers=headers).status_code == 200  # now cached there
        assert first.admin("DELETE", f"/admin/keys/{account.key_id}").status_code == 200
        assert httpx.get(f"{first.url}/v1/models", headers=headers).status_code == 401  # at once here
        revoked_at = time.monotonic()
        while httpx.get(f"{second.url}/v1/models", headers=headers).status_code == 200:
            assert time.monotonic() - revoked_at < 5.5, "still accepted 5 s after revocation"
            time.sleep(0.1)
    finally:
        shut(first, one)
        shut(second, two)
        drop_database(first.database_url)
