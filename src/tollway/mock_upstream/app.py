"""The mock upstream as a raw ASGI application, routed on path suffixes so it can be mounted anywhere."""

from __future__ import annotations

import secrets
from collections.abc import Coroutine
from typing import Any

import msgspec

from tollway.mock_upstream import anthropic
from tollway.mock_upstream.asgi import (
    DECODER,
    Receive,
    Scope,
    Send,
    header_dict,
    read_body,
    run_until_disconnect,
    send_json,
    send_json_later,
)
from tollway.mock_upstream.behaviour import Behaviour, resolve
from tollway.mock_upstream.chat import CREATED, Plan, build_plan, completion_body
from tollway.mock_upstream.errors import BadRequest, bad_api_key, error_body, failure
from tollway.mock_upstream.stream import ConnectionCut, write_stream
from tollway.mock_upstream.surfaces import SURFACE_ANSWERS, SurfaceAnswer

MODEL_IDS = ("gpt-4o-mini", "gpt-4o", "mock-model")


def _models() -> dict[str, Any]:
    data = [{"id": m, "object": "model", "created": CREATED, "owned_by": "tollway-mock"} for m in MODEL_IDS]
    return {"object": "list", "data": data}


class Stats:
    __slots__ = ("active_streams", "requests", "streams_cancelled", "streams_completed", "streams_started")

    def __init__(self) -> None:
        self.requests = 0
        self.streams_started = 0
        self.streams_completed = 0
        self.streams_cancelled = 0
        self.active_streams = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "streams_started": self.streams_started,
            "streams_completed": self.streams_completed,
            "streams_cancelled": self.streams_cancelled,
            "active_streams": self.active_streams,
        }


def _bearer(headers: dict[str, str]) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def _route(path: str, suffix: str) -> bool:
    # Suffix matching keeps routing right whether or not a host app stripped its mount prefix.
    return path.endswith(suffix) or path == suffix[1:]


