"""Non-streaming responses and the control routes, through httpx's in-process ASGI transport."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tollway.mock_upstream import MockUpstream, create_app

from .conftest import drive

MESSAGES = [{"role": "user", "content": "hello world!"}]  # 5 per message + 12 chars // 4 = 8 prompt tokens


def usage(prompt: int, completion: int, reasoning: int = 0, cached: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


async def chat(
    client: httpx.AsyncClient, model: str = "m", headers: dict[str, str] | None = None, **extra: Any
) -> httpx.Response:
    body = {"model": model, "messages": MESSAGES, **extra}
    return await client.post("/v1/chat/completions", json=body, headers=headers)


async def test_non_stream_body_exactly(client: httpx.AsyncClient) -> None:
    response = await chat(client, "demo:chunks=3")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "id": "chatcmpl-mock-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "demo:chunks=3",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": " the of and"},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage(8, 3),
    }
    assert (await chat(client)).json()["id"] == "chatcmpl-mock-2"


async def test_default_is_eight_words_and_prompt_counts_text_parts(client: httpx.AsyncClient) -> None:
    messages = [
        {"role": "system", "content": "x" * 40},
        {
            "role": "user",
            "content": [{"type": "text", "text": "y" * 20}, {"type": "image_url", "image_url": {}}],
        },
    ]
    body = (await client.post("/v1/chat/completions", json={"model": "m", "messages": messages})).json()
    assert body["choices"][0]["message"]["content"] == " the of and to in is it for"
    assert body["usage"] == usage(2 * 5 + 60 // 4, 8)


@pytest.mark.parametrize("key", ["max_tokens", "max_completion_tokens"])
async def test_token_limit_truncates_with_length(client: httpx.AsyncClient, key: str) -> None:
    limit: dict[str, Any] = {key: 2}
    body = (await chat(client, "demo:chunks=5", **limit)).json()
    assert body["choices"][0]["message"]["content"] == " the of"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2


async def test_n_choices_share_the_text(client: httpx.AsyncClient) -> None:
    body = (await chat(client, "demo:chunks=2", n=2)).json()
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert {c["message"]["content"] for c in body["choices"]} == {" the of"}
    assert body["usage"] == usage(8, 4)


async def test_token_overrides_and_details(client: httpx.AsyncClient) -> None:
    knobs = {"prompt_tokens": 100, "completion_tokens": 7, "cached_tokens": 40, "reasoning_tokens": 3}
    body = (await chat(client, mock=knobs)).json()
    assert body["usage"] == usage(100, 7, reasoning=3, cached=40)
    body = (await chat(client, "demo:chunks=2,reasoning_tokens=5")).json()
    assert body["usage"] == usage(8, 7, reasoning=5)


@pytest.mark.parametrize(
    ("field", "top_level"),
    [("cache_write_tokens", False), ("cache_creation_tokens", False), ("cache_creation_input_tokens", True)],
)
async def test_cache_write_field_variants(client: httpx.AsyncClient, field: str, top_level: bool) -> None:
    body = (
        await chat(client, f"demo:cached_tokens=10,cache_write_tokens=30,cache_write_field={field}")
    ).json()
    got = body["usage"]
    if top_level:
        assert got[field] == 30
        assert got["prompt_tokens_details"] == {"cached_tokens": 10}
    else:
        assert field not in got
        assert got["prompt_tokens_details"] == {"cached_tokens": 10, field: 30}


async def test_usage_absent(client: httpx.AsyncClient) -> None:
    assert "usage" not in (await chat(client, "demo:usage=absent")).json()


async def test_reasoning_text(client: httpx.AsyncClient) -> None:
    body = (await chat(client, "demo:chunks=1,reasoning_text=true")).json()
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": " the",
        "reasoning_content": " on that with",
    }
    assert body["usage"] == usage(8, 4, reasoning=3)


async def test_tool_call(client: httpx.AsyncClient) -> None:
    choice = (await chat(client, "demo:tool_call=true")).json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_mock_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}


async def test_echo_returns_the_compact_request(client: httpx.AsyncClient) -> None:
    request = {"model": "m", "messages": MESSAGES, "mock": {"echo": True}, "extra_field": [1, {"a": None}]}
    body = (await client.post("/v1/chat/completions", json=request)).json()
    assert body["choices"][0]["message"]["content"] == json.dumps(request, separators=(",", ":"))


async def test_fail_401_echoes_the_bearer_token(client: httpx.AsyncClient) -> None:
    response = await chat(client, "demo:fail=401", headers={"Authorization": "Bearer sk-live-123"})
    assert response.status_code == 401
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "Incorrect API key provided: sk-live-123" in error["message"]


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, "invalid_request_error"), (429, "requests"), (500, "server_error"), (503, "server_error")],
)
async def test_fail_statuses(client: httpx.AsyncClient, status: int, kind: str) -> None:
    response = await chat(client, mock={"fail": status}, stream=True)
    assert response.status_code == status
    assert response.json()["error"]["type"] == kind
    assert response.headers.get("retry-after") == ("1" if status == 429 else None)


async def test_api_key_is_required_when_configured() -> None:
    app = create_app(api_key="sk-right")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mock") as client:
        assert (await chat(client)).status_code == 401
        wrong = await chat(client, headers={"Authorization": "Bearer sk-wrong"})
        assert wrong.status_code == 401
        assert "sk-wrong" in wrong.json()["error"]["message"]
        assert (await chat(client, headers={"Authorization": "Bearer sk-right"})).status_code == 200
        assert (await client.get("/v1/models")).status_code == 401
        assert (await client.get("/mock/stats")).status_code == 200


async def test_unknown_knob_is_a_400(client: httpx.AsyncClient) -> None:
    response = await chat(client, "demo:frobnicate=3")
    assert response.status_code == 400
    error = response.json()["error"]
    assert "frobnicate" in error["message"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "mock.frobnicate"


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b""])
async def test_malformed_body_is_a_400(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post("/v1/chat/completions", content=raw)
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


async def test_bad_n_is_a_400(client: httpx.AsyncClient) -> None:
    assert (await chat(client, n=0)).status_code == 400


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/nothing"), ("GET", "/v1/chat/completions"), ("POST", "/")]
)
async def test_unknown_routes_are_404(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path)
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


async def test_models(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/models")).json()
    assert body["object"] == "list"
    assert len(body["data"]) >= 2
    assert all(m["object"] == "model" and isinstance(m["id"], str) for m in body["data"])


async def test_stats_reset_and_last_request(client: httpx.AsyncClient) -> None:
    assert (await client.get("/mock/requests/last")).json() == {"body": None, "headers": {}}
    request = {"model": "m", "messages": MESSAGES, "stream_options": {"include_usage": True}, "x_extra": 1}
    await client.post(
        "/v1/chat/completions", json=request, headers={"Authorization": "Bearer sk-abc", "X-Thing": "1"}
    )
    last = (await client.get("/mock/requests/last")).json()
    assert last["body"] == request
    assert last["headers"]["authorization"] == "Bearer sk-abc"
    assert last["headers"]["x-thing"] == "1"
    stats = (await client.get("/mock/stats")).json()
    assert stats == {
        "requests": 1,
        "streams_started": 0,
        "streams_completed": 0,
        "streams_cancelled": 0,
        "active_streams": 0,
    }
    assert (await client.post("/mock/reset")).json()["requests"] == 0
    assert (await client.get("/mock/stats")).json()["requests"] == 0
    assert (await chat(client)).json()["id"] == "chatcmpl-mock-1"


@pytest.mark.parametrize(
    ("root_path", "path"),
    [
        ("/upstream", "/v1/chat/completions"),
        ("/upstream", "/upstream/v1/chat/completions"),
        ("", "/chat/completions"),
    ],
)
async def test_mounted_under_a_prefix(app: MockUpstream, root_path: str, path: str) -> None:
    exchange = await drive(app, {"model": "demo:chunks=1", "messages": []}, path=path, root_path=root_path)
    assert exchange.status == 200
    assert exchange.json()["choices"][0]["message"]["content"] == " the"
    stats = await drive(app, b"", method="GET", path=f"{root_path}/mock/stats", root_path=root_path)
    assert stats.json()["requests"] == 1


async def test_mounted_in_litestar() -> None:
    from litestar import Litestar, asgi
    from litestar.types import Receive, Scope, Send

    mock = create_app()

    @asgi("/upstream", is_mount=True, copy_scope=True)
    async def upstream(scope: Scope, receive: Receive, send: Send) -> None:
        await mock(scope, receive, send)

    host = Litestar([upstream])
    transport = httpx.ASGITransport(app=host)  # type: ignore[arg-type]  # Litestar's ASGI types are narrower
    async with httpx.AsyncClient(transport=transport, base_url="http://host") as client:
        response = await chat(client, "demo:chunks=1", stream=True)
        assert response.status_code == 404  # not mounted at the root
        response = await client.post("/upstream/v1/chat/completions", json={"model": "m", "messages": []})
        assert response.json()["object"] == "chat.completion"
        assert (await client.get("/upstream/mock/stats")).json()["requests"] == 1


def test_run_configures_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from tollway.mock_upstream import run

    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    monkeypatch.setenv("MOCK_UPSTREAM_API_KEY", "sk-env")
    run(port=9999)
    run(port=9998, api_key="sk-arg")
    (first, options), (second, _) = calls
    assert isinstance(first, MockUpstream)
    assert (first.api_key, second.api_key) == ("sk-env", "sk-arg")
    assert options["host"] == "127.0.0.1"
    assert options["port"] == 9999
    assert options["access_log"] is False
    assert options["lifespan"] == "off"
    assert options["log_level"] == "warning"
    assert options["http"] in ("httptools", "h11")
