"""Billing end to end: exact costs, 402/429, credits, failures free, end states, the ledger agreeing."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import openai
import pytest

from tests.e2e.conftest import Account, Tollway, nanos

HI = [{"role": "user", "content": "Say hi"}]


def usd(nano: int) -> str:
    sign = "-" if nano < 0 else ""
    return f"{sign}{abs(nano) // 10**9}.{abs(nano) % 10**9:09d}"


def rows(tollway: Tollway, sql: str, *params: object) -> list[tuple[Any, ...]]:
    return tollway.db.rows(sql, *params)


def balance_nano(tollway: Tollway, account: Account) -> int:
    found = rows(
        tollway,
        "select balance_nano from ledger_entries where workspace_id = ? order by ws_seq desc limit 1",
        account.workspace_id,
    )
    return int(found[0][0]) if found else 0


def usage_row(tollway: Tollway, request_id: str) -> dict[str, Any]:
    found = tollway.db.mappings("select * from usage_records where id = ?", request_id)
    assert found, request_id
    return found[0]


def client(tollway: Tollway, account: Account) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{tollway.url}/v1", api_key=account.key, max_retries=0)


CASES = [
    # model, knobs, (prompt, completion, cached, cache_write, reasoning), sources
    ("gpt-4o-mini", {}, (6, 8, 0, 0, 0), "upstream"),
    ("counted", {}, (9, 8, 0, 0, 0), "counted"),
    (
        "gpt-4o-mini",
        {"cached_tokens": 20, "cache_write_tokens": 10, "reasoning_tokens": 5, "prompt_tokens": 100},
        (100, 13, 20, 10, 5),
        "upstream",
    ),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("model", "knobs", "tokens", "source"), CASES)
def test_cost_agrees_to_the_nano_everywhere(
    tollway: Tollway, model: str, knobs: dict[str, Any], tokens: tuple[int, ...], source: str, stream: bool
) -> None:
    account = tollway.new_account("exact", credit_usd="1.00")
    expected = nanos(*tokens)
    with client(tollway, account) as sdk:
        if stream:
            raw = sdk.chat.completions.with_raw_response.create(
                model=model,
                messages=HI,
                stream=True,
                extra_body={"mock": knobs},  # type: ignore[arg-type]
            )
            request_id = raw.headers["x-request-id"]
            usage = list(raw.parse())[-1].usage
        else:
            raw = sdk.chat.completions.with_raw_response.create(
                model=model,
                messages=HI,
                extra_body={"mock": knobs},  # type: ignore[arg-type]
            )
            request_id = raw.headers["x-request-id"]
            assert raw.headers["x-request-cost"] == usd(expected)
            assert raw.headers["x-balance-remaining"] == usd(10**9 - expected)
            assert raw.headers["x-tokens-used"] == str(tokens[0] + tokens[1])
            usage = raw.parse().usage
    assert usage is not None
    assert Decimal(str(usage.model_extra["cost"])) == Decimal(expected) / 10**9  # type: ignore[index]
    assert balance_nano(tollway, account) == 10**9 - expected
    record = usage_row(tollway, request_id)
    assert (
        record["prompt_tokens"],
        record["completion_tokens"],
        record["cached_tokens"],
        record["cache_write_tokens"],
        record["reasoning_tokens"],
    ) == tokens
    assert (record["cost_nano"], record["prompt_source"], record["end_state"]) == (
        expected,
        source,
        "completed",
    )
    assert bool(record["stream"]) is stream
    [(amount,)] = rows(
        tollway,
        "select amount_nano from ledger_entries where reservation_id = ? and kind = 'debit'",
        request_id,
    )
    assert amount == -expected
    assert msgspec.json.decode(record["rates"])["input"] == "1.00"


def test_balance_and_ledger_routes(tollway: Tollway) -> None:
    account = tollway.new_account("routes", credit_usd="2.50")
    headers = {"authorization": f"Bearer {account.key}"}
    with client(tollway, account) as sdk:
        for _ in range(3):
            sdk.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=8)  # type: ignore[arg-type]
    cost = nanos(6, 8)
    balance = httpx.get(f"{tollway.url}/v1/credits/balance", headers=headers).json()
    assert balance == {
        "balance_usd": usd(2_500_000_000 - 3 * cost),
        "held_usd": "0.000000000",
        "available_usd": usd(2_500_000_000 - 3 * cost),
        "currency": "USD",
    }
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = httpx.get(f"{tollway.url}/v1/credits/ledger", headers=headers, params=params).json()
        seen += page["data"]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert [e["type"] for e in seen] == ["debit", "reserve"] * 3 + ["credit"]
    assert seen[0]["balance_usd"] == balance["balance_usd"]
    assert seen[-1]["amount_usd"] == "2.500000000"
    for bad in ({"limit": "0"}, {"limit": "x"}, {"limit": "101"}, {"cursor": "garbage!"}):
        response = httpx.get(f"{tollway.url}/v1/credits/ledger", headers=headers, params=bad)
        assert response.status_code == 400
        assert response.json()["error"]["param"] in ("limit", "cursor")


def test_pricing_route(tollway: Tollway, key: str) -> None:
    data = httpx.get(f"{tollway.url}/v1/pricing", headers={"authorization": f"Bearer {key}"}).json()["data"]
    assert len(data) == 12
    by_model = {entry["model"]: entry for entry in data}
    assert by_model["claude-test"]["cache_write_1h"] == "2.00"
    assert by_model["gpt-4o-mini"] | {"model": "x", "price_id": "x"} == {
        "model": "x",
        "currency": "USD",
        "unit": "per_million_tokens",
        "input": "1.00",
        "cached_input": "0.50",
        "cache_write": "1.25",
        "cache_write_1h": "1.25",
        "output": "2.00",
        "reasoning": "3.00",
        "request": "0.0001",
        "effective_from": "2024-01-01T00:00:00.000000Z",
        "price_id": "x",
    }


def test_insufficient_credit_is_402_and_free(tollway: Tollway) -> None:
    account = tollway.new_account("poor", credit_usd="0.0001")
    response = httpx.post(
        f"{tollway.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {account.key}"},
        json={"model": "gpt-4o-mini", "messages": HI, "max_tokens": 8},
    )
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "insufficient_credit"
    # worst case: (10 bytes of text + 24 template margin) at the 1.25 cache-write rate, 8 tokens at 3.00, fee
    assert error["message"].startswith("Insufficient credit: this request needs $0.000166500 reserved")
    assert error["message"].endswith("available $0.000100000.")
    assert balance_nano(tollway, account) == 100_000
    assert rows(
        tollway, "select count(*) from ledger_entries where workspace_id = ?", account.workspace_id
    ) == [(1,)]


def test_no_credit_at_all_is_402(tollway: Tollway) -> None:
    account = tollway.new_account("empty", credit_usd=None)
    response = httpx.post(
        f"{tollway.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {account.key}"},
        json={"model": "gpt-4o-mini", "messages": HI},
    )
    assert response.status_code == 402


def test_key_spend_limit_is_429(tollway: Tollway) -> None:
    account = tollway.new_account("capped", credit_usd="5.00", spend_limit_usd="0.0003")
    body = {"model": "gpt-4o-mini", "messages": HI, "max_tokens": 8}
    headers = {"authorization": f"Bearer {account.key}"}
    statuses = [
        httpx.post(f"{tollway.url}/v1/chat/completions", headers=headers, json=body).status_code
        for _ in range(3)
    ]
    # hold 166,500 and cost 122,000 nano each: 0+166.5k and 122k+166.5k fit in 300k, 244k+166.5k does not
    assert statuses == [200, 200, 429]
    response = httpx.post(f"{tollway.url}/v1/chat/completions", headers=headers, json=body)
    error = response.json()["error"]
    assert (response.status_code, error["code"]) == (429, "spend_limit_exceeded")
    assert "spent $0.000244000" in error["message"]
    assert balance_nano(tollway, account) == 5_000_000_000 - 2 * nanos(6, 8)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("fail", [400, 429, 500])
def test_failed_requests_cost_nothing(tollway: Tollway, fail: int, stream: bool) -> None:
    account = tollway.new_account("fails", credit_usd="1.00")
    response = httpx.post(
        f"{tollway.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {account.key}"},
        json={"model": "gpt-4o-mini", "messages": HI, "stream": stream, "mock": {"fail": fail}},
    )
    assert response.status_code == fail
    assert balance_nano(tollway, account) == 10**9
    kinds = rows(
        tollway,
        "select kind from ledger_entries where workspace_id = ? order by ws_seq",
        account.workspace_id,
    )
    assert kinds == [("credit",), ("reserve",), ("release",)]


def test_rejected_requests_touch_nothing(tollway: Tollway) -> None:
    account = tollway.new_account("rejected", credit_usd="1.00")
    headers = {"authorization": f"Bearer {account.key}"}
    for body in (
        {"model": "gpt-4o-mini"},
        {"model": "nope", "messages": HI},
        {"model": "dead-model", "messages": HI},
    ):
        assert httpx.post(f"{tollway.url}/v1/chat/completions", headers=headers, json=body).status_code >= 400
    assert balance_nano(tollway, account) == 10**9
    assert rows(
        tollway,
        "select count(*) from ledger_entries where workspace_id = ? and kind = 'debit'",
        account.workspace_id,
    ) == [(0,)]


def test_upstream_breaking_off_bills_what_was_delivered(tollway: Tollway) -> None:
    account = tollway.new_account("broken", credit_usd="1.00")
    response = httpx.post(
        f"{tollway.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {account.key}"},
        json={"model": "gpt-4o-mini", "messages": HI, "stream": True, "mock": {"cut_after": 3}},
    )
    record = usage_row(tollway, response.headers["x-request-id"])
    assert (record["end_state"], record["completion_source"], record["completion_tokens"]) == (
        "upstream_broke_off",
        "counted",
        3,
    )
    assert record["cost_nano"] == nanos(9, 3)
    assert balance_nano(tollway, account) == 10**9 - nanos(9, 3)


def test_client_disconnect_bills_what_the_upstream_produced(tollway: Tollway) -> None:
    account = tollway.new_account("gone", credit_usd="1.00")
    body = {
        "model": "gpt-4o-mini",
        "messages": HI,
        "stream": True,
        "mock": {"chunks": 200, "chunk_delay_ms": 30},
    }
    with httpx.stream(
        "POST",
        f"{tollway.url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {account.key}"},
    ) as response:
        request_id = response.headers["x-request-id"]
        for line in response.iter_lines():
            if line.startswith("data: ") and '" of"' in line:
                break
    record: dict[str, Any] = {}
    for _ in range(100):
        found = rows(tollway, "select count(*) from usage_records where id = ?", request_id)
        if found == [(1,)]:
            record = usage_row(tollway, request_id)
            break
        time.sleep(0.02)
    assert record["end_state"] == "client_disconnected"
    assert record["completion_source"] == "counted"
    assert 2 <= record["completion_tokens"] < 200
    assert record["cost_nano"] == nanos(9, record["completion_tokens"])
    assert rows(
        tollway,
        "select held_nano from ledger_entries where workspace_id = ? order by ws_seq desc limit 1",
        account.workspace_id,
    ) == [(0,)]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"amount_usd": "abc"}, 400, "amount_usd"),
        ({"amount_usd": 5}, 400, "amount_usd"),
        ({"amount_usd": "0"}, 400, "amount_usd"),
        ({"amount_usd": "1.0000000001"}, 400, "amount_usd"),
        ({"amount_usd": "1" * 30}, 400, "amount_usd"),
        ({"amount_usd": "-1"}, 400, "note"),
        ({"amount_usd": "-100", "note": "refund"}, 409, "amount_usd"),
        ({"amount_usd": "1", "bogus": 1}, 400, "bogus"),
    ],
)
def test_bad_credits(tollway: Tollway, body: dict[str, Any], status: int, param: str) -> None:
    account = tollway.new_account("credits", credit_usd="1.00")
    response = tollway.admin("POST", f"/admin/workspaces/{account.workspace_id}/credits", json=body)
    assert response.status_code == status
    assert response.json()["error"]["param"] == param
    assert balance_nano(tollway, account) == 10**9


def test_idempotent_credits(tollway: Tollway) -> None:
    account = tollway.new_account("idem", credit_usd=None)
    path = f"/admin/workspaces/{account.workspace_id}/credits"
    first = tollway.admin(
        "POST", path, json={"amount_usd": "25.00", "idempotency_key": "inv-1", "note": "invoice"}
    )
    again = tollway.admin(
        "POST", path, json={"amount_usd": "25.00", "idempotency_key": "inv-1", "note": "invoice"}
    )
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert first.json()["balance"]["balance_usd"] == "25.000000000"
    conflict = tollway.admin("POST", path, json={"amount_usd": "30.00", "idempotency_key": "inv-1"})
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_key_reused"
    refund = tollway.admin("POST", path, json={"amount_usd": "-5", "note": "partial refund"})
    assert refund.status_code == 201 and refund.json()["entry"]["type"] == "adjustment"
    assert balance_nano(tollway, account) == 20 * 10**9
    assert (
        tollway.admin("POST", "/admin/workspaces/ws_nope/credits", json={"amount_usd": "1"}).status_code
        == 404
    )


def test_cli_credit_and_balance(tollway: Tollway) -> None:
    account = tollway.new_account("cli-credit", credit_usd=None)
    result = tollway.cli(
        "admin",
        "--config",
        str(tollway.config),
        "credit",
        account.workspace_id,
        "3.25",
        "--idempotency-key",
        "cli-1",
    )
    assert result.returncode == 0, result.stderr
    assert msgspec.json.decode(result.stdout)["balance"]["balance_usd"] == "3.250000000"
    replay = tollway.cli(
        "admin",
        "--config",
        str(tollway.config),
        "credit",
        account.workspace_id,
        "3.25",
        "--idempotency-key",
        "cli-1",
    )
    assert msgspec.json.decode(replay.stdout)["replayed"] is True
    shown = tollway.cli("admin", "--config", str(tollway.config), "balance", account.workspace_id)
    assert msgspec.json.decode(shown.stdout)["available_usd"] == "3.250000000"
    bad = tollway.cli("admin", "--config", str(tollway.config), "credit", account.workspace_id, "1e3")
    assert bad.returncode == 1 and "decimal string" in bad.stderr


def test_ledger_verify_is_clean(tollway: Tollway) -> None:
    result = tollway.cli("ledger", "verify", "--config", str(tollway.config))
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("ledger verify: consistent:")
