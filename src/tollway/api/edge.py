"""What every HTTP exchange gets before any route runs: a request id, HEAD, and CORS.

`Edge` wraps the whole ASGI app (404s and 405s included, which never reach a
route's middleware):

- every response carries `X-Request-Id`; the id is made here and handed to the
  route in the scope (`request_id(scope)`), so a usage record's id is the one
  the client saw;
- `HEAD` is answered wherever `GET` is: the app sees a GET and uvicorn, which
  knows the request was a HEAD, sends the headers without the body;
- CORS for the origins in `[server] cors_origins`: preflights from them are
  answered here, their requests get `Access-Control-Allow-Origin` and the
  cost headers exposed; other origins get no CORS header at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from tollway.keys import new_id

__all__ = ["RAW_SEND", "REQUEST_ID", "Edge", "request_id"]

ASGIApp = Any
REQUEST_ID = "tollway.request_id"
# The server's own `send`, for a response's body once its start went through every wrapper: only
# the start is ever changed on the way out (this edge's headers), so a stream's chunks skip the
# wrappers' layers (see api/proxy.py).
RAW_SEND = "tollway.raw_send"

_EXPOSED = (
    b"x-request-id, x-request-cost, x-tokens-used, x-balance-remaining, x-should-retry, retry-after, "
    b"x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests, "
    b"x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens"
)
_METHODS = b"GET, HEAD, POST, PATCH, DELETE, OPTIONS"
_TOKEN = re.compile(rb"[A-Za-z0-9\-_]{1,64}")
_DEFAULT_HEADERS = b"authorization, content-type, x-api-key, anthropic-version, anthropic-beta"


def request_id(scope: Any) -> str:
    """The id `Edge` gave this request (a fresh one when the app runs without `Edge`, as in unit tests)."""
    found = scope.get(REQUEST_ID)
    if found is None:
        found = scope[REQUEST_ID] = new_id("req")
    return str(found)


class Edge:
    __slots__ = ("_any_origin", "_app", "_origins", "startup_failures")

    def __init__(self, app: ASGIApp, *, cors_origins: Iterable[str] = ()) -> None:
        self._app = app
        # Why start-up failed, in tollway's words (the app's lifespan appends them): uvicorn prints
        # this instead of the traceback the framework would put in `lifespan.startup.failed`.
        self.startup_failures: list[str] = []
        origins = {o.encode("latin-1") for o in cors_origins}
        self._any_origin = b"*" in origins
        self._origins = frozenset(origins - {b"*"})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(
                scope, receive, self._lifespan_send(send) if scope["type"] == "lifespan" else send
            )
            return
        rid = new_id("req")
        scope[REQUEST_ID] = rid
        scope[RAW_SEND] = send
        extra: list[tuple[bytes, bytes]] = [(b"x-request-id", rid.encode())]
        if self._any_origin or self._origins:
            origin = self._allowed_origin(scope["headers"])
            if origin is not None:
                if scope["method"] == "OPTIONS" and _header(
                    scope["headers"], b"access-control-request-method"
                ):
                    await _preflight(send, origin, scope["headers"], extra)
                    return
                extra += [
                    (b"access-control-allow-origin", origin),
                    (b"access-control-expose-headers", _EXPOSED),
                    (b"vary", b"origin"),
                ]
        if scope["method"] == "HEAD":
            scope = {**scope, "method": "GET"}

        async def edge_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self._app(scope, receive, edge_send)

    def _lifespan_send(self, send: Any) -> Any:
        async def lifespan_send(message: Any) -> None:
            if message["type"] == "lifespan.startup.failed" and self.startup_failures:
                message = {**message, "message": f"tollway: {self.startup_failures[-1]}"}
            await send(message)

        return lifespan_send

    def _allowed_origin(self, headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
        origin = _header(headers, b"origin")
        if origin is None:
            return None
        if origin in self._origins:
            return origin
        return b"*" if self._any_origin else None  # "*" itself, never the client's text reflected


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


async def _preflight(
    send: Any, origin: bytes, headers: Iterable[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]]
) -> None:
    asked = _header(headers, b"access-control-request-headers")
    if asked is not None:  # echoed back, so only header-name characters
        asked = b", ".join(n for n in (p.strip() for p in asked.split(b",")) if _TOKEN.fullmatch(n)) or None
    await send(
        {
            "type": "http.response.start",
            "status": 204,
            "headers": [
                *extra,
                (b"access-control-allow-origin", origin),
                (b"access-control-allow-methods", _METHODS),
                (b"access-control-allow-headers", asked or _DEFAULT_HEADERS),
                (b"access-control-max-age", b"600"),
                (b"vary", b"origin"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"", "more_body": False})
