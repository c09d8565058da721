"""Money events go to the outbox in their cause's transaction, once per crossing (both engines)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.accounts import AccountStore
from tollway.auth import Principal
from tollway.billing.biller import Biller, Hold
from tollway.billing.credits import credit
from tollway.config import load_settings
from tollway.db.schema import event_deliveries, events
from tollway.errors import InsufficientCredit, SpendLimitExceeded
from tollway.events import Outbox, Subscription
from tollway.ledger import Ledger
from tollway.pipeline.routing import Router
from tollway.surfaces.chat_completions import parse_chat_request
from tollway.tokens import TokenCounter
from tollway.usage import Usage

USD = 1_000_000_000
BODY = b'{"model": "demo", "max_tokens": 40, "messages": [{"role": "user", "content": "hi"}]}'
HOOK = "http://127.0.0.1:9/hook"


class Setup:
    def __init__(self, engine: AsyncEngine, ledger: Ledger) -> None:
        self.engine = engine
        self.ledger = ledger
        self.outbox = Outbox([Subscription(HOOK, frozenset({"balance.low", "credit.added"}))])
        self.accounts = AccountStore(engine, self.outbox)
        settings = load_settings(None, environ={})
        self.biller = Biller(ledger, settings.prices, TokenCounter(("o200k_base",)), "inst_test", self.outbox)
        self.route = Router(settings).resolve("demo")
        self.call = parse_chat_request(BODY)
        self.ids = 0

    async def principal(self, ws: str, spend_limit: int | None = None) -> Principal:
        key = (await self.accounts.create_key(ws, "k", spend_limit, "total")).key
        return Principal(key.id, key.name, ws, spend_limit, "total")

    async def reserve(self, principal: Principal) -> Hold:
        self.ids += 1
        return await self.biller.reserve(principal, self.route, self.call, f"req_{self.ids}")

    async def spend(self, principal: Principal, completion: int) -> None:
        hold = await self.reserve(principal)
        ctx: Any = SimpleNamespace(
            route=self.route,
            upstream=SimpleNamespace(name="demo"),
            call=self.call,
            upstream_model=None,
            surface=SimpleNamespace(operation="chat.completions"),
            started_us=1,
        )
        await self.biller.settle(hold, ctx, "completed", Usage(prompt=10, completion=completion))

    async def events(self, ws: str) -> list[tuple[str, dict[str, Any]]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(events).where(events.c.workspace_id == ws).order_by(events.c.id))
            return [(r.type, msgspec.json.decode(r.data)) for r in rows]


@pytest.fixture(name="setup")
def fixture_setup(engine: AsyncEngine, ledger: Ledger) -> Setup:
    return Setup(engine, ledger)


async def test_a_credit_sends_credit_added_once_and_not_on_a_replay(setup: Setup) -> None:
    ws = (await setup.accounts.create_workspace("credits")).id
    first = await credit(setup.ledger, ws, 25 * USD, "ik-1", "top-up", setup.outbox)
    await credit(setup.ledger, ws, 25 * USD, "ik-1", "top-up", setup.outbox)  # replay: nothing new
    assert await setup.events(ws) == [
        (
            "credit.added",
            {
                "workspace_id": ws,
                "entry_id": f"le_{ws.removeprefix('ws_')}_{first.entry.ws_seq}",
                "amount_usd": "25.000000000",
                "idempotency_key": "ik-1",
                "note": "top-up",
                "balance_usd": "25.000000000",
                "held_usd": "0.000000000",
                "available_usd": "25.000000000",
            },
        )
    ]
    async with setup.engine.connect() as conn:
        deliveries = (await conn.execute(select(event_deliveries))).all()
    assert [(d.webhook, d.state, d.attempts) for d in deliveries] == [(HOOK, "pending", 0)]


async def test_balance_low_is_sent_once_per_crossing_and_rearmed_by_a_credit(setup: Setup) -> None:
    ws = (await setup.accounts.create_workspace("low")).id
    await credit(setup.ledger, ws, 10 * USD, None, None)
    principal = await setup.principal(ws)
    balance = (await setup.ledger.balance(ws)).balance_nano
    await setup.accounts.update_workspace(ws, {"low_balance_nano": balance - 1})  # the first debit crosses
    await setup.spend(principal, 5)
    await setup.spend(principal, 5)  # still below: no second event
    low = [data for kind, data in await setup.events(ws) if kind == "balance.low"]
    entries = await setup.ledger.entries(ws, limit=10)  # newest first: debit, reserve, debit, reserve, credit
    first_debit = entries[2]
    assert first_debit.kind == "debit"
    assert low == [
        {
            "workspace_id": ws,
            "low_balance_usd": "9.999999999",
            "balance_usd": _usd(first_debit.balance_nano),
            "held_usd": "0.000000000",
            "available_usd": _usd(first_debit.balance_nano),
            "request_id": "req_1",
        }
    ]
    await credit(setup.ledger, ws, 1 * USD, None, None)  # back above the threshold: re-armed
    await setup.spend(principal, 5)
    assert [kind for kind, _ in await setup.events(ws)].count(
        "balance.low"
    ) == 1  # 10.99… > 9.99…: no crossing
    await setup.accounts.update_workspace(ws, {"low_balance_nano": 11 * USD})  # a new threshold re-arms
    await setup.spend(principal, 5)
    assert [kind for kind, _ in await setup.events(ws)].count("balance.low") == 2


async def test_an_adjustment_can_cross_the_threshold_too(setup: Setup) -> None:
    ws = (await setup.accounts.create_workspace("adjust")).id
    await credit(setup.ledger, ws, 10 * USD, None, None)
    await setup.accounts.update_workspace(ws, {"low_balance_nano": 5 * USD})
    await credit(setup.ledger, ws, -6 * USD, None, "refund", setup.outbox)
    kinds = [kind for kind, _ in await setup.events(ws)]
    assert kinds == ["credit.added", "balance.low"]


async def test_balance_exhausted_is_sent_on_the_first_402_until_a_credit(setup: Setup) -> None:
    ws = (await setup.accounts.create_workspace("empty")).id
    principal = await setup.principal(ws)
    for _ in range(3):
        with pytest.raises(InsufficientCredit):
            await setup.reserve(principal)
    exhausted = [data for kind, data in await setup.events(ws) if kind == "balance.exhausted"]
    assert len(exhausted) == 1
    assert exhausted[0]["available_usd"] == "0.000000000" and exhausted[0]["key_id"] == principal.key_id
    assert (await setup.ledger.entries(ws, limit=10)) == []  # the refusals wrote no money
    await credit(setup.ledger, ws, 1, None, None, setup.outbox)  # one nano-dollar: re-armed, still short
    with pytest.raises(InsufficientCredit):
        await setup.reserve(principal)
    kinds = [kind for kind, _ in await setup.events(ws)]
    assert kinds == ["balance.exhausted", "credit.added", "balance.exhausted"]


async def test_spend_limit_reached_is_sent_once_per_period_and_rearmed_by_a_patch(setup: Setup) -> None:
    ws = (await setup.accounts.create_workspace("spend")).id
    await credit(setup.ledger, ws, 10 * USD, None, None)
    principal = await setup.principal(ws, spend_limit=1)
    for _ in range(2):
        with pytest.raises(SpendLimitExceeded):
            await setup.reserve(principal)
    reached = [data for kind, data in await setup.events(ws) if kind == "spend_limit.reached"]
    assert reached == [
        {
            "workspace_id": ws,
            "key_id": principal.key_id,
            "request_id": "req_1",
            "spend_limit_usd": "0.000000001",
            "spend_limit_period": "total",
            "spent_usd": "0.000000000",
        }
    ]
    await setup.accounts.update_key(principal.key_id, {"spend_limit_nano": 2})
    with pytest.raises(SpendLimitExceeded):
        await setup.reserve(principal)
    assert [kind for kind, _ in await setup.events(ws)].count("spend_limit.reached") == 2


async def test_key_revoked_is_sent_by_the_first_revocation_only(setup: Setup) -> None:
    ws = (await setup.accounts.create_workspace("revoke")).id
    key = (await setup.accounts.create_key(ws, "ci", None, "total")).key
    await setup.accounts.revoke_key(key.id)
    await setup.accounts.revoke_key(key.id)
    revoked = await setup.events(ws)
    assert [kind for kind, _ in revoked] == ["key.revoked"]
    assert revoked[0][1]["key_id"] == key.id and revoked[0][1]["name"] == "ci"


def _usd(nanos: int) -> str:
    return f"{nanos // USD}.{nanos % USD:09d}"
