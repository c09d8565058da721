"""The OpenAPI document and the docs page, from an app built in-process (no lifespan, no database).

Generic on purpose: every HTTP route the app registers (but the demo upstream mount and the
schema routes themselves) must be in the document, with a summary, its parameters, a request
body schema when its method takes a body, a 2xx body schema and its error shape.  A new route
that leaves something out fails here, naming itself.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute

from tollway.api.openapi import anthropic_types, openai_types
from tollway.api.openapi import config as openapi_config_module
from tollway.api.openapi.surfaces import surface_docs
from tollway.app import DEMO_MOUNT, create_app
from tollway.config import load_settings
from tollway.surfaces import SURFACES
from tollway.surfaces.anthropic_messages import MessagesRequest
from tollway.surfaces.chat_completions import ChatRequest, Message
from tollway.surfaces.completions import CompletionsRequest
from tollway.surfaces.embeddings import EmbeddingsRequest
from tollway.surfaces.responses import ResponsesRequest

# Litestar 2.25 warns of the handlers' plain `workspace_id: str` path parameters (its own business).
pytestmark = pytest.mark.filterwarnings("ignore:.*declared using deprecated inferred style")

BODY_METHODS = {"POST", "PUT", "PATCH"}
HTML_PAGES = ("/console", "/portal")
ERROR_SCHEMAS = {"#/components/schemas/ErrorResponse", "#/components/schemas/AnthropicErrorResponse"}


def litestar_of(app: Any) -> Litestar:
    """The Litestar app inside tollway's ASGI wrappers (Edge, BodyTimeout)."""
    while not isinstance(app, Litestar):
        app = getattr(app, "app", None) or app._app
    return app


def get(app: Any, path: str, method: str = "GET") -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tollway.test") as client:
            return await client.request(method, path)

    return asyncio.run(call())


@pytest.fixture(name="app", scope="module")
def fixture_app() -> Any:
    return create_app(load_settings(None, environ={}))


@pytest.fixture(name="doc", scope="module")
def fixture_doc(app: Any) -> dict[str, Any]:
    response = get(app, "/schema/openapi.json")
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


def routes(app: Any) -> Iterator[tuple[str, str, HTTPRoute]]:
    """(method, path, route) of every API route a client can call, as the document must name them."""
    for route in litestar_of(app).routes:
        # The console's and the portal's HTML pages are kept out of the document on purpose.
        if not isinstance(route, HTTPRoute) or route.path.startswith((DEMO_MOUNT, "/schema", *HTML_PAGES)):
            continue
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):  # Edge answers both itself
            yield method, route.path_format, route


def json_body(operation: dict[str, Any], status: str) -> dict[str, Any]:
    schema: dict[str, Any] = operation["responses"][status]["content"]["application/json"]["schema"]
    return schema


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def test_every_route_is_documented(app: Any, doc: dict[str, Any]) -> None:
    seen = 0
    tags = {tag["name"] for tag in doc["tags"]}
    for method, path, route in routes(app):
        where = f"{method} {path}"
        operation = doc["paths"].get(path, {}).get(method.lower())
        assert operation is not None, f"{where} is not in the document"
        seen += 1
        handler = route.route_handler_map[method][0]
        assert operation.get("summary"), where
        assert handler.summary, f"{where}: give the route decorator a summary="
        assert set(operation["tags"]) <= tags, where
        assert "security" in operation, where
        documented = {(p["in"], p["name"]) for p in operation.get("parameters", ())}
        for name in route.path_parameters:
            assert ("path", name) in documented, f"{where}: path parameter {name}"
        if "query_params" in inspect.getsource(handler.fn):
            assert any(kind == "query" for kind, _ in documented), (
                f"{where} reads its query string: declare it with opt=documented(query=...)"
            )
        if method in BODY_METHODS:
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            assert body is not None, f"{where} takes a body: declare it with opt=documented(body=...)"
            assert resolve(doc, body["schema"]).get("properties"), where
        ok = [(s, r) for s, r in operation["responses"].items() if s.startswith("2")]
        assert ok, f"{where} has no 2xx response"
        for status, response in ok:
            assert response.get("content"), f"{where} {status} has no body"
            for media_type, entry in response["content"].items():
                assert entry.get("schema"), f"{where} {status} {media_type} has no schema"
        for status, response in operation["responses"].items():
            assert "X-Request-Id" in response["headers"], f"{where} {status}"
            if not status.startswith("2"):
                assert response["content"]["application/json"]["schema"]["$ref"] in ERROR_SCHEMAS, (
                    f"{where} {status} is not in an error shape"
                )
        if operation["security"]:
            assert "401" in operation["responses"], where
    assert seen >= 30


