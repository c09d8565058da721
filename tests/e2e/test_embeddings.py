"""POST /v1/embeddings end to end: the official openai SDK against tollway and `tollway mock-upstream`.

Vectors must reach the client bit-exact in both formats; billing is input tokens only, exact to the
nano-dollar; usage the upstream leaves out is counted with tiktoken.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import openai
import pytest

from tests.e2e.conftest import UPSTREAM_KEY, Account, Mock, Tollway, nanos
from tollway.mock_upstream.embeddings import vector, vector_base64
from tollway.tokens import load_encoding

MODEL = "text-embedding-3-small"  # upstream model demo-embed, encoding cl100k_base
TEXTS = ["hello world", "bye"]
# The mock reports one token per four characters of each input, rounded up: 3 + 1.
REPORTED = 4


def usd(nano: int) -> str:
    return f"{nano // 10**9}.{nano % 10**9:09d}"


@pytest.fixture(name="cl100k", scope="module")
def fixture_cl100k() -> Any:
    return load_encoding("cl100k_base")


@pytest.fixture(name="account")
def fixture_account(tollway: Tollway) -> Account:
    return tollway.new_account("embeddings", credit_usd="1.00")


@pytest.fixture(name="client")
def fixture_client(tollway: Tollway, account: Account) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{tollway.url}/v1", api_key=account.key, max_retries=0) as client:
        yield client


def record(tollway: Tollway, request_id: str) -> dict[str, Any]:
    found = tollway.db.mappings("select * from usage_records where id = ?", request_id)
    assert found, request_id
    return found[0]


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


def ledger_kinds(tollway: Tollway, account: Account) -> list[str]:
    rows = tollway.db.rows(
        "select kind from ledger_entries where workspace_id = ? order by ws_seq", account.workspace_id
    )
    return [kind for (kind,) in rows]


def from_mock(mock: Mock, body: dict[str, Any]) -> bytes:
    """The mock's own answer to `body`, asked directly (not through tollway)."""
    response = httpx.post(
        f"{mock.url}/v1/embeddings", json=body, headers={"authorization": f"Bearer {UPSTREAM_KEY}"}
    )
    assert response.status_code == 200
    return response.content


def top(raw: bytes) -> dict[str, bytes]:
    """Each top-level value of a JSON object as the exact bytes it was written with."""
    return {k: bytes(v) for k, v in msgspec.json.decode(raw, type=dict[str, msgspec.Raw]).items()}


