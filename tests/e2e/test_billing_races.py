"""Concurrency without overdraft, and a killed server's reservations resolved by the crash rule."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import httpx
import pytest

from tests.dbs import drop_database
from tests.e2e.conftest import Mock, Tollway, launch, nanos, shut
from tests.e2e.test_billing import balance_nano, rows

HI = [{"role": "user", "content": "Say hi"}]
COST = nanos(6, 8)  # every request below: the mock reports 6 prompt + 8 completion tokens


async def hammer(tollway: Tollway, key: str, count: int) -> list[int]:
    """`count` concurrent requests, streams and non-streams alternating; their statuses."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=tollway.url, limits=limits, timeout=60) as client:

        async def one(i: int) -> int:
            body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": HI, "max_tokens": 8}
            if i % 2:
                body |= {"stream": True, "mock": {"chunk_delay_ms": 2}}
            response = await client.post(
                "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
            )
            if response.status_code == 200 and body.get("stream"):
                assert response.text.endswith("data: [DONE]\n\n")
            return response.status_code

        return list(await asyncio.gather(*(one(i) for i in range(count))))


def debits(tollway: Tollway, workspace_id: str) -> list[int]:
    return [
        amount
        for (amount,) in rows(
            tollway,
            "select amount_nano from ledger_entries where workspace_id = ? and kind = 'debit'",
            workspace_id,
        )
    ]


async def test_200_concurrent_requests_never_overdraw(tollway: Tollway) -> None:
    credit = 10_000_000  # 0.01 USD: room for at most 81 requests at 122,000 nano each
    account = tollway.new_account("race", credit_usd="0.01")
    statuses = await hammer(tollway, account.key, 200)
    ok = statuses.count(200)
    assert set(statuses) <= {200, 402}
    assert 0 < ok < 200 and statuses.count(402) > 0
    assert debits(tollway, account.workspace_id) == [-COST] * ok
    assert balance_nano(tollway, account) == credit - ok * COST >= 0
    held = rows(
        tollway,
        "select held_nano from ledger_entries where workspace_id = ? order by ws_seq desc limit 1",
        account.workspace_id,
    )
    assert held == [(0,)]


async def test_200_concurrent_requests_never_pass_a_key_ceiling(tollway: Tollway) -> None:
    limit = 5_000_000
    account = tollway.new_account("race-cap", credit_usd="100", spend_limit_usd="0.005")
    statuses = await hammer(tollway, account.key, 200)
    ok = statuses.count(200)
    assert set(statuses) <= {200, 429}
    assert ok > 0 and statuses.count(429) > 0
    assert debits(tollway, account.workspace_id) == [-COST] * ok
    assert ok * COST <= limit
    assert balance_nano(tollway, account) == 100 * 10**9 - ok * COST


def test_killed_server_reservations_are_released_once(mock: Mock, tmp_path: Any) -> None:
    first, process = launch(mock, tmp_path)
    account = first.new_account("crash", credit_usd="1.00")
    streams = []
    client = httpx.Client(timeout=30)
    try:
        body = {
            "model": "gpt-4o-mini",
            "messages": HI,
            "stream": True,
            "max_tokens": 100,
            "mock": {"chunks": 100, "chunk_delay_ms": 100},
        }
        for _ in range(5):
            stream = client.stream(
                "POST",
                f"{first.url}/v1/chat/completions",
                json=body,
                headers={"authorization": f"Bearer {account.key}"},
            )
            response = stream.__enter__()
            lines = response.iter_lines()  # kept alive: dropping it would close the stream
            next(lines)
            streams.append((stream, lines))
        assert len(rows(first, "select 1 from ledger_entries where kind = 'reserve'")) == 5
        assert rows(first, "select count(*) from ledger_entries where kind in ('debit', 'release')") == [(0,)]
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        for stream, _ in streams:
            try:
                stream.__exit__(None, None, None)
            except httpx.HTTPError:
                pass
        client.close()
    held = rows(
        first,
        "select held_nano from ledger_entries where workspace_id = ? order by ws_seq desc limit 1",
        account.workspace_id,
    )
    assert held[0][0] > 0  # money in limbo until the rule resolves it

    second, process = launch(mock, tmp_path)
    try:
        deadline = time.monotonic() + 15  # dead_after 2 s + reap interval 0.5 s in the test config
        while time.monotonic() < deadline:
            releases = rows(second, "select reservation_id, note from ledger_entries where kind = 'release'")
            if len(releases) == 5:
                break
            time.sleep(0.1)
        assert len(releases) == 5
        assert len({rid for rid, _ in releases}) == 5
        assert all(note.startswith("released: process inst_") for _, note in releases)
        assert balance_nano(second, account) == 10**9  # the crash rule: released at no cost
        time.sleep(1.5)  # further reaping rounds change nothing
        assert len(rows(second, "select 1 from ledger_entries where kind = 'release'")) == 5
        result = second.cli("ledger", "verify", "--config", str(second.config))
        assert result.returncode == 0, result.stdout
    finally:
        shut(second, process)
        first.db.close()
        drop_database(first.database_url)


@pytest.mark.parametrize("unused", [None])
def test_live_reservations_are_never_reaped(tollway: Tollway, unused: None) -> None:
    account = tollway.new_account("alive", credit_usd="1.00")
    body = {
        "model": "gpt-4o-mini",
        "messages": HI,
        "stream": True,
        "max_tokens": 8,
        "mock": {"chunks": 8, "chunk_delay_ms": 500},
    }
    response = httpx.post(
        f"{tollway.url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {account.key}"},
        timeout=30,
    )
    # the stream took ~3.5 s, longer than dead_after (2 s): the live server kept beating, nothing was reaped
    assert response.text.endswith("data: [DONE]\n\n")
    kinds = rows(
        tollway,
        "select kind from ledger_entries where workspace_id = ? order by ws_seq",
        account.workspace_id,
    )
    assert kinds == [("credit",), ("reserve",), ("debit",)]
