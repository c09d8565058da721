"""The mock's Anthropic Messages API: `POST …/messages` (non-stream and stream) and `…/messages/count_tokens`.

Requests are handled here from the start, not through the OpenAI surfaces' shared acceptance,
because everything differs on the way in: the key comes as `x-api-key` (or `Authorization:
Bearer`), `anthropic-version` is required, and every error — a bad key, bad JSON, a bad knob,
a missing field, the `fail` knob — has Anthropic's shape `{"type": "error", "error": {"type",
"message"}}`.  The inspection log (`/mock/requests/last`) keeps the headers, so tests can see
`anthropic-version` / `anthropic-beta` arrived.  A `?beta=true` query (which the SDK's beta client
adds) is ignored, as ASGI keeps it out of the path anyway.

What the answer says comes from `anthropic_events`.  A stream is Anthropic's event sequence, each
event framed as `event: <type>` + `data: <json>` (chat's `sse_style` variants apply), with the
pacing and fault knobs as on the other surfaces: `headers_delay_ms` before the response starts;
`message_start`, the first `content_block_start` and `ping` at once, then `ttft_ms` before the
first delta and `chunk_delay_ms` before every later thinking / text / input_json delta;
`cut_after` / `error_after` N: after N text (or input_json) deltas the connection is dropped /
an `error` event (`overloaded_error`) is sent and the stream ends.  A non-stream answer arrives
when the stream would have finished.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from tollway.mock_upstream.anthropic_events import (
    STREAM_ERROR,
    EventKind,
    MessagePlan,
    build_message_plan,
    estimate_input_tokens,
    message_body,
    message_events,
)
from tollway.mock_upstream.asgi import (
    DECODER,
    Receive,
    Scope,
    Send,
    encode,
    header_dict,
    read_body,
    send_json,
    send_json_later,
)
from tollway.mock_upstream.behaviour import Behaviour, resolve
from tollway.mock_upstream.errors import BadRequest, Headers
from tollway.mock_upstream.responses import EventFramer
from tollway.mock_upstream.stream import SSE_HEADERS, YIELD_EVERY, ConnectionCut, sleep_ms

__all__ = ["AnthropicAnswer", "count_tokens", "error_body", "failure", "messages", "route"]

# `mock` is the MockUpstream (typed loosely, as in surfaces.py, to keep app.py's imports one-way).
AnthropicAnswer = Callable[[Any, Scope, Receive, Send], Awaitable[None]]

_RETRY_AFTER: Headers = [(b"retry-after", b"1")]
_ROLES = ("user", "assistant")


def error_body(type_: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}}


def failure(status: int, model: str) -> tuple[dict[str, Any], Headers]:
    """Body and extra headers for the `fail` knob, as Anthropic words them."""
    if status == 401:
        return error_body("authentication_error", "invalid x-api-key"), []
    if status == 402:
        return error_body("billing_error", "Your credit balance is too low to access the Anthropic API."), []
    if status == 403:
        return error_body(
            "permission_error", "Your API key does not have permission to use this resource."
        ), []
    if status == 404:
        return error_body("not_found_error", f"model: {model}"), []
    if status == 413:
        return error_body("request_too_large", "Request exceeds the maximum allowed number of bytes."), []
    if status == 429:
        message = (
            "This request would exceed the rate limit for your organization of 3 requests per minute. "
            "Please try again in 1s."
        )
        return error_body("rate_limit_error", message), list(_RETRY_AFTER)
    if status < 500:
        return error_body("invalid_request_error", f"mock upstream refused the request ({status})"), []
    if status == 504:
        return error_body("timeout_error", "Request timed out"), []
    if status == 529:
        return error_body("overloaded_error", "Overloaded"), []
    return error_body("api_error", "Internal server error"), []


def route(path: str) -> AnthropicAnswer | None:
    """The handler for a (slash-stripped) path, matched on its suffix as app.py matches the others."""
    for suffix, answer in _ROUTES:
        if path.endswith(suffix) or path == suffix[1:]:
            return answer
    return None


def _given_key(headers: dict[str, str]) -> str:
    key = headers.get("x-api-key", "").strip()
    if key:
        return key
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _unauthorized(headers: dict[str, str]) -> dict[str, Any]:
    # Never repeats the key (Anthropic doesn't).
    if not _given_key(headers):
        return error_body("authentication_error", "x-api-key header is required")
    return error_body("authentication_error", "invalid x-api-key")


def _authorized(api_key: str | None, headers: dict[str, str]) -> bool:
    if api_key is None:
        return True
    return secrets.compare_digest(_given_key(headers).encode(), api_key.encode())


def _invalid(message: str) -> dict[str, Any]:
    return error_body("invalid_request_error", message)


def _problem(body: dict[str, Any], *, needs_max_tokens: bool) -> str | None:
    """What is wrong with the request's fields, worded as Anthropic's validation does; None if nothing."""
    model = body.get("model")
    if model is None:
        return "model: Field required"
    if not isinstance(model, str) or not model:
        return "model: Input should be a valid non-empty string"
    if needs_max_tokens:
        limit = body.get("max_tokens")
        if limit is None:
            return "max_tokens: Field required"
        if type(limit) is not int:
            return "max_tokens: Input should be a valid integer"
        if limit < 1:
            return "max_tokens: Input should be greater than or equal to 1"
    given = body.get("messages")
    if given is None:
        return "messages: Field required"
    if not isinstance(given, list):
        return "messages: Input should be a valid list"
    if not given:
        return "messages: at least one message is required"
    for i, message in enumerate(given):
        if not isinstance(message, dict):
            return f"messages.{i}: Input should be a valid dictionary"
        if message.get("role") not in _ROLES:
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if "content" not in message:
            return f"messages.{i}.content: Field required"
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        return "stream: Input should be a valid boolean"
    return None


async def _accept(
    mock: Any, scope: Scope, receive: Receive, send: Send, *, needs_max_tokens: bool
) -> tuple[dict[str, Any], Behaviour] | None:
    """The request's body and knobs; None once an error has been answered."""
    mock.stats.requests += 1
    headers = header_dict(scope)
    authorized = _authorized(mock.api_key, headers)
    if not authorized and not mock.inspection:
        # Turned away before the body is read, as the OpenAI surfaces are.
        await send_json(send, 401, _unauthorized(headers))
        return None
    raw = await read_body(receive)
    if raw is None:
        return None
    try:
        body = DECODER.decode(raw)
    except msgspec.DecodeError as exc:
        await send_json(send, 400, _invalid(f"There was an error parsing the body: {exc}"))
        return None
    if not isinstance(body, dict):
        await send_json(send, 400, _invalid("The request body must be a JSON object."))
        return None
    if mock.inspection:
        mock.last_body, mock.last_headers = body, headers
    if not authorized:
        await send_json(send, 401, _unauthorized(headers))
        return None
    if not headers.get("anthropic-version", "").strip():
        problem: str | None = "anthropic-version: header is required"
    else:
        problem = _problem(body, needs_max_tokens=needs_max_tokens)
    if problem is None:
        try:
            return body, resolve(body.get("model"), body.get("mock"))
        except BadRequest as exc:
            problem = exc.message
    await send_json(send, 400, _invalid(problem))
    return None