def float32(values: list[float]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def float64(values: list[float]) -> bytes:
    return struct.pack(f"<{len(values)}d", *values)


def test_sdk_default_base64_vectors_arrive_bit_exact_and_cost_exactly(
    tollway: Tollway, mock: Mock, account: Account, client: openai.OpenAI
) -> None:
    raw = client.embeddings.with_raw_response.create(model=MODEL, input=TEXTS)
    forwarded: dict[str, Any] = mock.last_request()["body"]  # type: ignore[assignment]
    assert forwarded == {"model": "demo-embed", "input": TEXTS, "encoding_format": "base64"}
    # On the wire: the mock's base64 strings, untouched.
    wire = raw.http_response.json()
    assert [d["embedding"] for d in wire["data"]] == [vector_base64(i, t) for i, t in enumerate(TEXTS)]
    assert top(raw.http_response.content)["data"] == top(from_mock(mock, forwarded))["data"]
    # The SDK decodes them to float32 values: exactly the mock's.
    result = raw.parse()
    for i, text in enumerate(TEXTS):
        assert float32(result.data[i].embedding) == base64.b64decode(vector_base64(i, text))
        assert float32(result.data[i].embedding) == float32(vector(i, text))
    assert result.model == MODEL  # an alias: the served name
    expected = nanos(REPORTED, 0)
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (REPORTED, REPORTED)
    assert wire["usage"] == {
        "prompt_tokens": REPORTED,
        "total_tokens": REPORTED,
        "cost": float(Decimal(expected) / 10**9),
    }
    assert Decimal(raw.http_response.text.split('"cost":')[1].split("}")[0]) == Decimal(expected) / 10**9
    assert raw.headers["x-request-cost"] == usd(expected)
    assert raw.headers["x-tokens-used"] == str(REPORTED)
    assert raw.headers["x-balance-remaining"] == usd(10**9 - expected)
    assert balance_nano(tollway, account) == 10**9 - expected
    request_id = raw.headers["x-request-id"]
    row = record(tollway, request_id)
    assert (row["operation_type"], row["prompt_tokens"], row["completion_tokens"], row["cost_nano"]) == (
        "embeddings",
        REPORTED,
        0,
        expected,
    )
    assert (row["prompt_source"], row["end_state"], bool(row["stream"])) == ("upstream", "completed", False)
    seen = view(tollway, account, request_id)
    assert (seen["operation_type"], seen["model"], seen["upstream_model"], seen["stream"]) == (
        "embeddings",
        MODEL,
        "demo-embed",
        False,
    )
    assert seen["tokens"]["prompt"] == REPORTED and seen["tokens"]["completion"] == 0
    assert seen["cost_usd"] == usd(expected)
    [(debit,)] = tollway.db.rows(
        "select amount_nano from ledger_entries where reservation_id = ? and kind = 'debit'", request_id
    )
    assert debit == -expected


def test_float_format_vectors_arrive_bit_exact(mock: Mock, client: openai.OpenAI) -> None:
    raw = client.embeddings.with_raw_response.create(
        model=MODEL, input=TEXTS, encoding_format="float", dimensions=512
    )
    forwarded: dict[str, Any] = mock.last_request()["body"]  # type: ignore[assignment]
    assert (forwarded["encoding_format"], forwarded["dimensions"]) == ("float", 512)
    # The vectors' bytes are the mock's own, and every float the SDK reads has the mock's bits.
    assert top(raw.http_response.content)["data"] == top(from_mock(mock, forwarded))["data"]
    result = raw.parse()
    for i, text in enumerate(TEXTS):
        expected = vector(i, text, 512)
        assert len(result.data[i].embedding) == 512
        assert float64(result.data[i].embedding) == float64(expected)
    # The mock's components are arbitrary finite float32 patterns: subnormals and huge exponents
    # both occur here, so a lossy relay would show.
    magnitudes = [abs(v) for d in result.data for v in d.embedding if v]
    assert min(magnitudes) < 1.1754943508222875e-38 and max(magnitudes) > 1e30


def test_dimensions_pass_through(mock: Mock, client: openai.OpenAI) -> None:
    result = client.embeddings.create(model=MODEL, input="hello world", dimensions=16)
    assert mock.last_request()["body"]["dimensions"] == 16  # type: ignore[index]
    assert float32(result.data[0].embedding) == float32(vector(0, "hello world", 16))


@pytest.mark.parametrize(("tokens", "count"), [([1, 2, 3], 3), ([[1, 2], [3, 4, 5]], 5)])
def test_token_array_input(tollway: Tollway, client: openai.OpenAI, tokens: Any, count: int) -> None:
    raw = client.embeddings.with_raw_response.create(model=MODEL, input=tokens)
    result = raw.parse()
    inputs = tokens if isinstance(tokens[0], list) else [tokens]
    assert [float32(d.embedding) for d in result.data] == [
        float32(vector(i, t)) for i, t in enumerate(inputs)
    ]
    assert result.usage.prompt_tokens == count
    assert raw.headers["x-request-cost"] == usd(nanos(count, 0))


def test_missing_usage_is_counted_with_tiktoken(
    tollway: Tollway, account: Account, client: openai.OpenAI, cl100k: Any
) -> None:
    texts = ["The quick brown fox", "jumps over the lazy dog.", "hel", "lo"]
    counted = sum(len(cl100k.encode_ordinary(t)) for t in texts)  # each on its own, no overhead
    raw = client.embeddings.with_raw_response.create(
        model=MODEL, input=texts, extra_body={"mock": {"usage": "absent"}}
    )
    result = raw.parse()
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (counted, counted)
    assert raw.headers["x-request-cost"] == usd(nanos(counted, 0))
    row = record(tollway, raw.headers["x-request-id"])
    assert (row["prompt_tokens"], row["prompt_source"], row["cost_nano"]) == (
        counted,
        "counted",
        nanos(counted, 0),
    )
    assert not row["estimated"]
    assert balance_nano(tollway, account) == 10**9 - nanos(counted, 0)


def test_token_arrays_without_usage_count_their_length(tollway: Tollway, client: openai.OpenAI) -> None:
    raw = client.embeddings.with_raw_response.create(
        model=MODEL, input=[[5, 6, 7], [8]], extra_body={"mock": {"usage": "absent"}}
    )
    assert raw.parse().usage.prompt_tokens == 4
    assert record(tollway, raw.headers["x-request-id"])["prompt_source"] == "counted"


def test_an_invalid_usage_report_is_counted_and_marked(
    tollway: Tollway, account: Account, client: openai.OpenAI, cl100k: Any
) -> None:
    raw = client.embeddings.with_raw_response.create(
        model=MODEL, input="hello world", extra_body={"mock": {"usage_override": {"prompt_tokens": 1e30}}}
    )
    counted = len(cl100k.encode_ordinary("hello world"))
    assert raw.parse().usage.prompt_tokens == counted
    assert view(tollway, account, raw.headers["x-request-id"])["sources"]["upstream_report_invalid"] is True


def test_reports_break_down_by_operation_type(tollway: Tollway) -> None:
    account = tollway.new_account("embeddings-report", credit_usd="1.00")
    headers = {"authorization": f"Bearer {account.key}"}
    with openai.OpenAI(base_url=f"{tollway.url}/v1", api_key=account.key, max_retries=0) as client:
        client.embeddings.create(model=MODEL, input=TEXTS)
        client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float")
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hi"}])
    report = httpx.get(f"{tollway.url}/v1/usage", headers=headers).json()
    rows = sorted(
        (r["operation_type"], r["model"], r["calls"], r["input_tokens"], r["output_tokens"], r["cost_usd"])
        for r in report["breakdown"]
    )
    assert rows == [
        ("chat.completions", "gpt-4o-mini", 1, 6, 8, usd(nanos(6, 8))),
        ("embeddings", MODEL, 2, 2 * REPORTED, 0, usd(2 * nanos(REPORTED, 0))),
    ]
    stats = httpx.get(f"{tollway.url}/v1/credits/usage", headers=headers).json()["stats"]
    assert sorted((s["operation_type"], s["call_count"]) for s in stats) == [
        ("chat.completions", 1),
        ("embeddings", 2),
    ]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": ["ok", ""]}, "input[1]"),
        ({"input": [[1], []]}, "input[1]"),
        ({"input": [1, "x"]}, "input[1]"),
        ({"encoding_format": "hex"}, "encoding_format"),
        ({"dimensions": 0}, "dimensions"),
        ({"dimensions": "8"}, "dimensions"),
    ],
)
def test_bad_input_is_a_400_naming_the_param_and_costs_nothing(
    tollway: Tollway, account: Account, fields: dict[str, Any], param: str
) -> None:
    body = {"model": MODEL, "input": "hello", **fields}
    response = httpx.post(
        f"{tollway.url}/v1/embeddings", json=body, headers={"authorization": f"Bearer {account.key}"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert response.headers["x-request-id"]
    assert ledger_kinds(tollway, account) == ["credit"]


def test_sdk_sees_a_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model=MODEL, input="")
    assert caught.value.body["param"] == "input"  # type: ignore[index]


def test_unknown_model_is_a_404(tollway: Tollway, account: Account, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.embeddings.create(model="no-such-embedder", input="hi")
    assert caught.value.code == "model_not_found"
    assert ledger_kinds(tollway, account) == ["credit"]


def test_insufficient_credit_is_a_402_that_costs_nothing(tollway: Tollway) -> None:
    account = tollway.new_account("embeddings-poor", credit_usd="0.0001")  # the request fee alone
    response = httpx.post(
        f"{tollway.url}/v1/embeddings",
        json={"model": MODEL, "input": "hello"},
        headers={"authorization": f"Bearer {account.key}"},
    )
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "insufficient_credit"
    assert response.headers["x-should-retry"] == "false"
    # The byte bound (5) did not fit, so the tiktoken count (1) was tried: at the highest prompt
    # rate (1.25, cache write), no output, plus the fee, it does not fit either.
    message = response.json()["error"]["message"]
    assert "needs $0.000101250 reserved (its worst case: 1 prompt + 0 output tokens" in message
    assert ledger_kinds(tollway, account) == ["credit"]
    assert balance_nano(tollway, account) == 100_000


def test_the_tiktoken_bound_is_tried_when_the_byte_bound_does_not_fit(tollway: Tollway, cl100k: Any) -> None:
    text = "hello " * 1000  # 6,000 bytes, 1,001 tokens
    # 6,000 x 1,250 + 100,000 = 7.6M nano does not fit in 5M; 1,001 x 1,250 + 100,000 does.
    account = tollway.new_account("embeddings-tight", credit_usd="0.005")
    response = httpx.post(
        f"{tollway.url}/v1/embeddings",
        json={"model": MODEL, "input": text, "mock": {"usage": "absent"}},
        headers={"authorization": f"Bearer {account.key}"},
    )
    assert response.status_code == 200, response.text
    counted = len(cl100k.encode_ordinary(text))
    assert response.json()["usage"]["prompt_tokens"] == counted
    assert balance_nano(tollway, account) == 5_000_000 - nanos(counted, 0)


def test_an_upstream_failure_costs_nothing(tollway: Tollway, account: Account) -> None:
    response = httpx.post(
        f"{tollway.url}/v1/embeddings",
        json={"model": MODEL, "input": "hello", "mock": {"fail": 500}},
        headers={"authorization": f"Bearer {account.key}"},
    )
    assert response.status_code == 500
    assert ledger_kinds(tollway, account) == ["credit", "reserve", "release"]
