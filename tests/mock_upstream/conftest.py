"""Drivers for calling the mock upstream in-process."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tollway.mock_upstream import MockUpstream, create_app


@dataclass
class Exchange:
    """Everything an ASGI app sent for one request."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    bodies: list[bytes] = field(default_factory=list)
    complete: bool = False

    @property
    def raw(self) -> bytes:
        return b"".join(self.bodies)

    def json(self) -> Any:
        return json.loads(self.raw)

    def events(self) -> list[Any]:
        """Decoded `data:` payloads of an SSE body (`[DONE]` kept as the string)."""
        data, pending = parse_sse(self.raw)
        assert pending is None, "stream ended inside an event"
        return [d if d == "[DONE]" else json.loads(d) for d in data]


def parse_sse(raw: bytes) -> tuple[list[str], str | None]:
    """A spec-following SSE parser: any of CRLF/CR/LF, comments, multi-line data joined by "\\n".

    Returns the dispatched events' data and the data of an event left unterminated at the end.
    """
    lines = re.split(r"\r\n|\r|\n", raw.decode())
    remainder = lines.pop()  # text after the last line terminator: an unterminated line
    events: list[str] = []
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                events.append("\n".join(data))
            data = []
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            if name == "data":
                data.append(value.removeprefix(" "))
    if remainder.startswith("data:"):
        data.append(remainder[5:].removeprefix(" "))
    return events, "\n".join(data) if data else None


async def drive(
    app: MockUpstream,
    body: bytes | dict[str, Any],
    *,
    method: str = "POST",
    path: str = "/v1/chat/completions",
    headers: dict[str, str] | None = None,
    disconnect: asyncio.Event | None = None,
    root_path: str = "",
) -> Exchange:
    """Call the app with a fake receive/send. Setting `disconnect` makes receive report the client gone."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    gone = disconnect or asyncio.Event()
    exchange = Exchange()
    body_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            exchange.status = message["status"]
            exchange.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        else:
            exchange.bodies.append(message.get("body", b""))
            if not message.get("more_body", False):
                exchange.complete = True
                gone.set()

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": root_path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    await app(scope, receive, send)
    return exchange


@pytest.fixture
def app() -> MockUpstream:
    return create_app()


@pytest.fixture
async def client(app: MockUpstream) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mock") as c:
        yield c
