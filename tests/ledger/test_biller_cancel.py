"""A request cancelled while its reservation is being written leaves no hold behind (both engines)."""

from __future__ import annotations

import asyncio

import pytest

from tollway.accounts import AccountStore
from tollway.auth import Principal
from tollway.billing.biller import Biller
from tollway.billing.credits import credit
from tollway.config import load_settings
from tollway.ledger import Balance, Ledger
from tollway.pipeline.routing import Router
from tollway.surfaces.chat_completions import parse_chat_request
from tollway.tokens import TokenCounter


async def test_a_reservation_whose_caller_left_is_released_when_it_lands(
    ledger: Ledger, accounts: AccountStore
) -> None:
    ws = (await accounts.create_workspace("gone")).id
    key = (await accounts.create_key(ws, "k", None, "total")).key.id
    await credit(ledger, ws, 10**12, None, None)
    settings = load_settings(None, environ={})
    biller = Biller(ledger, settings.prices, TokenCounter(()), "inst_test")
    route = Router(settings).resolve("demo")
    principal = Principal(
        key_id=key, key_name="k", workspace_id=ws, spend_limit_nano=None, spend_limit_period="total"
    )
    chat = parse_chat_request(b'{"model": "demo", "messages": [{"role": "user", "content": "hi"}]}')
    async with ledger.write(ws) as writer:  # holds the workspace's write lock
        await writer.head()
        reserving = asyncio.ensure_future(biller.reserve(principal, route, chat, "req_gone"))
        await asyncio.sleep(0.2)  # the reservation waits for the lock
        reserving.cancel()
        await asyncio.sleep(0)
    with pytest.raises(asyncio.CancelledError):
        await reserving
    for _ in range(500):
        entries = await ledger.entries(ws, limit=10)
        if entries[0].kind == "release":
            break
        await asyncio.sleep(0.01)
    assert [(e.kind, e.reservation_id) for e in entries] == [
        ("release", "req_gone"),
        ("reserve", "req_gone"),
        ("credit", None),
    ]
    assert entries[0].note == "request cancelled while reserving"
    assert await ledger.balance(ws) == Balance(10**12, 0)
