"""Minimal ASGI plumbing: types, JSON codec, body reading and disconnect watching."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import msgspec

# Deliberately loose so the app type-checks both as a plain ASGI app (httpx, uvicorn) and when
# mounted in Litestar, whose TypedDict-based messages fit neither a MutableMapping nor a narrow send.
Scope = Mapping[str, Any]
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Any], Awaitable[None]]

# Built once: per-request encoder/decoder construction would show up in benchmarks.
ENCODER = msgspec.json.Encoder()
DECODER = msgspec.json.Decoder()
encode = ENCODER.encode

_JSON_HEADERS: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when the client went away before sending it."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


async def send_json(
    send: Send, status: int, body: Any, extra_headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = encode(body)
    headers = [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())]
    if extra_headers:
        headers.extend(extra_headers)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


def header_dict(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        # Repeated headers are folded the way HTTP allows, so none is silently lost.
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def run_until_disconnect(work: Coroutine[Any, Any, None], receive: Receive) -> bool:
    """Run `work` while listening for the client going away; True if it went away first.

    A side task waits for `http.disconnect` and cancels us, which wakes `work` from any sleep at
    once. `work` runs in the calling task rather than a new one because streams are benchmarked
    and every extra task and loop hop costs. Exceptions from `work` propagate.
    """
    task = asyncio.current_task()
    if task is None:  # not under asyncio: nothing to cancel, so just run it
        await work
        return False
    gone = False

    async def watch() -> None:
        nonlocal gone
        await _wait_disconnect(receive)
        gone = True
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        await work
    except asyncio.CancelledError:
        # Swallow only the cancellation we caused; one from outside (server shutdown) must go on.
        if gone and task.uncancel() == 0:
            return True
        raise
    finally:
        watcher.cancel()
    return False


async def send_json_later(
    send: Send,
    receive: Receive,
    delay_ms: float,
    status: int,
    body: Any,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    if delay_ms <= 0:
        await send_json(send, status, body, extra_headers)
        return

    async def respond() -> None:
        await asyncio.sleep(delay_ms / 1000)
        await send_json(send, status, body, extra_headers)

    await run_until_disconnect(respond(), receive)
