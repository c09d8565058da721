"""`POST /v1/responses` end to end: the official openai SDK against tollway and `tollway mock-upstream`.

Costs are exact (nano-dollars at the test RATES, `nanos`), counted usage is worked out here with
tiktoken itself by SPEC §6's rule, and the ledger is read directly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import openai
import pytest

from tests.e2e.conftest import Account, Mock, Tollway, nanos
from tests.e2e.test_billing import balance_nano, rows, usage_row, usd
from tollway.tokens import TokenCounter

WORDS = " the of and to in is it for"  # the mock's 8 default words, one token each
HI = "Say hi"
REPORTED_PROMPT = 6  # the mock's estimate: 5 per message + characters // 4
ENCODINGS = {"counted": "o200k_base", "gpt-4-counted": "cl100k_base"}


def sdk(tollway: Tollway, account: Account) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{tollway.url}/v1", api_key=account.key, max_retries=0)


@pytest.fixture(name="account")
def fixture_account(tollway: Tollway) -> Account:
    return tollway.new_account("responses", credit_usd="1.00")


@pytest.fixture(name="client")
def fixture_client(tollway: Tollway, account: Account) -> Iterator[openai.OpenAI]:
    with sdk(tollway, account) as client:
        yield client


def cost_of(usage: Any) -> Decimal:
    return Decimal(str(usage.model_extra["cost"]))


def debits(tollway: Tollway, request_id: str) -> list[int]:
    found = rows(
        tollway,
        "select amount_nano from ledger_entries where reservation_id = ? and kind = 'debit'",
        request_id,
    )
    return [int(amount) for (amount,) in found]


def record_view(tollway: Tollway, account: Account, request_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{tollway.url}/v1/usage/requests/{request_id}", headers={"authorization": f"Bearer {account.key}"}
    )
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


def wait_for_record(tollway: Tollway, request_id: str) -> dict[str, Any]:
    for _ in range(200):
        if rows(tollway, "select count(*) from usage_records where id = ?", request_id) == [(1,)]:
            return usage_row(tollway, request_id)
        time.sleep(0.02)
    raise AssertionError(f"no usage record for {request_id}")


def chat_count(counter: TokenCounter, encoding: str, messages: list[tuple[str, list[str]]]) -> int:
    """OpenAI's chat rule with plain tiktoken: 3 per message + role + each text, 3 priming the reply."""
    enc = counter.encoding(encoding)
    total = 3
    for role, texts in messages:
        total += 3 + len(enc.encode_ordinary(role)) + sum(len(enc.encode_ordinary(t)) for t in texts)
    return total


