"""The fixed parts of the document: security schemes, documented headers, the usual errors.

A route's `Doc` names headers from `HEADERS` (its 2xx) and `REQUEST_HEADERS` (parameters).
"""

from __future__ import annotations

from typing import Any

from tollway.api.openapi.declare import Auth

__all__ = [
    "ADMIN_401",
    "ERRORS",
    "ERROR_HEADERS",
    "HEADERS",
    "PATH_PARAMS",
    "REQUEST_HEADERS",
    "SECURITY",
    "SECURITY_SCHEMES",
]

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "tw-…",
        "description": "A workspace API key, `Authorization: Bearer tw-…` "
        "(made with POST /admin/workspaces/{id}/keys).",
    },
    "xApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "The same API key as `x-api-key: tw-…`, as the Anthropic SDK sends it.",
    },
    "adminToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The admin token, `Authorization: Bearer $TOLLWAY_ADMIN_TOKEN`.",
    },
}
SECURITY: dict[Auth, list[dict[str, list[str]]]] = {
    "none": [],
    "api_key": [{"apiKey": []}],
    "api_key_or_x_api_key": [{"apiKey": []}, {"xApiKey": []}],
    "admin": [{"adminToken": []}],
    "admin_or_none": [{"adminToken": []}, {}],
}

_STRING = {"type": "string"}
_DECIMAL = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}
_RATE = "for the tightest rate limit in force on the key or its workspace; absent when none applies."
HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-Id": {
        "description": "This request's id, on every response (errors too); a billed request's usage "
        "record has the same id (GET /v1/usage/requests/{request_id}).",
        "schema": {"type": "string", "examples": ["req_0123456789abcdefghijklmn"]},
    },
    "X-Request-Cost": {"description": "What the request cost, USD (non-streaming).", "schema": _DECIMAL},
    "X-Tokens-Used": {"description": "Total tokens billed (non-streaming).", "schema": {"type": "integer"}},
    "X-Balance-Remaining": {
        "description": "The workspace's balance after this request, USD (non-streaming).",
        "schema": _DECIMAL,
    },
    "x-ratelimit-limit-requests": {"description": f"Requests per minute, {_RATE}", "schema": _STRING},
    "x-ratelimit-remaining-requests": {"description": f"Requests left, {_RATE}", "schema": _STRING},
    "x-ratelimit-reset-requests": {"description": f"Until the requests reset, {_RATE}", "schema": _STRING},
    "x-ratelimit-limit-tokens": {"description": f"Tokens per minute, {_RATE}", "schema": _STRING},
    "x-ratelimit-remaining-tokens": {"description": f"Tokens left, {_RATE}", "schema": _STRING},
    "x-ratelimit-reset-tokens": {"description": f"Until the tokens reset, {_RATE}", "schema": _STRING},
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
    "x-should-retry": {
        "description": "`false`: retrying cannot succeed (the OpenAI and Anthropic SDKs honour it).",
        "schema": {"type": "string", "enum": ["false"]},
    },
    "idempotent-replayed": {
        "description": "`true` when the idempotency key was used before: the first result, nothing credited.",
        "schema": {"type": "string", "enum": ["true"]},
    },
}
REQUEST_HEADERS: dict[str, dict[str, Any]] = {
    "anthropic-version": {
        "description": "Passed to the upstream.",
        "schema": {"type": "string", "examples": ["2023-06-01"]},
    },
    "anthropic-beta": {"description": "Passed to the upstream.", "schema": _STRING},
}
PATH_PARAMS = {
    "workspace_id": "A workspace's id (`ws_…`).",
    "key_id": "An API key's id (`key_…`).",
    "request_id": "A request's id, as its `X-Request-Id` said (`req_…`).",
    "model_id": "A served model's name (it may hold slashes).",
}
ERRORS: dict[int, str] = {
    400: "Invalid request: malformed JSON, a wrong type or a bad value; `param` names the field or "
    "parameter.",
    401: "Missing, unknown or revoked API key (`invalid_api_key`).",
    404: "Nothing by that id (in the caller's own workspace).",
    413: "The body is over `[server] max_request_bytes` (`request_too_large`).",
}
ADMIN_401 = (
    "Missing or wrong admin token (`invalid_admin_token`), or no admin token is configured "
    "(`admin_disabled`)."
)
ERROR_HEADERS = {402: ("x-should-retry",), 429: ("Retry-After", "x-should-retry")}
