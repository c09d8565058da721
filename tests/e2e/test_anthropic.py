"""`POST /v1/messages` and `/v1/messages/count_tokens` end to end: the official anthropic SDK
against tollway and `tollway mock-upstream` (which speaks Anthropic's Messages API).

Costs are exact (nano-dollars at the test RATES, `nanos`; cache reads at cached_input, cache
writes at cache_write, worked out here), and the ledger is read directly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.e2e.conftest import Account, Mock, Tollway, nanos
from tests.e2e.test_billing import balance_nano, rows, usd
from tests.e2e.test_responses import debits, wait_for_record
from tollway.tokens import TokenCounter

HI = [{"role": "user", "content": "Say hi"}]
REPORTED_PROMPT = 6  # the mock's estimate: 5 per message + characters // 4
WORDS = 8  # the mock's default answer: 8 words


def sdk(tollway: Tollway, key: str) -> anthropic.Anthropic:
    # The SDK adds /v1 itself.
    return anthropic.Anthropic(base_url=tollway.url, api_key=key, max_retries=0)


_OPEN: list[anthropic.Anthropic] = []


def stranger(tollway: Tollway, key: str) -> anthropic.Anthropic:
    """A client for one call, closed when the test ends."""
    client = sdk(tollway, key)
    _OPEN.append(client)
    return client


@pytest.fixture(autouse=True)
def fixture_close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


@pytest.fixture(name="account")
def fixture_account(tollway: Tollway) -> Account:
    return tollway.new_account("anthropic", credit_usd="1.00")


@pytest.fixture(name="client")
def fixture_client(tollway: Tollway, account: Account) -> Iterator[anthropic.Anthropic]:
    with sdk(tollway, account.key) as client:
        yield client


def cost_of(usage: Any) -> Decimal:
    return Decimal(str(usage.model_extra["cost"]))


def test_create_bills_cache_reads_and_writes_exactly(
    tollway: Tollway, account: Account, client: anthropic.Anthropic
) -> None:
    knobs = {"prompt_tokens": 20, "cached_tokens": 30, "cache_write_tokens": 40, "cache_write_1h_tokens": 10}
    before = balance_nano(tollway, account)
    raw = client.messages.with_raw_response.create(
        model="claude-test", max_tokens=100, messages=HI, extra_body={"mock": knobs}
    )
    message = raw.parse()
    # prompt = input (20, uncached) + cache reads (30) + cache writes (40)
    expected = nanos(90, WORDS, cached=30, cache_write=40, cache_write_1h=10)
    # 10 of the 40 cache writes are 1-hour ones, at 2.00 instead of 1.25 per million.
    assert expected == 20 * 1_000 + 30 * 500 + 30 * 1_250 + 10 * 2_000 + WORDS * 2_000 + 100_000
    assert message.usage.input_tokens == 20
    assert message.usage.cache_read_input_tokens == 30
    assert message.usage.cache_creation_input_tokens == 40
    assert message.usage.output_tokens == WORDS
    assert message.usage.cache_creation is not None
    assert message.usage.cache_creation.ephemeral_1h_input_tokens == 10
    assert cost_of(message.usage) == Decimal(usd(expected))
    assert raw.headers["x-request-cost"] == usd(expected)
    assert message.model == "claude-test"  # an alias of claude-mock: clients see the served name
    request_id = raw.headers["x-request-id"]
    assert debits(tollway, request_id) == [-expected]
    assert before - balance_nano(tollway, account) == expected
    record = wait_for_record(tollway, request_id)
    assert record["operation_type"] == "messages"
    assert (record["prompt_tokens"], record["completion_tokens"]) == (90, WORDS)


def test_stream_final_message_carries_usage_and_cost(
    tollway: Tollway, account: Account, client: anthropic.Anthropic
) -> None:
    knobs = {"cached_tokens": 4, "cache_write_tokens": 2}
    with client.messages.stream(
        model="claude-test", max_tokens=100, messages=HI, extra_body={"mock": knobs}
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]
    expected = nanos(REPORTED_PROMPT + 6, WORDS, cached=4, cache_write=2)
    deltas = [e for e in events if e.type == "message_delta"]
    assert len(deltas) == 1
    assert cost_of(deltas[0].usage) == Decimal(usd(expected))
    assert deltas[0].usage.output_tokens == WORDS
    assert final.usage.input_tokens == REPORTED_PROMPT
    assert final.usage.output_tokens == WORDS
    assert final.usage.cache_read_input_tokens == 4
    assert final.stop_reason == "end_turn"
    assert events[-1].type == "message_stop"
    assert debits(tollway, request_id) == [-expected]
    assert wait_for_record(tollway, request_id)["operation_type"] == "messages"


def test_thinking_and_tool_use_are_relayed(client: anthropic.Anthropic) -> None:
    knobs = {"tool_call": True, "reasoning_text": True}
    message = client.messages.create(
        model="claude-test", max_tokens=200, messages=HI, extra_body={"mock": knobs}
    )
    assert [block.type for block in message.content] == ["thinking", "tool_use"]
    with client.messages.stream(
        model="claude-test", max_tokens=200, messages=HI, extra_body={"mock": knobs}
    ) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["thinking", "tool_use"]
    assert final.content[1].input == message.content[1].input  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"


def test_missing_usage_is_counted(
    tollway: Tollway, account: Account, client: anthropic.Anthropic, counter: TokenCounter
) -> None:
    raw = client.messages.with_raw_response.create(model="claude-counted", max_tokens=100, messages=HI)
    message = raw.parse()
    text = "".join(block.text for block in message.content if block.type == "text")
    assert message.usage.output_tokens == counter.count_text("o200k_base", text)
    assert message.usage.input_tokens == REPORTED_PROMPT  # input usage is still reported
    record = wait_for_record(tollway, raw.headers["x-request-id"])
    assert record["completion_source"] == "counted"


def test_count_tokens_is_forwarded_and_not_billed(
    tollway: Tollway, account: Account, client: anthropic.Anthropic
) -> None:
    before = rows(tollway, "select count(*) from ledger_entries")
    counted = client.messages.count_tokens(model="claude-test", messages=HI)
    assert counted.input_tokens == REPORTED_PROMPT
    assert rows(tollway, "select count(*) from ledger_entries") == before
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.count_tokens(model="no-such-model", messages=HI)
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError):
        client.messages.count_tokens(model="gpt-4o-mini", messages=HI)
    with pytest.raises(anthropic.AuthenticationError):
        stranger(tollway, "tw-nope").messages.count_tokens(model="claude-test", messages=HI)


def test_x_api_key_and_bearer_both_authenticate(tollway: Tollway, account: Account) -> None:
    body = {"model": "claude-test", "max_tokens": 20, "messages": HI}
    version = {"anthropic-version": "2023-06-01"}
    for headers in ({"x-api-key": account.key}, {"authorization": f"Bearer {account.key}"}):
        response = httpx.post(f"{tollway.url}/v1/messages", headers={**headers, **version}, json=body)
        assert response.status_code == 200, response.text
    with anthropic.Anthropic(base_url=tollway.url, auth_token=account.key, max_retries=0) as bearer:
        assert bearer.messages.create(**body).usage.output_tokens == WORDS  # type: ignore[arg-type]


def test_claude_code_query_string_is_accepted(tollway: Tollway, account: Account) -> None:
    body = {"model": "claude-test", "max_tokens": 20, "messages": HI}
    headers = {"x-api-key": account.key, "anthropic-version": "2023-06-01", "anthropic-beta": "x-test"}
    response = httpx.post(f"{tollway.url}/v1/messages?beta=true", headers=headers, json=body)
    assert response.status_code == 200, response.text


def test_error_classes(tollway: Tollway, account: Account, client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.AuthenticationError) as unauthorized:
        stranger(tollway, "tw-nope").messages.create(model="claude-test", max_tokens=10, messages=HI)
    assert unauthorized.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="no-such-model", max_tokens=10, messages=HI)
    with pytest.raises(anthropic.BadRequestError) as bad:
        # The SDK's own `create` insists on max_tokens: send the body without it.
        client.post("/v1/messages", cast_to=httpx.Response, body={"model": "claude-test", "messages": HI})
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "max_tokens" in str(bad.value)
    with pytest.raises(anthropic.BadRequestError) as wrong:
        client.messages.create(model="gpt-4o-mini", max_tokens=10, messages=HI)
    assert "openai" in str(wrong.value)
    poor = tollway.new_account("anthropic-poor", credit_usd="0.0000001")
    with pytest.raises(anthropic.APIStatusError) as unpaid:
        stranger(tollway, poor.key).messages.create(model="claude-test", max_tokens=10, messages=HI)
    assert unpaid.value.status_code == 402
    assert unpaid.value.body["error"]["type"] == "billing_error"  # type: ignore[index]
    assert unpaid.value.response.headers["x-should-retry"] == "false"


def test_spend_limit_is_a_rate_limit_error_not_retried(tollway: Tollway) -> None:
    capped = tollway.new_account("anthropic-capped", credit_usd="5.00", spend_limit_usd="0.0000001")
    with pytest.raises(anthropic.RateLimitError) as limited:
        stranger(tollway, capped.key).messages.create(model="claude-test", max_tokens=10, messages=HI)
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert "limit" in limited.value.body["error"]["message"]  # type: ignore[index]
    assert limited.value.response.headers["x-should-retry"] == "false"


def test_upstream_overloaded_passes_through_and_is_free(
    tollway: Tollway, account: Account, client: anthropic.Anthropic
) -> None:
    before = balance_nano(tollway, account)
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        client.messages.create(
            model="claude-test", max_tokens=10, messages=HI, extra_body={"mock": {"fail": 529}}
        )
    assert overloaded.value.status_code == 529
    assert (
        isinstance(overloaded.value, anthropic.OverloadedError)
        or overloaded.value.body["error"]["type"] == "overloaded_error"
    )  # type: ignore[index]
    assert balance_nano(tollway, account) == before


def test_mid_stream_overload_is_billed_like_a_break_off(
    tollway: Tollway, account: Account, client: anthropic.Anthropic, counter: TokenCounter
) -> None:
    seen: list[Any] = []

    def consume() -> str:
        with client.messages.stream(
            model="claude-test",
            max_tokens=100,
            messages=HI,
            extra_body={"mock": {"chunks": 4, "error_after": 2}},
        ) as stream:
            request_id = stream.response.headers["x-request-id"]
            try:
                seen.extend(stream)
            except anthropic.APIStatusError as exc:
                failures.append(exc)
        return request_id

    failures: list[anthropic.APIStatusError] = []
    request_id = consume()
    [failed] = failures
    assert "Overloaded" in str(failed)
    delivered = "".join(e.delta.text for e in seen if e.type == "content_block_delta")
    completion = counter.count_text("o200k_base", delivered)
    expected = nanos(REPORTED_PROMPT, completion)
    assert debits(tollway, request_id) == [-expected]
    record = wait_for_record(tollway, request_id)
    assert record["operation_type"] == "messages"


def test_wrong_surface_names_the_right_one(tollway: Tollway, account: Account) -> None:
    with (
        openai.OpenAI(base_url=f"{tollway.url}/v1", api_key=account.key, max_retries=0) as client,
        pytest.raises(openai.BadRequestError) as wrong,
    ):
        client.chat.completions.create(model="claude-test", messages=[{"role": "user", "content": "hi"}])
    assert "POST /v1/messages" in str(wrong.value)


def test_usage_report_breaks_messages_out(tollway: Tollway) -> None:
    account = tollway.new_account("anthropic-report")
    with sdk(tollway, account.key) as client:
        client.messages.create(model="claude-test", max_tokens=100, messages=HI)
    headers = {"authorization": f"Bearer {account.key}"}
    report = httpx.get(f"{tollway.url}/v1/usage", headers=headers).json()
    assert [(r["operation_type"], r["model"], r["calls"]) for r in report["breakdown"]] == [
        ("messages", "claude-test", 1)
    ]
    assert report["totals"]["cost_usd"] == usd(nanos(REPORTED_PROMPT, WORDS))


def test_a_client_that_disconnects_mid_stream_is_billed_for_what_was_produced(
    tollway: Tollway, account: Account, mock: Mock, counter: TokenCounter
) -> None:
    """Input usage comes from message_start; the output is counted (o200k, estimated) up to the cut."""
    cancelled = mock.stats()["streams_cancelled"]
    body = {
        "model": "claude-test",
        "max_tokens": 400,
        "messages": HI,
        "stream": True,
        "mock": {"chunks": 300, "chunk_delay_ms": 30},
    }
    with httpx.stream(
        "POST",
        f"{tollway.url}/v1/messages",
        json=body,
        headers={"x-api-key": account.key, "anthropic-version": "2023-06-01"},
    ) as response:
        request_id = response.headers["x-request-id"]
        for line in response.iter_lines():
            if line.startswith("data: ") and '"text_delta"' in line and '" of"' in line:
                break
    record = wait_for_record(tollway, request_id)
    assert record["end_state"] == "client_disconnected"
    assert (record["prompt_source"], record["completion_source"], bool(record["estimated"])) == (
        "upstream",
        "counted",
        True,
    )
    assert 2 <= record["completion_tokens"] < 300
    assert record["prompt_tokens"] == REPORTED_PROMPT
    assert debits(tollway, request_id) == [-nanos(REPORTED_PROMPT, record["completion_tokens"])]
    for _ in range(100):  # the upstream request was cancelled, not left running
        if mock.stats()["streams_cancelled"] > cancelled:
            break
        time.sleep(0.02)
    assert mock.stats()["streams_cancelled"] > cancelled
    held = rows(
        tollway,
        "select held_nano from ledger_entries where workspace_id = ? order by ws_seq desc limit 1",
        account.workspace_id,
    )
    assert held == [(0,)]