async def _fail(receive: Receive, send: Send, behaviour: Behaviour, model: str) -> None:
    status = behaviour.fail or 500
    body, extra = failure(status, model)
    await send_json_later(send, receive, behaviour.headers_delay_ms, status, body, extra)


def _request_id(serial: int) -> Headers:
    return [(b"request-id", f"req_mock_{serial}".encode())]


async def messages(mock: Any, scope: Scope, receive: Receive, send: Send) -> None:
    accepted = await _accept(mock, scope, receive, send, needs_max_tokens=True)
    if accepted is None:
        return
    body, behaviour = accepted
    if behaviour.fail is not None:
        await _fail(receive, send, behaviour, body["model"])
        return
    mock._completions += 1
    serial: int = mock._completions
    plan = build_message_plan(body, behaviour, serial)
    if body.get("stream") is True:
        await mock.run_stream(receive, write_message_stream(send, plan, behaviour))
        return
    steps = len(plan.thinking) + len(plan.pieces)
    delay = behaviour.headers_delay_ms + behaviour.ttft_ms + behaviour.chunk_delay_ms * max(steps - 1, 0)
    await send_json_later(send, receive, delay, 200, message_body(plan), _request_id(serial))


async def count_tokens(mock: Any, scope: Scope, receive: Receive, send: Send) -> None:
    """`{"input_tokens": n}`: the `prompt_tokens` knob, else the estimate `/messages` would report."""
    accepted = await _accept(mock, scope, receive, send, needs_max_tokens=False)
    if accepted is None:
        return
    body, behaviour = accepted
    if behaviour.fail is not None:
        await _fail(receive, send, behaviour, body["model"])
        return
    prompt = behaviour.prompt_tokens
    answer = {"input_tokens": estimate_input_tokens(body) if prompt is None else prompt}
    await send_json_later(send, receive, behaviour.headers_delay_ms, 200, answer)


async def write_message_stream(send: Send, plan: MessagePlan, behaviour: Behaviour) -> None:
    await sleep_ms(behaviour.headers_delay_ms)
    headers = [*SSE_HEADERS, *_request_id(plan.serial)]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    framer = EventFramer(behaviour.sse_styles)
    unpaused = 0

    async def write(name: str, payload: dict[str, Any], last: bool = False) -> None:
        nonlocal unpaused
        for piece in framer.pieces(framer.event(name, encode(payload), last)):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        unpaused += 1
        if unpaused >= YIELD_EVERY:
            unpaused = 0
            await asyncio.sleep(0)

    opening = framer.opening()
    if opening:
        await send({"type": "http.response.body", "body": opening, "more_body": True})
    content_sent = 0
    waited = False
    for event in message_events(plan):
        kind = event.kind
        if kind is not EventKind.FRAME and not waited:
            # The time to the first token (or, with no tokens at all, to the end of the message).
            await sleep_ms(behaviour.ttft_ms)
            waited = True
        elif (kind is EventKind.CONTENT or kind is EventKind.WORD) and behaviour.chunk_delay_ms > 0:
            await sleep_ms(behaviour.chunk_delay_ms)
            unpaused = 0
        if kind is EventKind.CONTENT or kind is EventKind.TAIL:
            if behaviour.cut_after is not None and content_sent >= behaviour.cut_after:
                raise ConnectionCut(f"mock cut_after={behaviour.cut_after}")
            if behaviour.error_after is not None and content_sent >= behaviour.error_after:
                await write("error", STREAM_ERROR, last=True)
                break
        await write(event.name, event.payload, last=event.name == "message_stop")
        if kind is EventKind.CONTENT:
            content_sent += 1
    await send({"type": "http.response.body", "body": b"", "more_body": False})


# The longer suffix first: `/messages/count_tokens` must not be taken for `/messages`.
_ROUTES: tuple[tuple[str, AnthropicAnswer], ...] = (
    ("/messages/count_tokens", count_tokens),
    ("/messages", messages),
)
