"""What a route declares for its OpenAPI operation beyond what Litestar reads from its signature.

Litestar documents a handler from its types: the return annotation (a Struct) is the 2xx body,
path parameters come from the path, `summary=`/`description=`/`tags=`/`security=`/`responses=`
on the decorator go in as they are.  What it cannot see is what a handler reads by hand, and
tollway's handlers read their own bodies and query strings (for their own 400s and no
per-request work by the framework).  Those go in `opt=documented(...)`:

    @post("/workspaces/{workspace_id:str}/keys", status_code=201, summary="Create an API key",
          opt=documented(body=KeyCreate))
    async def create_key(self, request: Request[Any, Any, Any], workspace_id: str) -> KeyRead: ...

Only the document reads a `Doc`; the request path never looks at it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from litestar.openapi import ResponseSpec

__all__ = ["DOC_KEY", "Auth", "Doc", "ErrorShape", "ErrorStatus", "documented", "responds"]

DOC_KEY = "openapi"

# Who may call: anyone, a workspace API key (`Authorization: Bearer tw-…`), the same or
# `x-api-key: tw-…` (the Anthropic routes), the admin token, or the admin token unless the
# configuration opens the route (`[metrics] public`).
Auth = Literal["none", "api_key", "api_key_or_x_api_key", "admin", "admin_or_none"]
ErrorShape = Literal["openai", "anthropic"]
# A status, or "default": what an upstream answers, passed through.
ErrorStatus = int | Literal["default"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Doc:
    """One route's declaration.  Types are msgspec Structs (JSON Schema by `msgspec.json`)."""

    body: type | None = None  # the JSON object the handler decodes its body into
    query: type | None = None  # one field per query parameter the handler reads
    auth: Auth | None = None  # None: by path, /admin/… the admin token, /v1/… an API key, else none
    errors: Mapping[ErrorStatus, str] = field(default_factory=dict)  # statuses beyond the usual, and why
    error_shape: ErrorShape = "openai"
    ok: type | None = None  # the JSON 2xx body of a handler that passes bytes through
    events: type | None = None  # one SSE `data:` payload, when the request asks for a stream
    stream: str | None = None  # what the stream holds and how it ends
    headers: tuple[str, ...] = ()  # response headers of the 2xx (names in `tables.HEADERS`)
    request_headers: tuple[str, ...] = ()  # header parameters (names in `tables.REQUEST_HEADERS`)


def documented(
    *,
    body: type | None = None,
    query: type | None = None,
    auth: Auth | None = None,
    errors: Mapping[ErrorStatus, str] | None = None,
    error_shape: ErrorShape = "openai",
    ok: type | None = None,
    events: type | None = None,
    stream: str | None = None,
    headers: tuple[str, ...] = (),
    request_headers: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A route decorator's `opt=`, carrying its `Doc`."""
    doc = Doc(
        body=body,
        query=query,
        auth=auth,
        errors=dict(errors or {}),
        error_shape=error_shape,
        ok=ok,
        events=events,
        stream=stream,
        headers=headers,
        request_headers=request_headers,
    )
    return {DOC_KEY: doc}


def responds(shape: type, description: str, status: int = 200) -> dict[int, ResponseSpec]:
    """A route decorator's `responses=` for a handler whose return annotation is not its body's type.

    For a handler that returns a dict built elsewhere (the reports) or bytes: `shape` is the
    Struct the body conforms to.
    """
    return {status: ResponseSpec(shape, description=description, generate_examples=False)}
