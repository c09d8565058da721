"""POST /v1/completions end to end: the official openai SDK against tollway and `tollway mock-upstream`.

Stream and non-stream, exact costs, the chat rules for how a stream ends, usage counted where the
upstream leaves it out, and requests that cost nothing.
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
from tollway.tokens import load_encoding

WORDS = " the of and to in is it for"  # the mock's 8 default words, one token each
PROMPT = "Say hi"
REPORTED_PROMPT = 2  # the mock: one token per four characters, rounded up


def usd(nano: int) -> str:
    return f"{nano // 10**9}.{nano % 10**9:09d}"


@pytest.fixture(name="encodings", scope="module")
def fixture_encodings() -> dict[str, Any]:
    return {name: load_encoding(name) for name in ("cl100k_base", "o200k_base")}


def tokens(encodings: dict[str, Any], encoding: str, text: str) -> int:
    return len(encodings[encoding].encode_ordinary(text))


@pytest.fixture(name="account")
def fixture_account(tollway: Tollway) -> Account:
    return tollway.new_account("completions", credit_usd="1.00")


@pytest.fixture(name="client")
def fixture_client(tollway: Tollway, account: Account) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{tollway.url}/v1", api_key=account.key, max_retries=0) as client:
        yield client


def record(tollway: Tollway, request_id: str) -> dict[str, Any]:
    for _ in range(200):  # a stream's record lands as it closes
        found = tollway.db.mappings("select * from usage_records where id = ?", request_id)
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"no usage record {request_id}")


def view(tollway: Tollway, account: Account, request_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{tollway.url}/v1/usage/requests/{request_id}", headers={"authorization": f"Bearer {account.key}"}
    )
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def balance_nano(tollway: Tollway, account: Account) -> int:
    [(balance,)] = tollway.db.rows(
        "select balance_nano from ledger_entries where workspace_id = ? order by ws_seq desc limit 1",
        account.workspace_id,
    )
    return int(balance)


def ledger(tollway: Tollway, account: Account) -> list[tuple[str, int]]:
    rows = tollway.db.rows(
        "select kind, held_nano from ledger_entries where workspace_id = ? order by ws_seq",
        account.workspace_id,
    )
    return [(kind, int(held)) for kind, held in rows]


def cost_of(usage: Any) -> Decimal:
    return Decimal(str(usage.model_extra["cost"]))


def sse(tollway: Tollway, account: Account, body: dict[str, Any]) -> tuple[httpx.Response, list[bytes]]:
    response = httpx.post(
        f"{tollway.url}/v1/completions", json=body, headers={"authorization": f"Bearer {account.key}"}
    )
    return response, [e for e in response.content.split(b"\n\n") if e]


def test_non_stream(tollway: Tollway, mock: Mock, account: Account, client: openai.OpenAI) -> None:
    raw = client.completions.with_raw_response.create(
        model="gpt-4o-mini", prompt=PROMPT, extra_body={"vendor": {"x": [1, None]}}
    )
    completion = raw.parse()
    assert completion.object == "text_completion"
    assert completion.id.startswith("cmpl-mock-")
    assert completion.model == "gpt-4o-mini"  # an alias of demo: the served name
    assert [(c.text, c.index, c.finish_reason) for c in completion.choices] == [(WORDS, 0, "stop")]
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (REPORTED_PROMPT, 8, 10)
    details = usage.prompt_tokens_details.model_dump()  # type: ignore[union-attr]
    assert (details["cached_tokens"], details["cache_write_tokens"]) == (0, 0)
    expected = nanos(REPORTED_PROMPT, 8)
    assert cost_of(usage) == Decimal(expected) / 10**9
    assert raw.headers["x-request-cost"] == usd(expected)
    assert raw.headers["x-tokens-used"] == "10"
    assert raw.headers["x-balance-remaining"] == usd(10**9 - expected)
    assert balance_nano(tollway, account) == 10**9 - expected
    forwarded = mock.last_request()["body"]
    assert forwarded == {"model": "demo", "prompt": PROMPT, "vendor": {"x": [1, None]}}
    request_id = raw.headers["x-request-id"]
    row = record(tollway, request_id)
    assert (row["operation_type"], row["cost_nano"], row["end_state"], bool(row["stream"])) == (
        "completions",
        expected,
        "completed",
        False,
    )
    seen = view(tollway, account, request_id)
    assert (seen["operation_type"], seen["model"], seen["upstream_model"]) == (
        "completions",
        "gpt-4o-mini",
        "demo",
    )
    assert seen["sources"]["prompt"] == "upstream"


@pytest.mark.parametrize("stream_options", [None, {"include_usage": True}, {"include_usage": False}])
def test_stream_ends_with_one_usage_chunk_then_done(
    tollway: Tollway, mock: Mock, account: Account, client: openai.OpenAI, stream_options: Any
) -> None:
    extra = {} if stream_options is None else {"stream_options": stream_options}
    raw = client.completions.with_raw_response.create(
        model="gpt-4o-mini", prompt=PROMPT, stream=True, **extra
    )
    request_id = raw.headers["x-request-id"]
    chunks = list(raw.parse())
    assert "".join(c.choices[0].text for c in chunks if c.choices) == WORDS
    assert all(c.object == "text_completion" and c.model == "gpt-4o-mini" for c in chunks)
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1 and with_usage[0] is chunks[-1]
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (REPORTED_PROMPT, 8)
    expected = nanos(REPORTED_PROMPT, 8)
    assert cost_of(usage) == Decimal(expected) / 10**9
    assert mock.last_request()["body"]["stream_options"]["include_usage"] is True  # type: ignore[index]
    row = record(tollway, request_id)
    assert (row["operation_type"], bool(row["stream"]), row["end_state"], row["cost_nano"]) == (
        "completions",
        True,
        "completed",
        expected,
    )


def test_the_raw_stream_ends_with_done(tollway: Tollway, account: Account) -> None:
    response, events = sse(tollway, account, {"model": "gpt-4o-mini", "prompt": PROMPT, "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-request-id"]
    assert events[-1] == b"data: [DONE]"
    closing = msgspec.json.decode(events[-2].removeprefix(b"data: "))
    assert (closing["object"], closing["choices"]) == ("text_completion", [])
    assert closing["usage"]["total_tokens"] == REPORTED_PROMPT + 8
    assert sum(b'"usage":{' in e for e in events) == 1


@pytest.mark.parametrize("stream", [False, True])
def test_missing_usage_is_counted_with_tiktoken(
    tollway: Tollway, account: Account, client: openai.OpenAI, encodings: dict[str, Any], stream: bool
) -> None:
    prompts = ["Say hi", "Once upon a time"]
    prompt = sum(tokens(encodings, "cl100k_base", p) for p in prompts)  # each string, no chat overhead
    completion = tokens(encodings, "cl100k_base", WORDS * 2)  # the text relayed, both choices
    model = "gpt-4-counted"  # demo:usage=absent, counted with cl100k_base
    if stream:
        raw = client.completions.with_raw_response.create(model=model, prompt=prompts, stream=True)
        usage = list(raw.parse())[-1].usage
    else:
        raw = client.completions.with_raw_response.create(model=model, prompt=prompts)
        usage = raw.parse().usage
        assert raw.headers["x-request-cost"] == usd(nanos(prompt, completion))
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (prompt, completion)
    assert cost_of(usage) == Decimal(nanos(prompt, completion)) / 10**9
    row = record(tollway, raw.headers["x-request-id"])
    assert (row["prompt_source"], row["completion_source"], row["estimated"]) == ("counted", "counted", False)
    assert (row["prompt_tokens"], row["completion_tokens"], row["cost_nano"]) == (
        prompt,
        completion,
        nanos(prompt, completion),
    )


def test_echo_and_n_are_billed_for_the_text_returned(
    tollway: Tollway, client: openai.OpenAI, encodings: dict[str, Any]
) -> None:
    raw = client.completions.with_raw_response.create(model="gpt-4-counted", prompt=PROMPT, echo=True, n=2)
    completion = raw.parse()
    assert [c.text for c in completion.choices] == [PROMPT + WORDS] * 2
    expected = tokens(encodings, "cl100k_base", (PROMPT + WORDS) * 2)
    assert completion.usage is not None and completion.usage.completion_tokens == expected


def test_token_array_prompts(client: openai.OpenAI, mock: Mock) -> None:
    completion = client.completions.create(model="gpt-4-counted", prompt=[[9906, 1917], [13]])
    assert mock.last_request()["body"]["prompt"] == [[9906, 1917], [13]]  # type: ignore[index]
    assert len(completion.choices) == 2
    assert completion.usage is not None and completion.usage.prompt_tokens == 3


def test_with_choice_closing_chunk_is_not_the_default(tollway: Tollway, account: Account) -> None:
    # The shared server keeps OpenAI's shape: the closing chunk has no choices at all.
    _, events = sse(tollway, account, {"model": "gpt-4o-mini", "prompt": PROMPT, "stream": True})
    assert msgspec.json.decode(events[-2].removeprefix(b"data: "))["choices"] == []


def test_a_cut_stream_is_billed_for_what_was_delivered(
    tollway: Tollway, account: Account, encodings: dict[str, Any]
) -> None:
    body = {"model": "gpt-4o-mini", "prompt": PROMPT, "stream": True, "mock": {"cut_after": 3}}
    response, events = sse(tollway, account, body)
    texts = [
        msgspec.json.decode(e.removeprefix(b"data: "))["choices"][0]["text"]
        for e in events
        if b'"choices":[{' in e
    ]
    assert "".join(texts) == " the of and"
    closing = msgspec.json.decode(events[-2].removeprefix(b"data: "))
    error = msgspec.json.decode(events[-1].removeprefix(b"data: "))
    assert error["error"]["code"] == "upstream_error"
    assert b"data: [DONE]" not in events
    prompt = tokens(encodings, "o200k_base", PROMPT)  # no usage came: counted, gpt-4o-mini's guess
    assert (closing["usage"]["prompt_tokens"], closing["usage"]["completion_tokens"]) == (prompt, 3)
    row = record(tollway, response.headers["x-request-id"])
    assert (row["end_state"], row["completion_source"], row["completion_tokens"]) == (
        "upstream_broke_off",
        "counted",
        3,
    )
    assert row["cost_nano"] == nanos(prompt, 3)
    assert balance_nano(tollway, account) == 10**9 - nanos(prompt, 3)


def test_an_error_mid_stream_bills_the_text_before_it(tollway: Tollway, account: Account) -> None:
    body = {"model": "gpt-4-counted", "prompt": PROMPT, "stream": True, "mock": {"error_after": 2}}
    response, events = sse(tollway, account, body)
    assert msgspec.json.decode(events[-1].removeprefix(b"data: "))["error"]["code"] == "upstream_error"
    row = record(tollway, response.headers["x-request-id"])
    assert (row["end_state"], row["completion_tokens"]) == ("upstream_broke_off", 2)


def test_client_disconnect_is_billed_for_what_the_upstream_produced(
    tollway: Tollway, account: Account, encodings: dict[str, Any]
) -> None:
    body = {
        "model": "gpt-4o-mini",
        "prompt": PROMPT,
        "stream": True,
        "mock": {"chunks": 200, "chunk_delay_ms": 30},
    }
    with httpx.stream(
        "POST", f"{tollway.url}/v1/completions", json=body, headers={"authorization": f"Bearer {account.key}"}
    ) as response:
        request_id = response.headers["x-request-id"]
        for line in response.iter_lines():
            if line.startswith("data: ") and '" of"' in line:
                break
    row = record(tollway, request_id)
    assert (row["end_state"], row["completion_source"]) == ("client_disconnected", "counted")
    assert 2 <= row["completion_tokens"] < 200
    prompt = tokens(encodings, "o200k_base", PROMPT)
    assert row["cost_nano"] == nanos(prompt, row["completion_tokens"])
    assert ledger(tollway, account)[-1] == ("debit", 0)  # nothing left reserved


def test_insufficient_credit_is_a_402_that_costs_nothing(tollway: Tollway) -> None:
    account = tollway.new_account("completions-poor", credit_usd="0.0001")
    client = openai.OpenAI(base_url=f"{tollway.url}/v1", api_key=account.key, max_retries=3)
    with client, pytest.raises(openai.APIStatusError) as caught:
        client.completions.create(model="gpt-4o-mini", prompt=PROMPT, max_tokens=8)
    assert caught.value.status_code == 402
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert caught.value.code == "insufficient_credit"
    # 6 bytes at the 1.25 cache-write rate + 8 tokens at 3.00 + the fee (gpt-4o-mini's upstream model
    # "demo" has a guessed encoding, so no tighter tiktoken bound is tried)
    assert "needs $0.000131500 reserved (its worst case: 6 prompt + 8 output tokens" in caught.value.message
    assert ledger(tollway, account) == [("credit", 0)]
    assert balance_nano(tollway, account) == 100_000


def test_the_reservation_covers_the_models_cap_when_max_tokens_is_absent(tollway: Tollway) -> None:
    # No max_tokens and no max_output_tokens on the model: 16,384 tokens at the 3.00 rate are
    # reserved (OpenAI's default of 16 is not assumed), so $0.01 is not enough.
    account = tollway.new_account("completions-cap", credit_usd="0.01")
    response = httpx.post(
        f"{tollway.url}/v1/completions",
        json={"model": "gpt-4o-mini", "prompt": PROMPT},
        headers={"authorization": f"Bearer {account.key}"},
    )
    assert response.status_code == 402
    assert "16384 output tokens" in response.json()["error"]["message"]
    ok = httpx.post(
        f"{tollway.url}/v1/completions",
        json={"model": "gpt-4o-mini", "prompt": PROMPT, "max_tokens": 16},
        headers={"authorization": f"Bearer {account.key}"},
    )
    assert ok.status_code == 200


def test_unknown_model_is_a_404(tollway: Tollway, account: Account, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.completions.create(model="davinci-404", prompt=PROMPT)
    assert caught.value.code == "model_not_found"
    assert ledger(tollway, account) == [("credit", 0)]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"prompt": []}, "prompt"),
        ({"prompt": None}, "prompt"),
        ({"prompt": ["a", 2]}, "prompt[1]"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 2**53}, "max_tokens"),
        ({"n": 129}, "n"),
        ({"best_of": 21}, "best_of"),
        ({"n": 4, "best_of": 3}, "best_of"),
        ({"echo": "yes"}, "echo"),
        ({"stream": "yes"}, "stream"),
        ({"stream_options": "x"}, "stream_options"),
    ],
)
def test_bad_input_is_a_400_naming_the_param(
    tollway: Tollway, account: Account, fields: dict[str, Any], param: str
) -> None:
    response = httpx.post(
        f"{tollway.url}/v1/completions",
        json={"model": "gpt-4o-mini", "prompt": PROMPT, **fields},
        headers={"authorization": f"Bearer {account.key}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert ledger(tollway, account) == [("credit", 0)]


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_failure_costs_nothing(tollway: Tollway, account: Account, stream: bool) -> None:
    response = httpx.post(
        f"{tollway.url}/v1/completions",
        json={"model": "gpt-4o-mini", "prompt": PROMPT, "stream": stream, "mock": {"fail": 429}},
        headers={"authorization": f"Bearer {account.key}"},
    )
    assert response.status_code == 429
    assert [kind for kind, _ in ledger(tollway, account)] == ["credit", "reserve", "release"]


def test_reports_break_down_by_operation_type(tollway: Tollway) -> None:
    account = tollway.new_account("completions-report", credit_usd="1.00")
    headers = {"authorization": f"Bearer {account.key}"}
    with openai.OpenAI(base_url=f"{tollway.url}/v1", api_key=account.key, max_retries=0) as client:
        client.completions.create(model="gpt-4o-mini", prompt=PROMPT)
        list(client.completions.create(model="gpt-4o-mini", prompt=PROMPT, stream=True))
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}])
    report = httpx.get(f"{tollway.url}/v1/usage", headers=headers).json()
    rows = sorted((r["operation_type"], r["model"], r["calls"], r["cost_usd"]) for r in report["breakdown"])
    assert rows == [
        ("chat.completions", "gpt-4o-mini", 1, usd(nanos(6, 8))),
        ("completions", "gpt-4o-mini", 2, usd(2 * nanos(REPORTED_PROMPT, 8))),
    ]
    log = httpx.get(f"{tollway.url}/v1/credits/usage/log", headers=headers).json()["data"]
    assert [(r["operation_type"], r["stream"]) for r in log] == [
        ("chat.completions", False),
        ("completions", True),
        ("completions", False),
    ]