def sse_frames(raw: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for frame in raw.split("\n\n"):
        if not frame.strip():
            continue
        name, data = frame.split("\n", 1)
        assert name.startswith("event: ") and data.startswith("data: "), frame
        found.append((name.removeprefix("event: "), msgspec.json.decode(data.removeprefix("data: "))))
    return found


# -- non-stream -------------------------------------------------------------------------------------


def test_non_stream_exact_cost_headers_ledger_and_record(
    tollway: Tollway, mock: Mock, account: Account, client: openai.OpenAI
) -> None:
    raw = client.responses.with_raw_response.create(
        model="gpt-4o-mini", input=HI, extra_body={"vendor_thing": {"nested": [1, None]}}
    )
    response = raw.parse()
    assert response.output_text == WORDS
    assert (response.object, response.status, response.model) == ("response", "completed", "gpt-4o-mini")
    usage = response.usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (REPORTED_PROMPT, 8, 14)
    assert (usage.input_tokens_details.cached_tokens, usage.output_tokens_details.reasoning_tokens) == (0, 0)
    expected = nanos(REPORTED_PROMPT, 8)
    assert cost_of(usage) == Decimal(expected) / 10**9
    request_id = raw.headers["x-request-id"]
    assert raw.headers["x-request-cost"] == usd(expected)
    assert raw.headers["x-tokens-used"] == "14"
    assert raw.headers["x-balance-remaining"] == usd(10**9 - expected)
    assert debits(tollway, request_id) == [-expected]
    assert balance_nano(tollway, account) == 10**9 - expected
    view = record_view(tollway, account, request_id)
    assert (view["operation_type"], view["model"], view["upstream_model"], view["stream"]) == (
        "responses",
        "gpt-4o-mini",
        "demo",
        False,
    )
    assert view["end_state"] == "completed"
    assert view["tokens"]["prompt"] == REPORTED_PROMPT and view["sources"]["prompt"] == "upstream"
    forwarded: dict[str, Any] = mock.last_request()["body"]  # type: ignore[assignment]
    assert forwarded == {"model": "demo", "input": HI, "vendor_thing": {"nested": [1, None]}}


def test_a_model_served_under_its_own_name_shows_the_upstreams(client: openai.OpenAI) -> None:
    assert client.responses.create(model="demo", input=HI).model == "demo"


def test_cached_reasoning_and_tool_calls(client: openai.OpenAI) -> None:
    knobs = {"reasoning_text": True, "prompt_tokens": 40, "cached_tokens": 10}
    response = client.responses.create(model="gpt-4o-mini", input=HI, extra_body={"mock": knobs})
    assert [item.type for item in response.output] == ["reasoning", "message"]
    usage = response.usage
    assert usage is not None
    assert (usage.input_tokens, usage.input_tokens_details.cached_tokens) == (40, 10)
    assert (usage.output_tokens, usage.output_tokens_details.reasoning_tokens) == (11, 3)
    assert cost_of(usage) == Decimal(nanos(40, 11, cached=10, reasoning=3)) / 10**9
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
    called = client.responses.create(
        model="gpt-4o-mini", input=HI, tools=tools, extra_body={"mock": {"tool_call": True}}
    )
    call = called.output[0]
    assert (call.type, call.name, call.arguments) == ("function_call", "get_weather", '{"city": "Paris"}')


# -- streams ----------------------------------------------------------------------------------------


def test_stream_events_and_terminal_usage(tollway: Tollway, account: Account, client: openai.OpenAI) -> None:
    raw = client.responses.with_raw_response.create(model="gpt-4o-mini", input=HI, stream=True)
    request_id = raw.headers["x-request-id"]
    events = list(raw.parse())
    assert [e.type for e in events[:4]] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert events[-1].type == "response.completed"
    numbers = [e.sequence_number for e in events]
    assert numbers == sorted(set(numbers))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == WORDS
    final = events[-1].response
    assert final.model == "gpt-4o-mini" and final.output_text == WORDS
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (REPORTED_PROMPT, 8)
    expected = nanos(REPORTED_PROMPT, 8)
    assert cost_of(final.usage) == Decimal(expected) / 10**9
    assert debits(tollway, request_id) == [-expected]
    record = usage_row(tollway, request_id)
    assert (record["operation_type"], bool(record["stream"]), record["end_state"]) == (
        "responses",
        True,
        "completed",
    )


def test_stream_on_the_wire_has_event_names_and_no_done(tollway: Tollway, account: Account) -> None:
    response = httpx.post(
        f"{tollway.url}/v1/responses",
        headers={"authorization": f"Bearer {account.key}"},
        json={"model": "gpt-4o-mini", "input": HI, "stream": True},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "[DONE]" not in response.text
    frames = sse_frames(response.text)
    assert all(name == data["type"] for name, data in frames)
    assert frames[-1][0] == "response.completed"
    assert [name for name, _ in frames].count("response.output_text.delta") == 8


def test_the_sdk_stream_helper(client: openai.OpenAI) -> None:
    with client.responses.stream(model="gpt-4o-mini", input=HI, instructions="Be brief.") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == WORDS == final.output_text
    assert final.usage is not None
    # instructions + input: two messages, 5 each + 15 characters // 4
    assert (final.usage.input_tokens, final.usage.output_tokens) == (13, 8)
    assert cost_of(final.usage) == Decimal(nanos(13, 8)) / 10**9


# -- counted usage ----------------------------------------------------------------------------------

ITEMS = [
    {"role": "user", "content": [{"type": "input_text", "text": "Say hi"}]},
    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello there!"}]},
    {"role": "user", "content": "Once more, in French."},
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", ["counted", "gpt-4-counted"])
def test_usage_absent_is_counted_by_the_rule(
    tollway: Tollway, account: Account, client: openai.OpenAI, counter: TokenCounter, model: str, stream: bool
) -> None:
    encoding = ENCODINGS[model]
    prompt = chat_count(
        counter,
        encoding,
        [
            ("system", ["Be brief."]),
            ("user", ["Say hi"]),
            ("assistant", ["Hello there!"]),
            ("user", ["Once more, in French."]),
        ],
    )
    completion = len(counter.encoding(encoding).encode_ordinary(WORDS))
    assert completion == 8
    raw = client.responses.with_raw_response.create(
        model=model, input=ITEMS, instructions="Be brief.", stream=stream
    )
    request_id = raw.headers["x-request-id"]
    if stream:
        events = list(raw.parse())
        assert events[-1].type == "response.completed"
        usage = events[-1].response.usage
    else:
        response = raw.parse()
        assert response.model == model
        usage = response.usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (
        prompt,
        completion,
        prompt + completion,
    )
    assert cost_of(usage) == Decimal(nanos(prompt, completion)) / 10**9
    record = usage_row(tollway, request_id)
    assert (record["prompt_source"], record["completion_source"]) == ("counted", "counted")
    assert debits(tollway, request_id) == [-nanos(prompt, completion)]


def test_counted_function_call_arguments(client: openai.OpenAI, counter: TokenCounter) -> None:
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
    events = list(
        client.responses.create(
            model="counted", input=HI, tools=tools, stream=True, extra_body={"mock": {"tool_call": True}}
        )
    )
    enc = counter.encoding("o200k_base")
    prompt = chat_count(counter, "o200k_base", [("user", [HI])])
    prompt += len(enc.encode_ordinary(msgspec.json.encode(tools[0]).decode()))  # tools: compact JSON
    usage = events[-1].response.usage
    assert (usage.input_tokens, usage.output_tokens) == (
        prompt,
        len(enc.encode_ordinary('{"city": "Paris"}')),
    )


# -- broken streams ---------------------------------------------------------------------------------


def test_a_cut_stream_ends_with_a_synthesized_failure(
    tollway: Tollway, account: Account, client: openai.OpenAI, counter: TokenCounter
) -> None:
    raw = client.responses.with_raw_response.create(
        model="gpt-4o-mini", input=HI, stream=True, extra_body={"mock": {"cut_after": 2}}
    )
    request_id = raw.headers["x-request-id"]
    events = list(raw.parse())
    assert [e.type for e in events].count("response.output_text.delta") == 2
    failed = events[-1]
    assert failed.type == "response.failed"
    assert failed.sequence_number > events[-2].sequence_number
    assert failed.response.id == events[0].response.id
    assert (failed.response.status, failed.response.error.code) == ("failed", "upstream_error")
    prompt = chat_count(counter, "o200k_base", [("user", [HI])])  # the upstream never reported usage
    assert (failed.response.usage.input_tokens, failed.response.usage.output_tokens) == (prompt, 2)
    expected = nanos(prompt, 2)
    assert cost_of(failed.response.usage) == Decimal(expected) / 10**9
    record = usage_row(tollway, request_id)
    assert (record["end_state"], record["completion_source"], record["cost_nano"]) == (
        "upstream_broke_off",
        "counted",
        expected,
    )
    assert debits(tollway, request_id) == [-expected]


def test_an_error_event_ends_with_a_failure_billed_for_what_was_delivered(
    tollway: Tollway, client: openai.OpenAI
) -> None:
    raw = client.responses.with_raw_response.create(
        model="gpt-4o-mini", input=HI, stream=True, extra_body={"mock": {"error_after": 1}}
    )
    events = list(raw.parse())
    assert "error" not in [e.type for e in events]
    failed = events[-1]
    assert failed.type == "response.failed"
    assert failed.response.error.code == "upstream_error"
    # the upstream's message, scrubbed ("upstream" is a piece of the upstream key in this suite)
    assert failed.response.error.message == "The upstream broke off mid-stream: mock [redacted] failure"
    assert failed.response.usage.output_tokens == 1
    record = usage_row(tollway, raw.headers["x-request-id"])
    assert (record["end_state"], record["completion_tokens"]) == ("upstream_broke_off", 1)


def test_client_disconnect_is_billed_and_cancels_the_upstream(
    tollway: Tollway, mock: Mock, account: Account
) -> None:
    before = mock.stats()
    body = {
        "model": "gpt-4o-mini",
        "input": HI,
        "stream": True,
        "mock": {"chunks": 200, "chunk_delay_ms": 30},
    }
    with httpx.stream(
        "POST",
        f"{tollway.url}/v1/responses",
        json=body,
        headers={"authorization": f"Bearer {account.key}"},
        timeout=10,
    ) as response:
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        seen = 0
        for line in response.iter_lines():
            seen += line == "event: response.output_text.delta"
            if seen == 3:
                break
    record = wait_for_record(tollway, request_id)
    assert (record["end_state"], record["completion_source"]) == ("client_disconnected", "counted")
    assert 3 <= record["completion_tokens"] < 200
    assert record["cost_nano"] == nanos(9, record["completion_tokens"])  # "Say hi" counted: 9
    deadline = time.monotonic() + 1.0
    while mock.stats()["streams_cancelled"] == before["streams_cancelled"] and time.monotonic() < deadline:
        time.sleep(0.02)
    after = mock.stats()
    assert after["streams_cancelled"] == before["streams_cancelled"] + 1
    assert after["active_streams"] == before["active_streams"]
    assert rows(
        tollway,
        "select held_nano from ledger_entries where workspace_id = ? order by ws_seq desc limit 1",
        account.workspace_id,
    ) == [(0,)]


# -- refusals cost nothing --------------------------------------------------------------------------


def test_a_poor_workspace_gets_402_and_pays_nothing(tollway: Tollway) -> None:
    account = tollway.new_account("poor-responses", credit_usd="0.0001")
    with sdk(tollway, account) as client, pytest.raises(openai.APIStatusError) as caught:
        client.responses.create(model="gpt-4o-mini", input=HI, max_output_tokens=8)
    assert caught.value.status_code == 402
    assert caught.value.response.headers["x-should-retry"] == "false"
    error = caught.value.response.json()["error"]
    assert error["code"] == "insufficient_credit"
    # worst case: (6 bytes + 8 per item + 16) at the 1.25 cache-write rate, 8 tokens at 3.00, the fee
    assert error["message"].startswith("Insufficient credit: this request needs $0.000161500 reserved")
    assert balance_nano(tollway, account) == 100_000
    assert rows(tollway, "select kind from ledger_entries where workspace_id = ?", account.workspace_id) == [
        ("credit",)
    ]


def test_an_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="no-such-model", input=HI)
    assert (caught.value.code, caught.value.body["param"]) == ("model_not_found", "model")  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": HI}, "model"),
        ({"model": "gpt-4o-mini", "input": 42}, "input"),
        ({"model": "gpt-4o-mini", "input": [{"role": "user", "content": "x"}, 7]}, "input[1]"),
        ({"model": "gpt-4o-mini", "input": HI, "instructions": {"x": 1}}, "instructions"),
        ({"model": "gpt-4o-mini", "input": HI, "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "gpt-4o-mini", "input": HI, "stream": "yes"}, "stream"),
        ({"model": "gpt-4o-mini", "input": HI, "tools": "all"}, "tools"),
    ],
)
def test_bad_input_is_400_naming_the_param(
    tollway: Tollway, account: Account, body: dict[str, Any], param: str
) -> None:
    response = httpx.post(
        f"{tollway.url}/v1/responses", headers={"authorization": f"Bearer {account.key}"}, json=body
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert response.headers["x-request-id"].startswith("req_")
    assert balance_nano(tollway, account) == 10**9


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_error_is_passed_through_and_free(
    tollway: Tollway, account: Account, stream: bool
) -> None:
    response = httpx.post(
        f"{tollway.url}/v1/responses",
        headers={"authorization": f"Bearer {account.key}"},
        json={"model": "gpt-4o-mini", "input": HI, "stream": stream, "mock": {"fail": 500}},
    )
    assert response.status_code == 500
    kinds = rows(
        tollway,
        "select kind from ledger_entries where workspace_id = ? order by ws_seq",
        account.workspace_id,
    )
    assert kinds == [("credit",), ("reserve",), ("release",)]


# -- reports ----------------------------------------------------------------------------------------


def test_reports_break_down_by_operation_type(tollway: Tollway) -> None:
    account = tollway.new_account("responses-report", credit_usd="1.00")
    headers = {"authorization": f"Bearer {account.key}"}
    with sdk(tollway, account) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": HI}])
        client.responses.create(model="gpt-4o-mini", input=HI)
        list(client.responses.create(model="gpt-4o-mini", input=HI, stream=True))
    report = httpx.get(f"{tollway.url}/v1/usage", headers=headers).json()
    assert [(r["operation_type"], r["model"], r["calls"], r["cost_usd"]) for r in report["breakdown"]] == [
        ("chat.completions", "gpt-4o-mini", 1, usd(nanos(6, 8))),
        ("responses", "gpt-4o-mini", 2, usd(2 * nanos(6, 8))),
    ]
    assert report["totals"]["cost_usd"] == usd(3 * nanos(6, 8))
    stats = httpx.get(f"{tollway.url}/v1/credits/usage", headers=headers).json()["stats"]
    assert sorted((s["operation_type"], s["call_count"]) for s in stats) == [
        ("chat.completions", 1),
        ("responses", 2),
    ]
    log = httpx.get(f"{tollway.url}/v1/credits/usage/log", headers=headers).json()["data"]
    assert [(r["operation_type"], r["stream"]) for r in log] == [
        ("responses", True),
        ("responses", False),
        ("chat.completions", False),
    ]