def test_no_undocumented_operations(app: Any, doc: dict[str, Any]) -> None:
    """Nothing in the document that the app does not serve (the schema routes are left out)."""
    served = {(method.lower(), path) for method, path, _ in routes(app)}
    listed = {(method, path) for path, item in doc["paths"].items() for method in item}
    assert listed == served
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_admin_shapes(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    workspace = schemas["WorkspaceRead"]
    assert set(workspace["properties"]) == {
        "object",
        "id",
        "name",
        "created_at",
        "balance",
        "low_balance_usd",
        "rate_limits",
    }
    assert workspace["properties"]["object"]["const"] == "workspace"
    key_create = schemas["KeyCreate"]
    assert {"name", "spend_limit_usd", "spend_limit_period", "requests_per_minute"} <= set(
        key_create["properties"]
    )
    assert key_create["properties"]["spend_limit_period"]["enum"] == ["day", "month", "total"]
    assert key_create["additionalProperties"] is False  # admin input forbids unknown fields
    create_key = doc["paths"]["/admin/workspaces/{workspace_id}/keys"]["post"]
    assert create_key["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/KeyCreate"
    }
    assert json_body(create_key, "201") == {"$ref": "#/components/schemas/KeyRead"}
    assert create_key["security"] == [{"adminToken": []}]
    assert set(create_key["tags"]) == {"admin"}
    update_key = doc["paths"]["/admin/keys/{key_id}"]["patch"]
    assert resolve(doc, update_key["requestBody"]["content"]["application/json"]["schema"])["required"] == []
    credit = doc["paths"]["/admin/workspaces/{workspace_id}/credits"]["post"]
    assert "idempotent-replayed" in credit["responses"]["201"]["headers"]
    assert set(resolve(doc, json_body(credit, "201"))["properties"]) == {"entry", "balance"}
    assert {"400", "401", "404", "409", "413"} <= set(credit["responses"])


def test_client_routes_and_their_query_parameters(doc: dict[str, Any]) -> None:
    def query(path: str) -> set[str]:
        operation = doc["paths"][path]["get"]
        assert operation["security"] == [{"apiKey": []}] or path.startswith("/admin"), path
        return {p["name"] for p in operation.get("parameters", ()) if p["in"] == "query"}

    assert query("/v1/credits/ledger") == {"limit", "cursor"}
    assert query("/v1/credits/usage/log") == {"limit", "cursor", "model", "key_id"}
    assert query("/v1/usage") == {"from", "to", "model", "key_id"}
    assert query("/v1/credits/usage") == {"days", "model", "key_id"}
    assert query("/v1/credits/usage/daily") == {"days", "model", "key_id"}
    assert query("/admin/usage") == {"from", "to", "model", "key_id"}
    limit = next(p for p in doc["paths"]["/v1/credits/ledger"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
    assert doc["paths"]["/health"]["get"]["security"] == []
    summary = resolve(doc, json_body(doc["paths"]["/v1/usage"]["get"], "200"))
    assert {"object", "period", "totals", "breakdown", "links"} == set(summary["properties"])
    assert set(resolve(doc, summary["properties"]["period"])["properties"]) == {"from", "to"}
    record = doc["paths"]["/v1/usage/requests/{request_id}"]["get"]
    assert "404" in record["responses"]


def test_surfaces(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    chat = doc["paths"]["/v1/chat/completions"]["post"]
    request = resolve(doc, chat["requestBody"]["content"]["application/json"]["schema"])
    assert {"model", "messages"} <= set(request["required"])
    assert request["properties"]["messages"]["minItems"] == 1
    assert request["additionalProperties"] is True  # unknown fields pass through
    ok = chat["responses"]["200"]
    assert {"X-Request-Cost", "X-Tokens-Used", "X-Balance-Remaining", "x-ratelimit-remaining-tokens"} <= set(
        ok["headers"]
    )
    answer = resolve(doc, ok["content"]["application/json"]["schema"])
    usage = resolve(doc, answer["properties"]["usage"])
    assert usage["properties"]["cost"]["type"] == "number"
    stream = ok["content"]["text/event-stream"]
    assert stream["schema"]["type"] == "string"
    assert stream["x-itemSchema"] == {"$ref": "#/components/schemas/ChatCompletionChunk"}
    assert json_body(chat, "402")["$ref"].endswith("/ErrorResponse")
    assert "x-should-retry" in chat["responses"]["402"]["headers"]
    assert "Retry-After" in chat["responses"]["429"]["headers"]
    assert set(chat["tags"]) == {"surfaces"}
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        messages = doc["paths"][path]["post"]
        assert messages["security"] == [{"apiKey": []}, {"xApiKey": []}]
        for status, response in messages["responses"].items():
            if not status.startswith("2"):
                assert response["content"]["application/json"]["schema"]["$ref"].endswith(
                    "/AnthropicErrorResponse"
                ), (path, status)
        assert {p["name"] for p in messages["parameters"]} == {"anthropic-version", "anthropic-beta"}
    assert "max_tokens" in schemas["MessagesRequest"]["required"]
    anthropic_error = schemas["AnthropicErrorResponse"]
    assert anthropic_error["properties"]["type"] == {"enum": ["error"]}
    assert set(resolve(doc, schemas["ErrorResponse"]["properties"]["error"])["properties"]) == {
        "message",
        "type",
        "param",
        "code",
    }
    assert set(doc["components"]["securitySchemes"]) == {"apiKey", "xApiKey", "adminToken"}


def _bounds(schema: Any) -> set[tuple[str, Any]]:
    """Every numeric and length bound anywhere in a field's schema."""
    found: set[tuple[str, Any]] = set()
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in {"minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems"}:
                found.add((key, value))
            else:
                found |= _bounds(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= _bounds(value)
    return found


def _fields(kind: type) -> tuple[dict[str, Any], set[str]]:
    schema = msgspec.json.schema(kind)
    body = schema["$defs"][kind.__name__]
    return body["properties"], set(body.get("required", ()))


@pytest.mark.parametrize(
    ("validating", "documenting"),
    [
        (ChatRequest, openai_types.ChatCompletionRequest),
        (Message, openai_types.ChatMessage),
        (ResponsesRequest, openai_types.ResponsesRequest),
        (EmbeddingsRequest, openai_types.EmbeddingRequest),
        (CompletionsRequest, openai_types.CompletionRequest),
        (MessagesRequest, anthropic_types.MessagesRequest),
    ],
)
def test_documented_requests_match_what_the_surfaces_check(validating: type, documenting: type) -> None:
    """Every field a surface checks is documented, with the same bounds and required-ness."""
    checked, checked_required = _fields(validating)
    shown, shown_required = _fields(documenting)
    assert set(checked) <= set(shown)
    assert checked_required <= shown_required
    for name, field in checked.items():
        assert _bounds(field) <= _bounds(shown[name]), name


def test_every_surface_declares_its_docs() -> None:
    for surface in SURFACES:
        docs = surface_docs(surface)
        assert docs.get("summary") and docs.get("opt"), surface.operation


def test_the_page_is_self_contained(app: Any, doc: dict[str, Any]) -> None:
    response = get(app, "/schema")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "x-request-id" in response.headers
    page = response.text
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower()
    for attribute in re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", page, re.IGNORECASE):
        assert attribute.startswith(("#", "/", "data:")), attribute
    assert "default-src 'none'" in page  # its Content-Security-Policy: nothing may load
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            assert f'<span class="method {method}">{method.upper()}</span><code>{path}</code>' in page, path
            assert operation["summary"] in page.replace("&#x27;", "'")
    for name in doc["components"]["schemas"]:
        assert f'id="schema-{name}"' in page


def test_the_schema_routes_need_no_auth(app: Any) -> None:
    for path in ("/schema", "/schema/openapi.json"):
        for method in ("GET", "HEAD"):
            assert get(app, path, method).status_code == 200, (method, path)


def test_the_document_is_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    finish = openapi_config_module.finish

    def counting(*args: Any) -> dict[str, Any]:
        calls.append(1)
        return finish(*args)

    monkeypatch.setattr(openapi_config_module, "finish", counting)
    app = create_app(load_settings(None, environ={}))
    first = get(app, "/schema/openapi.json").content
    assert get(app, "/schema/openapi.json").content == first
    get(app, "/schema")
    get(app, "/schema")
    assert len(calls) == 1
