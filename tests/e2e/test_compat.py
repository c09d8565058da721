"""What real SDKs ran into (issue [1/6] §4) and the money rules for bad upstream numbers (§2), end to end.

The official openai SDK against the shared tollway server and `tollway mock-upstream`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.conftest import Tollway, nanos
from tollway.money import format_usd

HI = [{"role": "user", "content": "Say hi"}]
WORDS = " the of and to in is it for"
COUNTED_PROMPT = 9  # HI by OpenAI's chat rule, o200k_base
ORIGIN = "https://app.example"  # the e2e server's [server] cors_origins


class Counting:
    """An httpx client for the SDK that counts the requests it sends (retries included)."""

    def __init__(self) -> None:
        self.sent = 0
        self.client = httpx.Client(event_hooks={"request": [self._count]})

    def _count(self, _: httpx.Request) -> None:
        self.sent += 1


@pytest.fixture(name="counting")
def fixture_counting() -> Iterator[Counting]:
    counting = Counting()
    yield counting
    counting.client.close()


def sdk(tollway: Tollway, key: str, http_client: httpx.Client | None = None, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{tollway.url}/v1", api_key=key, http_client=http_client, **options)


def ledger_rows(tollway: Tollway, workspace_id: str) -> list[tuple[Any, ...]]:
    return tollway.db.rows(
        "SELECT kind, amount_nano, hold_nano FROM ledger_entries WHERE workspace_id = ? ORDER BY ws_seq",
        workspace_id,
    )


# -- retrying cannot succeed: x-should-retry: false ------------------------------------------------------


def test_a_402_is_not_retried_by_the_sdk(tollway: Tollway, counting: Counting) -> None:
    account = tollway.new_account("poor", credit_usd="0.000001")
    client = sdk(tollway, account.key, counting.client, max_retries=3)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)  # type: ignore[arg-type]
    assert caught.value.status_code == 402
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert caught.value.response.headers["x-request-id"].startswith("req_")
    assert counting.sent == 1  # the SDK honoured the header: no retry
    assert [kind for kind, *_ in ledger_rows(tollway, account.workspace_id)] == ["credit"]


def test_a_spend_limit_429_is_not_retried_by_the_sdk(tollway: Tollway, counting: Counting) -> None:
    account = tollway.new_account("capped", spend_limit_usd="0.000001")
    client = sdk(tollway, account.key, counting.client, max_retries=3)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)  # type: ignore[arg-type]
    assert caught.value.code == "spend_limit_exceeded"
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert counting.sent == 1


# -- models.retrieve, HEAD, X-Request-Id everywhere ------------------------------------------------------


def test_models_retrieve(tollway: Tollway, key: str) -> None:
    client = sdk(tollway, key, max_retries=0)
    model = client.models.retrieve("demo")
    assert (model.id, model.object, model.owned_by) == ("demo", "model", "tollway")
    assert client.models.retrieve("counted").id == "counted"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("no-such-model")
    assert caught.value.code == "model_not_found"
    response = httpx.get(f"{tollway.url}/v1/models/demo")
    assert response.status_code == 401


@pytest.mark.parametrize(
    "path", ["/health", "/v1/models", "/v1/models/demo", "/v1/credits/balance", "/v1/pricing"]
)
def test_head_is_answered_wherever_get_is(tollway: Tollway, key: str, path: str) -> None:
    headers = {"authorization": f"Bearer {key}"}
    got = httpx.get(f"{tollway.url}{path}", headers=headers)
    head = httpx.head(f"{tollway.url}{path}", headers=headers)
    assert (got.status_code, head.status_code) == (200, 200)
    assert head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["x-request-id"].startswith("req_")
    assert httpx.head(f"{tollway.url}/v1/chat/completions", headers=headers).status_code == 405


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/no/such/route", None, 404),
        ("DELETE", "/v1/models", None, 405),
        ("POST", "/v1/chat/completions", b"{oops", 400),
        (
            "POST",
            "/v1/chat/completions",
            b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}',
            404,
        ),
        ("POST", "/v1/chat/completions", b"x" * 70_000, 413),
        ("GET", "/v1/credits/balance", None, 401),
        ("GET", "/admin/workspaces", None, 401),
    ],
)
def test_every_error_carries_a_request_id(
    tollway: Tollway, key: str, method: str, path: str, body: bytes | None, status: int
) -> None:
    headers = {} if status == 401 else {"authorization": f"Bearer {key}"}
    response = httpx.request(method, f"{tollway.url}{path}", content=body, headers=headers)
    assert response.status_code == status
    assert response.headers["x-request-id"].startswith("req_")
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_an_upstream_error_passed_through_carries_a_request_id(tollway: Tollway, key: str) -> None:
    response = httpx.post(
        f"{tollway.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "gpt-4o-mini", "messages": HI, "mock": {"fail": 503}},
    )
    assert response.status_code == 503
    assert response.headers["x-request-id"].startswith("req_")


def test_the_request_id_names_the_usage_record(tollway: Tollway, key: str) -> None:
    raw = sdk(tollway, key, max_retries=0).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=HI,  # type: ignore[arg-type]
    )
    request_id = raw.headers["x-request-id"]
    assert len(raw.headers.get_list("x-request-id")) == 1
    record = httpx.get(
        f"{tollway.url}/v1/usage/requests/{request_id}", headers={"authorization": f"Bearer {key}"}
    )
    assert record.status_code == 200 and record.json()["id"] == request_id


# -- the model name: the served alias, or the upstream's own value ----------------------------------------


def test_an_alias_shows_the_served_name_and_the_record_keeps_both(tollway: Tollway, key: str) -> None:
    client = sdk(tollway, key, max_retries=0)
    completion = client.chat.completions.with_raw_response.create(model="counted", messages=HI)  # type: ignore[arg-type]
    assert completion.parse().model == "counted"  # not the upstream's "demo:usage=absent"
    chunks = list(client.chat.completions.create(model="counted", messages=HI, stream=True))  # type: ignore[arg-type]
    assert {c.model for c in chunks} == {"counted"}
    record = httpx.get(
        f"{tollway.url}/v1/usage/requests/{completion.headers['x-request-id']}",
        headers={"authorization": f"Bearer {key}"},
    ).json()
    assert (record["model"], record["upstream_model"]) == ("counted", "demo:usage=absent")
    # Same name on both sides: the upstream's value passes through.
    assert client.chat.completions.create(model="demo", messages=HI).model == "demo"  # type: ignore[arg-type]


# -- CORS -------------------------------------------------------------------------------------------------


def test_cors_preflight_and_headers_for_an_allowed_origin(tollway: Tollway, key: str) -> None:
    preflight = httpx.options(
        f"{tollway.url}/v1/chat/completions",
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type, x-stainless-os",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-headers"] == "authorization, content-type, x-stainless-os"
    response = httpx.post(
        f"{tollway.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}", "origin": ORIGIN},
        json={"model": "gpt-4o-mini", "messages": HI},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    exposed = response.headers["access-control-expose-headers"]
    assert "x-request-id" in exposed and "x-request-cost" in exposed


def test_no_cors_headers_for_other_origins(tollway: Tollway, key: str) -> None:
    preflight = httpx.options(
        f"{tollway.url}/v1/chat/completions",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    response = httpx.get(
        f"{tollway.url}/v1/models",
        headers={"authorization": f"Bearer {key}", "origin": "https://evil.example"},
    )
    assert response.status_code == 200
    assert not any(name.startswith("access-control-") for name in response.headers)


# -- bad upstream data ------------------------------------------------------------------------------------


def test_sse_data_that_is_not_json_never_reaches_the_sdk(tollway: Tollway, key: str) -> None:
    client = sdk(tollway, key, max_retries=0)
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=HI,  # type: ignore[arg-type]
        stream=True,
        extra_body={"mock": {"sse_style": "garbage"}},
    )
    chunks = list(stream)  # the SDK would raise on `data: not json`
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == WORDS
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8


@pytest.mark.parametrize(
    "report",
    [
        {"prompt_tokens": 1e30, "completion_tokens": 8, "total_tokens": 1e30},
        {"prompt_tokens": 6.0, "completion_tokens": 8, "total_tokens": 14},
        {"prompt_tokens": -6, "completion_tokens": 8, "total_tokens": 2},
        {"prompt_tokens": 2**53, "completion_tokens": 8},
        {"prompt_tokens": 2**50, "completion_tokens": 8},  # an integer, but a cost past $1,000,000
        "lots",
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_an_invalid_usage_report_is_counted_billed_and_marked(
    tollway: Tollway, report: Any, stream: bool
) -> None:
    account = tollway.new_account("bad-usage")
    client = sdk(tollway, account.key, max_retries=0)
    extra = {"mock": {"usage_override": report}}
    if stream:
        chunks = list(
            client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True, extra_body=extra)  # type: ignore[arg-type]
        )
        usage = chunks[-1].usage
        request_id = None
    else:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=HI, extra_body=extra
        )  # type: ignore[arg-type]
        usage = raw.parse().usage
        request_id = raw.headers["x-request-id"]
        assert raw.headers["x-request-cost"] == format_usd(nanos(COUNTED_PROMPT, 8))
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (COUNTED_PROMPT, 8)
    rows = tollway.db.mappings(
        "SELECT id, prompt_source, completion_source, report_invalid, cost_nano FROM usage_records "
        "WHERE workspace_id = ?",
        account.workspace_id,
    )
    assert len(rows) == 1
    row = rows[0]
    assert (row["prompt_source"], row["completion_source"], bool(row["report_invalid"])) == (
        "counted",
        "counted",
        True,
    )
    assert row["cost_nano"] == nanos(COUNTED_PROMPT, 8)
    assert tollway.balance(account)["balance_usd"] == format_usd(10_000_000_000 - nanos(COUNTED_PROMPT, 8))
    record = httpx.get(
        f"{tollway.url}/v1/usage/requests/{request_id or row['id']}",
        headers={"authorization": f"Bearer {account.key}"},
    ).json()
    assert record["sources"]["upstream_report_invalid"] is True


# -- money that would not fit ---------------------------------------------------------------------------


def test_a_credit_past_the_maximum_balance_is_a_400_naming_it(tollway: Tollway) -> None:
    account = tollway.new_account("rich", credit_usd=None)
    path = f"/admin/workspaces/{account.workspace_id}/credits"
    first = tollway.admin("POST", path, json={"amount_usd": "999999999.000000000"})
    assert first.status_code == 201
    second = tollway.admin("POST", path, json={"amount_usd": "999999999.000000000"})
    assert second.status_code == 400
    error = second.json()["error"]
    assert (error["param"], error["code"]) == ("amount_usd", "balance_too_large")
    assert "1000000000.000000000" in error["message"]
    too_big = tollway.admin("POST", path, json={"amount_usd": "9" * 30})
    assert too_big.status_code == 400 and "1000000000.000000000" in too_big.json()["error"]["message"]
    assert tollway.balance(account)["balance_usd"] == "999999999.000000000"
    assert [kind for kind, *_ in ledger_rows(tollway, account.workspace_id)] == ["credit"]
