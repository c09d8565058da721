"""Rate limits end to end: the official SDKs against a real server, sequential and concurrent,
one process and `--workers 2`, on the engine under test (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.dbs import drop_database
from tests.e2e.conftest import Account, Mock, Tollway, launch, shut
from tests.e2e.test_billing import balance_nano
from tests.e2e.test_billing_races import COST, HI, debits

LIMITS = ("requests_per_minute", "tokens_per_minute", "max_concurrent")


def limited_account(
    tollway: Tollway, name: str, *, workspace: dict[str, Any] | None = None, **key: Any
) -> Account:
    created = tollway.admin("POST", "/admin/workspaces", json={"name": name, **(workspace or {})})
    assert created.status_code == 201, created.text
    ws = created.json()["id"]
    assert (
        tollway.admin("POST", f"/admin/workspaces/{ws}/credits", json={"amount_usd": "10.00"}).status_code
        == 201
    )
    made = tollway.admin("POST", f"/admin/workspaces/{ws}/keys", json={"name": name, **key})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["rate_limits"] == {name: key.get(name) for name in LIMITS}
    return Account(ws, body["id"], body["key"])


_OPEN: list[openai.OpenAI | anthropic.Anthropic] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def client(tollway: Tollway, key: str) -> openai.OpenAI:
    """An SDK client that does not retry (closed after the test)."""
    sdk = openai.OpenAI(base_url=f"{tollway.url}/v1", api_key=key, max_retries=0)
    _OPEN.append(sdk)
    return sdk


async def burst(tollway: Tollway, key: str, count: int, **extra: Any) -> list[httpx.Response]:
    async with httpx.AsyncClient(
        base_url=tollway.url, timeout=60, limits=httpx.Limits(max_connections=count)
    ) as http:

        async def one(i: int) -> httpx.Response:
            body = {"model": "gpt-4o-mini", "messages": HI, "max_tokens": 8, "stream": bool(i % 2), **extra}
            return await http.post(
                "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
            )

        return list(await asyncio.gather(*(one(i) for i in range(count))))


def test_requests_per_minute_with_the_openai_sdk(tollway: Tollway) -> None:
    account = limited_account(tollway, "rpm", requests_per_minute=3)
    sdk = client(tollway, account.key)
    remaining = []
    for _ in range(3):
        raw = sdk.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI, max_tokens=8)
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        remaining.append(raw.headers["x-ratelimit-remaining-requests"])
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    assert remaining == ["2", "1", "0"]
    balance = balance_nano(tollway, account)
    with pytest.raises(openai.RateLimitError) as refused:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=8)
    error = refused.value
    assert error.status_code == 429 and error.code == "rate_limit_exceeded"
    assert error.response.headers["retry-after"] in {"59", "60"}
    assert error.response.headers["x-request-id"]
    assert "x-should-retry" not in error.response.headers  # waiting helps: the SDK may retry
    assert balance_nano(tollway, account) == balance == 10_000_000_000 - 3 * COST  # the refusal cost nothing
    assert debits(tollway, account.workspace_id) == [-COST] * 3


def test_a_stream_carries_the_headers_and_tokens_settle_to_actual(tollway: Tollway) -> None:
    # Each request reserves its bound (prompt bound + max_tokens 8) and then counts its 14 tokens.
    account = limited_account(tollway, "tpm", tokens_per_minute=400)
    sdk = client(tollway, account.key)
    raw = sdk.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HI, max_tokens=8, stream=True
    )
    limit = int(raw.headers["x-ratelimit-limit-tokens"])
    first_remaining = int(raw.headers["x-ratelimit-remaining-tokens"])
    chunks = list(raw.parse())
    assert limit == 400 and chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 14
    bound = 400 - first_remaining
    raw = sdk.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI, max_tokens=8)
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) == 400 - 14 - bound  # the first now counts 14
    with pytest.raises(openai.RateLimitError) as refused:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=1000)
    assert refused.value.response.headers["x-should-retry"] == "false"  # larger than the limit itself
    assert "more than this key's limit of 400 tokens per minute" in refused.value.message


async def test_thirty_concurrent_requests_admit_exactly_the_limit(tollway: Tollway) -> None:
    account = limited_account(tollway, "burst", requests_per_minute=10)
    responses = await burst(tollway, account.key, 30)
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 10 and statuses.count(429) == 20
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 429} == {"rate_limit_exceeded"}
    assert all(r.headers["retry-after"] for r in responses if r.status_code == 429)
    assert debits(tollway, account.workspace_id) == [-COST] * 10


async def test_max_concurrent_holds_while_requests_are_in_flight(tollway: Tollway) -> None:
    account = limited_account(tollway, "concurrent", max_concurrent=3)
    # Each admitted request waits 3 s for the mock's headers, so all 30 are judged while 3 are open.
    responses = await burst(tollway, account.key, 30, mock={"headers_delay_ms": 3000})
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 3 and statuses.count(429) == 27
    assert {r.headers["retry-after"] for r in responses if r.status_code == 429} == {"1"}
    assert debits(tollway, account.workspace_id) == [-COST] * 3


def test_workspace_limits_and_patch(tollway: Tollway) -> None:
    account = limited_account(tollway, "ws-limit", workspace={"requests_per_minute": 2})
    second = tollway.admin(
        "POST", f"/admin/workspaces/{account.workspace_id}/keys", json={"name": "b"}
    ).json()
    client(tollway, account.key).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=8)
    client(tollway, second["key"]).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=8)
    with pytest.raises(openai.RateLimitError) as refused:
        client(tollway, second["key"]).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=8)
    assert "for this workspace: 2 of 2 requests per minute used" in refused.value.message
    patched = tollway.admin(
        "PATCH",
        f"/admin/workspaces/{account.workspace_id}",
        json={"requests_per_minute": None, "name": "renamed"},
    )
    assert patched.status_code == 200
    assert patched.json()["name"] == "renamed"
    assert patched.json()["rate_limits"]["requests_per_minute"] is None
    client(tollway, second["key"]).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=8)
    # A key PATCH: a limit of 0 pauses the key at once, null lifts it.
    paused = tollway.admin("PATCH", f"/admin/keys/{second['id']}", json={"requests_per_minute": 0})
    assert paused.json()["rate_limits"] == {
        "requests_per_minute": 0,
        "tokens_per_minute": None,
        "max_concurrent": None,
    }
    with pytest.raises(openai.RateLimitError):
        client(tollway, second["key"]).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=8)
    tollway.admin("PATCH", f"/admin/keys/{second['id']}", json={"requests_per_minute": None})
    client(tollway, second["key"]).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=8)


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/admin/keys/{key}", {"requests_per_minute": -1}, "requests_per_minute"),
        ("/admin/keys/{key}", {"tokens_per_minute": "many"}, "tokens_per_minute"),
        ("/admin/keys/{key}", {"spend_limit_usd": "-1"}, "spend_limit_usd"),
        ("/admin/keys/{key}", {"colour": "red"}, "colour"),
        ("/admin/workspaces/{ws}", {"low_balance_usd": "abc"}, "low_balance_usd"),
        ("/admin/workspaces/{ws}", {"max_concurrent": 2**70}, "max_concurrent"),
        ("/admin/workspaces/{ws}", {"name": ""}, "name"),
    ],
)
def test_bad_patches_are_400s_naming_the_field(
    tollway: Tollway, path: str, body: dict[str, Any], param: str
) -> None:
    account = limited_account(tollway, "bad-patch")
    response = tollway.admin("PATCH", path.format(key=account.key_id, ws=account.workspace_id), json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_patching_what_does_not_exist_is_a_404(tollway: Tollway) -> None:
    assert tollway.admin("PATCH", "/admin/keys/key_nope", json={"name": "x"}).status_code == 404
    assert tollway.admin("PATCH", "/admin/workspaces/ws_nope", json={"name": "x"}).status_code == 404


def test_the_anthropic_surface_answers_in_its_own_shape(tollway: Tollway) -> None:
    account = limited_account(tollway, "claude-limit", requests_per_minute=1)
    claude = anthropic.Anthropic(base_url=tollway.url, api_key=account.key, max_retries=0)
    _OPEN.append(claude)
    claude.messages.create(model="claude-test", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.RateLimitError) as refused:
        claude.messages.create(
            model="claude-test", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert refused.value.response.headers["retry-after"] in {"59", "60"}


async def test_with_two_workers_the_count_is_exact(mock: Mock, tmp_path: Path) -> None:
    server, process = launch(mock, tmp_path, extra=("--workers", "2"))
    try:
        account = limited_account(server, "workers", requests_per_minute=10)
        statuses = [r.status_code for r in await burst(server, account.key, 30)]
        assert statuses.count(200) == 10 and statuses.count(429) == 20
        concurrent = limited_account(server, "workers-concurrent", max_concurrent=4)
        responses = await burst(server, concurrent.key, 30, mock={"headers_delay_ms": 3000})
        assert [r.status_code for r in responses].count(200) == 4
        assert server.db.rows("select count(*) from instances") == [(2,)]  # two workers, one count
        result = server.cli("ledger", "verify", "--config", str(server.config))
        assert result.returncode == 0, result.stdout
    finally:
        shut(server, process)
        drop_database(server.database_url)
