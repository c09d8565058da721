"""The access log of real servers: one line per proxied request, its fields, and never a secret."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.conftest import ADMIN_TOKEN, UPSTREAM_KEY, Tollway
from tests.e2e.observed import LOGGED, Observed, wait_until

FIELDS = {
    "time",
    "level",
    "logger",
    "request_id",
    "workspace_id",
    "key_id",
    "surface",
    "model",
    "upstream",
    "stream",
    "status",
    "end_state",
    "error",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "duration_ms",
    "ttfb_ms",
}


def access_lines(text: str) -> list[dict[str, Any]]:
    """Every line of the output, each of which must be one JSON object."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_lines_one_per_request_with_its_facts_and_no_secret(observed: Observed) -> None:
    server = observed.server
    account = server.new_account("logged")
    prompt = f"my secret prompt {uuid.uuid4().hex}"
    messages = [{"role": "user", "content": prompt}]
    bogus_key = "tw-" + "x" * 40
    expected: dict[str, tuple[int, str]] = {}  # request id -> status, end state
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=account.key, max_retries=0) as client:
        for _ in range(2):
            raw = client.chat.completions.with_raw_response.create(model=LOGGED, messages=messages)  # type: ignore[arg-type]
            raw.parse()
            expected[raw.headers["x-request-id"]] = (200, "completed")
        streamed = client.chat.completions.with_raw_response.create(
            model=LOGGED,
            messages=messages,  # type: ignore[arg-type]
            stream=True,
        )
        assert list(streamed.parse())
        expected[streamed.headers["x-request-id"]] = (200, "completed")
        with pytest.raises(openai.NotFoundError) as unknown:
            client.chat.completions.create(model="not-served-here", messages=messages)  # type: ignore[arg-type]
        expected[unknown.value.response.headers["x-request-id"]] = (404, "error")
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=bogus_key, max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError) as refused:
            client.chat.completions.create(model=LOGGED, messages=messages)  # type: ignore[arg-type]
        expected[refused.value.response.headers["x-request-id"]] = (401, "error")

    def logged() -> bool:
        ids = {line["request_id"] for line in access_lines(observed.stdout.read_text())}
        return set(expected) <= ids

    wait_until(logged, "every request's line written")
    lines = access_lines(observed.stdout.read_text())  # every line is JSON: json.loads raised otherwise
    mine = [line for line in lines if line["request_id"] in expected]
    assert sorted(line["request_id"] for line in mine) == sorted(expected)  # exactly one line each
    for line in mine:
        assert set(line) == FIELDS
        assert (line["level"], line["logger"], line["surface"]) == (
            "info",
            "tollway.access",
            "chat.completions",
        )
        assert (line["status"], line["end_state"]) == expected[line["request_id"]]
        assert line["duration_ms"] >= 0
        if line["status"] == 200:
            record = httpx.get(
                f"{server.url}/v1/usage/requests/{line['request_id']}",
                headers={"authorization": f"Bearer {account.key}"},
            ).json()
            assert (line["workspace_id"], line["key_id"]) == (account.workspace_id, account.key_id)
            assert (line["model"], line["upstream"], line["error"]) == (LOGGED, "mock", None)
            assert line["stream"] is record["stream"]
            tokens = record["tokens"]
            assert (line["prompt_tokens"], line["completion_tokens"], line["total_tokens"]) == (
                tokens["prompt"],
                tokens["completion"],
                tokens["total"],
            )
            assert Decimal(line["cost_usd"]) == Decimal(record["cost_usd"]) > 0
            assert (line["ttfb_ms"] is not None) is record["stream"]
        else:
            assert line["prompt_tokens"] is line["cost_usd"] is line["upstream"] is None
    by_status = {line["status"]: line for line in mine}
    assert (by_status[404]["model"], by_status[404]["error"]) == ("not-served-here", "model_not_found")
    assert by_status[404]["key_id"] == account.key_id
    assert (by_status[401]["workspace_id"], by_status[401]["error"]) == (None, "invalid_api_key")

    output = observed.stdout.read_text() + observed.stderr.read_text()
    for secret in (prompt, account.key, bogus_key, ADMIN_TOKEN, UPSTREAM_KEY):
        assert secret not in output


def test_text_is_the_default(tollway: Tollway, key: str) -> None:
    response = httpx.post(
        f"{tollway.url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi"}]},
        headers={"authorization": f"Bearer {key}"},
    )
    request_id = response.headers["x-request-id"]
    [log] = tollway.workdir.glob("serve-*.log")

    def line() -> str | None:
        return next((t for t in log.read_text().splitlines() if f"request_id={request_id} " in t), None)

    wait_until(lambda: line() is not None, "the request's line written")
    text = line()
    assert text is not None and " INFO tollway.access request_id=" in text
    assert " surface=chat.completions model=gpt-4o-mini upstream=mock stream=false status=200 " in text
    assert " end_state=completed error=- " in text