class MockUpstream:
    """One mock server's state. Instances are independent; nothing is shared between them.

    `api_key`: when set, chat completions and /models answer 401 to any other bearer token.
    `inspection`: serve /mock/stats, /mock/reset and /mock/requests/last, keep the last request's
    body and headers for the latter, and repeat a wrong key in 401 bodies as OpenAI does; all of
    which tests want. Without it those routes are unknown URLs (404), nothing about a request is kept
    and no 401 repeats a key, which is how a mock that strangers can reach must run.
    """

    def __init__(self, api_key: str | None = None, *, inspection: bool = True) -> None:
        self.api_key = api_key
        self.inspection = inspection
        self.stats = Stats()
        # Only ever set with inspection on.
        self.last_body: Any = None
        self.last_headers: dict[str, str] = {}
        self._completions = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"].rstrip("/")
        method = scope["method"]
        if method == "POST" and _route(path, "/chat/completions"):
            await self._chat(scope, receive, send)
        elif method == "POST" and (messages := anthropic.route(path)) is not None:
            # Anthropic's Messages API: its own auth, validation and error shapes (see anthropic.py).
            await messages(self, scope, receive, send)
        elif method == "POST" and (surface := _other_surface(path)) is not None:
            accepted = await self._accept(scope, receive, send)
            if accepted is not None:
                body, headers, behaviour = accepted
                if behaviour.fail is not None:
                    model = body.get("model")
                    await self._fail(
                        receive, send, behaviour, _bearer(headers), model if isinstance(model, str) else ""
                    )
                else:
                    self._completions += 1
                    await surface(self, receive, send, body, behaviour, self._completions)
        elif method == "GET" and _route(path, "/models"):
            headers = header_dict(scope)
            if self._authorized(headers):
                await send_json(send, 200, _models())
            else:
                await send_json(send, 401, self._unauthorized(headers))
        elif self.inspection and method == "GET" and _route(path, "/mock/stats"):
            await send_json(send, 200, self.stats.as_dict())
        elif self.inspection and method == "POST" and _route(path, "/mock/reset"):
            self.reset()
            await send_json(send, 200, self.stats.as_dict())
        elif self.inspection and method == "GET" and _route(path, "/mock/requests/last"):
            await send_json(send, 200, {"body": self.last_body, "headers": self.last_headers})
        else:
            message = f"Unknown request URL: {method} {scope.get('root_path', '')}{scope['path']}."
            await send_json(send, 404, error_body(message, "invalid_request_error", code="unknown_url"))

    def reset(self) -> None:
        self.stats = Stats()
        self.last_body = None
        self.last_headers = {}
        self._completions = 0

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.api_key is None:
            return True
        token = _bearer(headers) or ""
        return secrets.compare_digest(token.encode(), self.api_key.encode())

    def _unauthorized(self, headers: dict[str, str]) -> dict[str, Any]:
        return bad_api_key(_bearer(headers), echo=self.inspection)

    async def _accept(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[dict[str, Any], dict[str, str], Behaviour] | None:
        """The request's body, headers and knobs; None once an error has been answered."""
        self.stats.requests += 1
        headers = header_dict(scope)
        authorized = self._authorized(headers)
        if not authorized and not self.inspection:
            # Turned away before the body is read: a stranger cannot make the mock buffer or parse anything.
            await send_json(send, 401, self._unauthorized(headers))
            return None
        raw = await read_body(receive)
        if raw is None:
            return None
        try:
            body = DECODER.decode(raw)
        except msgspec.DecodeError as exc:
            message = f"We could not parse the JSON body of your request: {exc}"
            await send_json(send, 400, error_body(message, "invalid_request_error"))
            return None
        if not isinstance(body, dict):
            await send_json(
                send, 400, error_body("The request body must be a JSON object.", "invalid_request_error")
            )
            return None
        if self.inspection:
            self.last_body, self.last_headers = body, headers
        if not authorized:
            await send_json(send, 401, self._unauthorized(headers))
            return None
        try:
            behaviour = resolve(body.get("model"), body.get("mock"))
        except BadRequest as exc:
            await send_json(send, 400, exc.body())
            return None
        return body, headers, behaviour

    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        accepted = await self._accept(scope, receive, send)
        if accepted is None:
            return
        body, headers, behaviour = accepted
        try:
            self._completions += 1
            plan = build_plan(body, behaviour, f"chatcmpl-mock-{self._completions}")
        except BadRequest as exc:
            await send_json(send, 400, exc.body())
            return
        if behaviour.fail is not None:
            await self._fail(receive, send, behaviour, _bearer(headers), plan.model)
        elif body.get("stream") is True:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            await self._stream(receive, send, plan, behaviour, include_usage)
        else:
            await self._complete(receive, send, plan, behaviour)

    async def _fail(
        self, receive: Receive, send: Send, behaviour: Behaviour, token: str | None, model: str
    ) -> None:
        status = behaviour.fail or 500
        body, extra = failure(status, token, model, echo_key=self.inspection)
        await send_json_later(send, receive, behaviour.headers_delay_ms, status, body, extra)

    async def _complete(self, receive: Receive, send: Send, plan: Plan, behaviour: Behaviour) -> None:
        # A non-streamed answer arrives when the streamed one would have finished.
        steps = len(plan.reasoning) + len(plan.pieces)
        delay = behaviour.headers_delay_ms + behaviour.ttft_ms + behaviour.chunk_delay_ms * max(steps - 1, 0)
        await send_json_later(send, receive, delay, 200, completion_body(plan))

    async def _stream(
        self, receive: Receive, send: Send, plan: Plan, behaviour: Behaviour, include_usage: bool
    ) -> None:
        await self.run_stream(receive, write_stream(send, plan, behaviour, include_usage))

    async def run_stream(self, receive: Receive, work: Coroutine[Any, Any, None]) -> None:
        """Write a stream (`work`), counting it in the stats and stopping when the client goes away."""
        stats = self.stats
        stats.streams_started += 1
        stats.active_streams += 1
        try:
            gone = await run_until_disconnect(work, receive)
        except ConnectionCut:
            # The script ended the stream on purpose; it was not the client's doing.
            stats.streams_completed += 1
            raise
        finally:
            stats.active_streams -= 1
        if gone:
            stats.streams_cancelled += 1
        else:
            stats.streams_completed += 1


def _other_surface(path: str) -> SurfaceAnswer | None:
    """The handler of a surface other than chat completions (checked first: it ends in /completions too)."""
    for suffix, answer in SURFACE_ANSWERS.items():
        if _route(path, suffix):
            return answer
    return None


def create_app(api_key: str | None = None, *, inspection: bool = True) -> MockUpstream:
    """A fresh mock upstream ASGI app with its own counters and request log; see `MockUpstream`."""
    return MockUpstream(api_key=api_key, inspection=inspection)
