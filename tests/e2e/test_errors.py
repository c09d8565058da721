"""Bad inputs, bad keys, upstream failures, timeouts and disconnects, seen as a raw HTTP client."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest

from tests.e2e.conftest import UPSTREAM_KEY, Mock, Tollway

HI = [{"role": "user", "content": "Say hi"}]


def chat(
    tollway: Tollway,
    key: str | None,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    all_headers = {"content-type": "application/json", **(headers or {})}
    if key is not None:
        all_headers["authorization"] = f"Bearer {key}"
    content = raw if raw is not None else msgspec.json.encode(body)
    return httpx.post(f"{tollway.url}/v1/chat/completions", content=content, headers=all_headers, timeout=10)


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "didn't provide an API key"),
        ("Basic abc", "Malformed"),
        ("Bearer sk-openai", "start with 'tw-'"),
        ("Bearer tw-unknownkeyunknownkeyunknownkey", "unknown or has been revoked"),
    ],
)
def test_bad_keys_get_401(tollway: Tollway, authorization: str | None, message: str) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    response = chat(tollway, None, {"model": "gpt-4o-mini", "messages": HI}, headers=headers)
    assert response.status_code == 401
    error = error_of(response)
    assert error["code"] == "invalid_api_key"
    assert message in error["message"]


def test_revoked_key_stops_at_once(tollway: Tollway) -> None:
    key = tollway.new_key("revoke-me")
    assert chat(tollway, key, {"model": "gpt-4o-mini", "messages": HI}).status_code == 200
    listed = tollway.admin("GET", "/admin/workspaces").json()["data"]
    workspace = next(w for w in listed if w["name"] == "revoke-me")
    key_id = tollway.admin("GET", f"/admin/workspaces/{workspace['id']}/keys").json()["data"][0]["id"]
    revoked = tollway.admin("DELETE", f"/admin/keys/{key_id}")
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    response = chat(tollway, key, {"model": "gpt-4o-mini", "messages": HI})
    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("raw", "status", "code", "param"),
    [
        (b"{oops", 400, "invalid_json", None),
        (b'"a string"', 400, "invalid_request_body", None),
        (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "missing_required_parameter", "model"),
        (b'{"model": "gpt-4o-mini"}', 400, "missing_required_parameter", "messages"),
        (b'{"model": "gpt-4o-mini", "messages": "hi"}', 400, "invalid_type", "messages"),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}], "max_tokens": -5}',
            400,
            "invalid_value",
            "max_tokens",
        ),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}], "max_tokens": "9"}',
            400,
            "invalid_type",
            "max_tokens",
        ),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}], "stream": 1}',
            400,
            "invalid_type",
            "stream",
        ),
        (b'{"model": "no-such-model", "messages": [{"role": "user"}]}', 404, "model_not_found", "model"),
    ],
)
def test_bad_bodies(
    tollway: Tollway, key: str, raw: bytes, status: int, code: str, param: str | None
) -> None:
    response = chat(tollway, key, raw=raw)
    assert response.status_code == status
    error = error_of(response)
    assert (error["code"], error["param"]) == (code, param)


def test_body_over_the_limit_is_413(tollway: Tollway, key: str) -> None:
    big = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 70_000}]}
    response = chat(tollway, key, big)
    assert response.status_code == 413
    assert error_of(response)["code"] == "request_too_large"


def test_unknown_route_and_method(tollway: Tollway, key: str) -> None:
    response = httpx.get(f"{tollway.url}/v1/nothing-here", headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    response = httpx.get(f"{tollway.url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 405 and error_of(response)["code"] == "method_not_allowed"


def test_health_needs_no_key(tollway: Tollway) -> None:
    response = httpx.get(f"{tollway.url}/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize("status", [400, 429, 500, 503])
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_errors_pass_through(tollway: Tollway, key: str, status: int, stream: bool) -> None:
    response = chat(
        tollway, key, {"model": "gpt-4o-mini", "messages": HI, "stream": stream, "mock": {"fail": status}}
    )
    assert response.status_code == status
    error_of(response)
    if status == 429:
        assert response.headers["retry-after"] == "1"


def test_upstream_secret_is_scrubbed_from_errors(tollway: Tollway, key: str) -> None:
    response = chat(tollway, key, {"model": "gpt-4o-mini", "messages": HI, "mock": {"fail": 401}})
    assert response.status_code == 401
    assert UPSTREAM_KEY not in response.text
    assert UPSTREAM_KEY[:12] not in response.text
    assert "Incorrect API key provided" in error_of(response)["message"]


def test_unreachable_upstream_is_502(tollway: Tollway, key: str) -> None:
    response = chat(tollway, key, {"model": "dead-model", "messages": HI})
    assert response.status_code == 502
    error = error_of(response)
    assert (error["type"], error["code"]) == ("upstream_error", "upstream_error")


@pytest.mark.parametrize("stream", [False, True])
def test_slow_first_byte_is_504(tollway: Tollway, key: str, stream: bool) -> None:
    started = time.monotonic()
    response = chat(
        tollway,
        key,
        {"model": "impatient", "messages": HI, "stream": stream, "mock": {"headers_delay_ms": 3000}},
    )
    assert response.status_code == 504
    assert error_of(response)["code"] == "upstream_timeout"
    assert time.monotonic() - started < 2.5


def sse_payloads(text: str) -> list[str]:
    return [line.removeprefix("data: ") for line in text.split("\n\n") if line.startswith("data: ")]


def test_silent_upstream_mid_stream_ends_with_usage_then_error(tollway: Tollway, key: str) -> None:
    response = chat(
        tollway,
        key,
        {"model": "impatient", "messages": HI, "stream": True, "mock": {"chunk_delay_ms": 2000, "chunks": 3}},
    )
    assert response.status_code == 200
    payloads = sse_payloads(response.text)
    content = "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in map(msgspec.json.decode, payloads[:-2])
        if c.get("choices")
    )
    assert content == " the"  # the first word comes at once, the second never within 0.5 s
    usage = msgspec.json.decode(payloads[-2])
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 1
    assert msgspec.json.decode(payloads[-1])["error"]["code"] == "upstream_timeout"
    assert "[DONE]" not in payloads


@pytest.mark.parametrize("knob", ["cut_after", "error_after"])
def test_upstream_breaking_off_bills_only_what_was_delivered(tollway: Tollway, key: str, knob: str) -> None:
    response = chat(tollway, key, {"model": "gpt-4o-mini", "messages": HI, "stream": True, "mock": {knob: 3}})
    payloads = sse_payloads(response.text)
    content = "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in map(msgspec.json.decode, payloads[:-1])
        if c.get("choices")
    )
    assert content == " the of and"
    usage = msgspec.json.decode(payloads[-2])["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (9, 3)  # counted: upstream never reported
    error = msgspec.json.decode(payloads[-1])["error"]
    assert error["code"] == "upstream_error"
    assert "[DONE]" not in payloads


def test_client_disconnect_cancels_the_upstream(tollway: Tollway, key: str, mock: Mock) -> None:
    before = mock.stats()
    body = {
        "model": "gpt-4o-mini",
        "messages": HI,
        "stream": True,
        "mock": {"chunks": 200, "chunk_delay_ms": 50},
    }
    with httpx.stream(
        "POST",
        f"{tollway.url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    ) as response:
        assert response.status_code == 200
        assert response.headers["x-request-id"].startswith("req_")
        seen = 0
        for line in response.iter_lines():
            if line.startswith("data: "):
                seen += 1
            if seen == 3:
                break
    disconnected_at = time.monotonic()
    while time.monotonic() - disconnected_at < 1.0:
        after = mock.stats()
        if after["streams_cancelled"] > before["streams_cancelled"]:
            break
        time.sleep(0.02)
    after = mock.stats()
    assert after["streams_cancelled"] == before["streams_cancelled"] + 1
    assert after["active_streams"] == before["active_streams"]


def test_a_chunked_body_over_the_limit_is_413_at_no_cost(tollway: Tollway, key: str) -> None:
    """No Content-Length to refuse up front: the body is counted as it arrives."""
    piece = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "' + b"x" * 60_000

    def chunks() -> Any:
        yield piece
        yield b"y" * 10_000 + b'"}]}'

    response = httpx.post(
        f"{tollway.url}/v1/chat/completions",
        content=chunks(),
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 413
    assert error_of(response)["code"] == "request_too_large"
    assert response.headers["x-request-id"].startswith("req_")


def test_a_trailing_slash_reaches_the_same_pipeline(tollway: Tollway, key: str) -> None:
    """The framework's door to a surface (a path it normalises) serves and bills like the hot one."""
    response = httpx.post(
        f"{tollway.url}/v1/chat/completions/",
        json={"model": "gpt-4o-mini", "messages": HI, "max_tokens": 5},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["usage"]["completion_tokens"] == 5
    assert Decimal(response.headers["x-request-cost"]) == Decimal(str(body["usage"]["cost"])) > 0
    assert response.headers["x-tokens-used"] == str(body["usage"]["total_tokens"])
