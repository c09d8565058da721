"""The served document against what a real server answers: every documented body is the body.

For each route called here, the Struct the document names as its 2xx body (by component name)
decodes the live answer; for tollway's own shapes the answer is exactly that Struct, no field
more or less (the report routes return dicts built elsewhere, documented by `ResponseSpec`s).
The model answers are the upstream's, so there the document names what is always present.
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

import httpx
import msgspec
import pytest

from tests.e2e.conftest import Account, Tollway
from tollway.api import schemas, wire, wire_reports
from tollway.api.openapi import anthropic_types, openai_types
from tollway.events import listing

HI = [{"role": "user", "content": "hi"}]
_MODULES: tuple[ModuleType, ...] = (schemas, wire, wire_reports, openai_types, anthropic_types, listing)
STRUCTS: dict[str, type] = {
    name: kind
    for module in _MODULES
    for name, kind in inspect.getmembers(module, inspect.isclass)
    if issubclass(kind, msgspec.Struct) and kind.__module__ == module.__name__
}
OPEN = {"ChatCompletion", "EmbeddingList", "AnthropicMessage", "TokenCount"}  # upstream bodies


@pytest.fixture(name="doc", scope="module")
def fixture_doc(tollway: Tollway) -> dict[str, Any]:
    response = httpx.get(f"{tollway.url}/schema/openapi.json", timeout=10)
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


@pytest.fixture(name="account", scope="module")
def fixture_account(tollway: Tollway) -> Account:
    return tollway.new_account("openapi")


def documented_type(doc: dict[str, Any], method: str, template: str, status: int) -> str:
    content = doc["paths"][template][method.lower()]["responses"][str(status)]["content"]
    ref: str = content["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[-1]


def check(doc: dict[str, Any], method: str, template: str, response: httpx.Response) -> None:
    """The answer is what the document says it is."""
    where = f"{method} {template} {response.status_code}"
    assert str(response.status_code) in doc["paths"][template][method.lower()]["responses"], where
    assert "x-request-id" in response.headers, where
    name = documented_type(doc, method, template, response.status_code)
    body = response.json()
    value = msgspec.convert(body, STRUCTS[name])
    if name not in OPEN:
        assert msgspec.to_builtins(value) == body, f"{where}: the answer has fields {name} lacks"


def test_every_client_answer_is_its_documented_shape(
    tollway: Tollway, doc: dict[str, Any], account: Account
) -> None:
    auth = {"authorization": f"Bearer {account.key}"}

    def client(method: str, path: str, template: str | None = None, **kwargs: Any) -> httpx.Response:
        response = httpx.request(method, f"{tollway.url}{path}", headers=auth, timeout=30, **kwargs)
        check(doc, method, template or path, response)
        return response

    chat = client("POST", "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HI})
    for header in ("x-request-cost", "x-tokens-used", "x-balance-remaining"):
        assert header in chat.headers
    client("POST", "/v1/embeddings", json={"model": "text-embedding-3-small", "input": "hi"})
    anthropic = {"model": "claude-test", "max_tokens": 50, "messages": HI}
    client("POST", "/v1/messages", json=anthropic)
    client("POST", "/v1/messages/count_tokens", json={"model": "claude-test", "messages": HI})
    request_id = chat.headers["x-request-id"]
    for path in (
        "/health",
        "/v1/models",
        "/v1/pricing",
        "/v1/credits/balance",
        "/v1/credits/ledger",
        "/v1/usage",
        "/v1/credits/usage",
        "/v1/credits/usage/daily",
        "/v1/credits/usage/log",
    ):
        client("GET", path)
    client("GET", "/v1/models/gpt-4o-mini", "/v1/models/{model_id}")
    client("GET", f"/v1/usage/requests/{request_id}", "/v1/usage/requests/{request_id}")
    missing = httpx.get(f"{tollway.url}/v1/usage/requests/req_nope", headers=auth, timeout=10)
    assert missing.status_code == 404
    assert "error" in missing.json()  # OpenAI's shape, as documented
    assert documented_type(doc, "GET", "/v1/usage/requests/{request_id}", 404) == "ErrorResponse"


def test_every_admin_answer_is_its_documented_shape(
    tollway: Tollway, doc: dict[str, Any], account: Account
) -> None:
    def admin(method: str, path: str, template: str | None = None, **kwargs: Any) -> httpx.Response:
        response = tollway.admin(method, path, **kwargs)
        check(doc, method, template or path, response)
        return response

    workspace = admin("POST", "/admin/workspaces", json={"name": "openapi-admin"}).json()
    ws = workspace["id"]
    one = "/admin/workspaces/{workspace_id}"
    admin("GET", "/admin/workspaces")
    admin("GET", f"/admin/workspaces/{ws}", one)
    admin("PATCH", f"/admin/workspaces/{ws}", one, json={"low_balance_usd": "1.00"})
    credit = {"amount_usd": "2.00", "idempotency_key": f"openapi-{ws}"}
    admin("POST", f"/admin/workspaces/{ws}/credits", f"{one}/credits", json=credit)
    replayed = admin("POST", f"/admin/workspaces/{ws}/credits", f"{one}/credits", json=credit)
    assert replayed.headers["idempotent-replayed"] == "true"
    limited = {"spend_limit_usd": "1.00", "requests_per_minute": 100}
    key = admin("POST", f"/admin/workspaces/{ws}/keys", f"{one}/keys", json=limited).json()
    admin("GET", f"/admin/workspaces/{ws}/keys", f"{one}/keys")
    admin("GET", f"/admin/workspaces/{account.workspace_id}/usage", f"{one}/usage")
    admin("GET", "/admin/usage")
    admin("PATCH", f"/admin/keys/{key['id']}", "/admin/keys/{key_id}", json={"name": "renamed"})
    admin("DELETE", f"/admin/keys/{key['id']}", "/admin/keys/{key_id}")
    admin("GET", "/admin/events")
    refused = httpx.get(f"{tollway.url}/admin/workspaces", timeout=10)
    check_error = doc["paths"]["/admin/workspaces"]["get"]["responses"]["401"]
    assert refused.status_code == 401 and "error" in refused.json()
    assert check_error["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")


def test_the_schema_routes_over_http(tollway: Tollway, doc: dict[str, Any]) -> None:
    page = httpx.get(f"{tollway.url}/schema", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "x-request-id" in page.headers
    assert "https://" not in page.text and "http://" not in page.text
    head = httpx.head(f"{tollway.url}/schema/openapi.json", timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert doc["openapi"].startswith("3.1")
