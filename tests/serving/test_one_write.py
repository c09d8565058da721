"""A response's head leaves with the first piece of its body (tollway.serving.one_write).

tollway's protocol is fed raw request bytes over a transport that records every
write: what the client would receive, and in how many system calls.  A stream's
head never waits for a first chunk that is not there yet; the bytes on the wire
are exactly uvicorn's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from tollway.serving.timeouts import HeaderTimeoutProtocol

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class Recording(asyncio.Transport):
    """A transport that keeps each write (a `writelines` is one write: one system call)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.writes.append(b"".join(list_of_data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


During = Callable[[Recording, HeaderTimeoutProtocol], Awaitable[None]]


async def _serve(app: App, data: bytes, *, during: During | None = None) -> Recording:
    config = Config(app=app, lifespan="off", log_level="critical", proxy_headers=False, server_header=False)
    config.load()
    state = ServerState()
    state.default_headers = []  # no Date header: the bytes below are exact
    protocol = HeaderTimeoutProtocol(config, state, {}, asyncio.get_running_loop())
    transport = Recording()
    protocol.connection_made(transport)
    protocol.data_received(data)
    if during is not None:
        await during(transport, protocol)
    while state.tasks:
        await asyncio.gather(*state.tasks)
    protocol.connection_lost(None)
    return transport


def _json_app(body: bytes, pieces: int = 1) -> App:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
            }
        )
        size = -(-len(body) // pieces)
        for start in range(0, len(body), size):
            last = start + size >= len(body)
            await send(
                {"type": "http.response.body", "body": body[start : start + size], "more_body": not last}
            )

    return app


GET = b"GET /v HTTP/1.1\r\nHost: t\r\n\r\n"
JSON_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
SSE_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/event-stream")],
}
SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


async def test_a_whole_answer_is_one_write_of_exactly_uvicorns_bytes() -> None:
    transport = await _serve(_json_app(b'{"ok":true}'), GET)
    assert transport.writes == [JSON_HEAD % 11 + b'{"ok":true}']


async def test_a_body_in_pieces_has_the_head_with_its_first_piece() -> None:
    transport = await _serve(_json_app(b"abcdefghij", pieces=3), GET)
    assert transport.writes == [JSON_HEAD % 10 + b"abcd", b"efgh", b"ij"]


async def test_pipelined_answers_are_one_write_each_and_in_order() -> None:
    transport = await _serve(_json_app(b"[]"), GET + GET + GET)
    assert transport.writes == [JSON_HEAD % 2 + b"[]"] * 3


async def test_a_head_request_gets_its_head_alone() -> None:
    transport = await _serve(_json_app(b"hello"), b"HEAD /v HTTP/1.1\r\nHost: t\r\n\r\n")
    assert transport.writes == [JSON_HEAD % 5]


async def test_a_streams_head_is_written_at_the_end_of_the_turn_when_its_first_chunk_is_not_there() -> None:
    first_chunk = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(SSE_START)
        await first_chunk.wait()
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def during(transport: Recording, protocol: HeaderTimeoutProtocol) -> None:
        for _ in range(20):
            await asyncio.sleep(0)
        assert transport.writes == [SSE_HEAD]
        first_chunk.set()

    transport = await _serve(app, GET, during=during)
    assert transport.writes[1:] == [b"9\r\ndata: 1\n\n\r\n", b"0\r\n\r\n"]


async def test_a_streams_head_goes_with_a_first_chunk_that_is_there_already() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(SSE_START)
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    transport = await _serve(app, GET)
    assert transport.writes == [
        SSE_HEAD + b"9\r\ndata: 1\n\n\r\n",
        b"9\r\ndata: 2\n\n\r\n",
        b"0\r\n\r\n",
    ]


async def test_a_stream_that_fails_after_its_start_is_closed_without_its_head() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(SSE_START)
        raise RuntimeError("boom")

    transport = await _serve(app, GET)
    for _ in range(3):
        await asyncio.sleep(0)
    assert transport.closed
    assert transport.writes == []


async def test_an_app_that_fails_after_its_start_gets_the_connection_closed() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        raise RuntimeError("boom")

    transport = await _serve(app, GET)
    assert transport.closed
    assert transport.writes == []  # the head was held for its body: nothing half-sent


async def test_a_body_longer_than_its_length_is_refused_and_the_connection_closed() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        with pytest.raises(RuntimeError, match="longer than Content-Length"):
            await send({"type": "http.response.body", "body": b"too long", "more_body": False})
        raise RuntimeError("gave up")

    transport = await _serve(app, GET)
    assert transport.closed
    assert transport.writes == []


async def test_an_error_before_the_start_is_uvicorns_500_in_one_write() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    transport = await _serve(app, GET)
    assert transport.writes == [
        b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: 21\r\nconnection: close\r\n\r\nInternal Server Error"
    ]


async def test_a_100_continue_goes_out_at_once_and_the_answer_after_it_in_one_write() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        await _json_app(message["body"])(scope, receive, send)

    data = b"POST /v HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"

    async def during(transport: Recording, protocol: HeaderTimeoutProtocol) -> None:
        for _ in range(20):
            await asyncio.sleep(0)
        assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
        protocol.data_received(b"abc")

    transport = await _serve(app, data, during=during)
    assert transport.writes[1:] == [JSON_HEAD % 3 + b"abc"]
