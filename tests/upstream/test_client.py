"""The upstream client's policy on httpx.MockTransport, and the aiohttp backend's seams (no sockets).

The aiohttp backend against a real upstream is covered end to end (tests/e2e: it is the default).
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import aiohttp
import httpx
import pytest

from tollway.config import Config, ModelConfig, Settings, UpstreamConfig
from tollway.errors import UpstreamStatus, UpstreamTimeout, UpstreamUnavailable
from tollway.pricing import PriceBook
from tollway.upstream.answer import AiohttpAnswer, Answer
from tollway.upstream.answer import translate_aiohttp as _translate
from tollway.upstream.client import Backend, UpstreamClient, chunks_with_idle_timeout

SECRET = "sk-upstream-secret-0123456789"


def upstream(**overrides: Any) -> UpstreamConfig:
    options: dict[str, Any] = {
        "name": "up",
        "base_url": "http://upstream.test/v1/",
        "api_key_env": "UP_KEY",
        "headers": {"x-team": "blue"},
        **overrides,
    }
    return UpstreamConfig(**options)


def settings(up: UpstreamConfig) -> Settings:
    return Settings(
        config=Config(upstreams=[up], models=[ModelConfig(name="m", upstream=up.name)]),
        source="test",
        prices=PriceBook([]),
        upstream_keys={up.name: SECRET},
    )


Handler = Callable[[httpx.Request], Any]


async def collect(chunks: AsyncIterator[bytes], into: list[bytes]) -> None:
    async for chunk in chunks:
        into.append(chunk)


@asynccontextmanager
async def opened(handler: Handler, *, stream: bool = False, **overrides: Any) -> AsyncIterator[Answer]:
    """`UpstreamClient.open` on a MockTransport; the client is closed on the way out."""
    up = upstream(**overrides)
    client = UpstreamClient(settings(up), transport=httpx.MockTransport(handler))
    assert client.backend == "httpx"
    try:
        yield await client.open(up, "/chat/completions", b'{"model": "m"}', stream=stream)
    finally:
        await client.aclose()


async def test_a_completion_is_posted_with_the_upstreams_headers_and_read_in_full() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    async with opened(handler) as response:
        assert json.loads(response.content) == {"ok": True}
    (request,) = seen
    assert str(request.url) == "http://upstream.test/v1/chat/completions"
    assert request.content == b'{"model": "m"}'
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.headers["accept-encoding"] == "identity"
    assert request.headers["x-team"] == "blue"


async def test_a_stream_is_left_open_for_the_relay() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        yield b"data: 2\n\n"

    async with opened(lambda request: httpx.Response(200, content=body()), stream=True) as response:
        assert not response._response.is_stream_consumed  # type: ignore[attr-defined]
        chunks = [c async for c in chunks_with_idle_timeout(response, 5.0)]
    assert chunks == [b"data: 1\n\n", b"data: 2\n\n"]


async def test_an_error_status_passes_through_scrubbed_with_its_rate_limit_headers() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429,
            json={"error": {"message": f"slow down, {SECRET}"}},
            headers={"retry-after": "3", "x-internal": "no"},
        )

    with pytest.raises(UpstreamStatus) as caught:
        async with opened(handler):
            pass
    error = caught.value
    assert error.status == 429
    assert SECRET.encode() not in error.body() and b"slow down" in error.body()
    assert error.headers == {"retry-after": "3"}


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (httpx.ConnectError("refused"), UpstreamUnavailable),
        (httpx.RemoteProtocolError("bad"), UpstreamUnavailable),
        (httpx.ConnectTimeout("slow"), UpstreamTimeout),
        (httpx.PoolTimeout("full"), UpstreamTimeout),
    ],
)
async def test_transport_failures_become_api_errors(
    failure: httpx.HTTPError, expected: type[Exception]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise failure

    with pytest.raises(expected) as caught:
        async with opened(handler):
            pass
    assert "'up'" in str(caught.value)


@pytest.mark.parametrize("stream", [False, True])
async def test_no_answer_within_the_first_byte_timeout_is_an_upstream_timeout(stream: bool) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200)

    with pytest.raises(UpstreamTimeout, match=r"did not answer within 0\.05 s"):
        async with opened(handler, stream=stream, first_byte_timeout=0.05):
            pass


async def test_a_silent_stream_raises_timeout_error() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        await asyncio.sleep(30)
        yield b"never"

    chunks: list[bytes] = []
    async with opened(lambda request: httpx.Response(200, content=body()), stream=True) as response:
        with pytest.raises(TimeoutError):
            await collect(chunks_with_idle_timeout(response, 0.05), chunks)
    assert chunks == [b"data: 1\n\n"]


async def test_the_lean_client_is_the_default_backend_and_opens_nothing_until_used() -> None:
    client = UpstreamClient(settings(upstream()))
    assert client.backend == "lean"
    await client.aclose()
    assert UpstreamClient(settings(upstream()), backend="aiohttp").backend == "aiohttp"
    assert UpstreamClient(settings(upstream()), backend="httpx").backend == "httpx"


async def test_the_lean_backend_hands_proxied_upstreams_to_aiohttp(monkeypatch: pytest.MonkeyPatch) -> None:
    """`HTTP(S)_PROXY` / `NO_PROXY` are honoured: the lean client speaks to no proxy, aiohttp does."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "direct.test")
    up = upstream(base_url="http://proxied.test/v1")
    client = UpstreamClient(settings(up))
    sent: list[str] = []

    async def via_aiohttp(self: Any, url: str, body: bytes, headers: dict[str, str], seconds: float) -> Any:
        sent.append(url)
        raise httpx.ConnectError("the proxy is not there")

    backend: Any = client._send
    monkeypatch.setattr(type(backend._proxied), "__call__", via_aiohttp)
    try:
        with pytest.raises(UpstreamUnavailable):
            await client.open(up, "/chat/completions", b"{}", stream=False)
        assert sent == ["http://proxied.test/v1/chat/completions"]
        assert backend._direct == {"http://proxied.test/v1/chat/completions": False}
        assert backend._proxied.proxy_for("http://direct.test/v1/x")[0] is None
    finally:
        await client.aclose()


# The aiohttp backend's seams: exception translation and closing the answer.

CONNECTION_KEY: Any = SimpleNamespace(host="upstream.test", port=443, ssl=True)


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (aiohttp.ConnectionTimeoutError(), httpx.ConnectTimeout),
        (
            aiohttp.ClientConnectorError(CONNECTION_KEY, ConnectionRefusedError(111, "refused")),
            httpx.ConnectError,
        ),
        (aiohttp.ClientOSError(104, "reset by peer"), httpx.ReadError),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError("Response payload is not completed"), httpx.RemoteProtocolError),
    ],
)
def test_aiohttp_errors_become_httpx_errors(failure: aiohttp.ClientError, expected: type[Exception]) -> None:
    translated = _translate(failure)
    assert type(translated) is expected
    assert str(translated)


class FakeContent:
    def __init__(self, chunks: list[bytes], failure: Exception | None = None) -> None:
        self.chunks = chunks
        self.failure = failure
        self.delivered = 0

    async def iter_any(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.delivered += 1
            yield chunk
        if self.failure is not None:
            raise self.failure

    def at_eof(self) -> bool:
        return self.failure is None and self.delivered == len(self.chunks)


class FakeAnswer:
    def __init__(self, content: FakeContent) -> None:
        self.content = content
        self.ended: str | None = None

    def release(self) -> None:
        self.ended = "released"

    def close(self) -> None:
        self.ended = "closed"


async def test_an_aiohttp_body_read_to_the_end_goes_back_to_the_pool() -> None:
    answer = FakeAnswer(FakeContent([b"a", b"b"]))
    response = AiohttpAnswer(answer)  # type: ignore[arg-type]
    assert [c async for c in chunks_with_idle_timeout(response, 5.0)] == [b"a", b"b"]
    await response.aclose()
    assert answer.ended == "released"


async def test_an_abandoned_aiohttp_body_drops_its_connection() -> None:
    answer = FakeAnswer(FakeContent([b"a", b"b", b"c"]))
    response = AiohttpAnswer(answer)  # type: ignore[arg-type]
    async for _ in chunks_with_idle_timeout(response, 5.0):
        break
    await response.aclose()
    assert answer.ended == "closed"


async def test_an_aiohttp_body_breaking_off_raises_an_httpx_error() -> None:
    answer = FakeAnswer(FakeContent([b"a"], aiohttp.ClientPayloadError("not completed")))
    response = AiohttpAnswer(answer)  # type: ignore[arg-type]
    with pytest.raises(httpx.RemoteProtocolError):
        await collect(chunks_with_idle_timeout(response, 5.0), [])
    await response.aclose()
    assert answer.ended == "closed"


async def test_a_slow_reader_never_times_the_upstream_out() -> None:
    """Only waiting on the upstream counts: the relay's own pauses (a slow client) do not."""

    async def body() -> AsyncIterator[bytes]:
        for n in range(3):
            yield b"data: %d\n\n" % n

    async with opened(lambda request: httpx.Response(200, content=body()), stream=True) as response:
        chunks = []
        async for chunk in chunks_with_idle_timeout(response, 0.05):
            chunks.append(chunk)
            await asyncio.sleep(0.12)  # longer than the idle timeout, between reads
    assert chunks == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]


async def test_a_cancelled_reader_is_cancelled_not_timed_out() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        await asyncio.sleep(30)
        yield b"never"

    async with opened(lambda request: httpx.Response(200, content=body()), stream=True) as response:
        reading = asyncio.ensure_future(collect(chunks_with_idle_timeout(response, 0.2), []))
        await asyncio.sleep(0.05)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        await asyncio.sleep(0.3)  # the idle timer must not fire into anything afterwards


async def test_the_idle_timer_restarts_with_each_wait() -> None:
    """Gaps each shorter than the idle timeout never add up to one."""

    async def body() -> AsyncIterator[bytes]:
        for n in range(12):
            await asyncio.sleep(0.02)
            yield b"data: %d\n\n" % n

    async with opened(lambda request: httpx.Response(200, content=body()), stream=True) as response:
        chunks: list[bytes] = []
        await collect(chunks_with_idle_timeout(response, 0.15), chunks)  # 12 x 0.02 s > 0.15 s
    assert len(chunks) == 12


async def test_an_aiohttp_body_is_relayed_as_is() -> None:
    plain = FakeAnswer(FakeContent([b"data: 1\n\n"]))
    response = AiohttpAnswer(plain)  # type: ignore[arg-type]
    assert [c async for c in chunks_with_idle_timeout(response, 5.0)] == [b"data: 1\n\n"]


@pytest.mark.parametrize("backend", ["lean", "aiohttp"])
async def test_an_upstream_that_compresses_anyway_is_decoded(backend: Backend) -> None:
    """`accept-encoding: identity` is asked for; a gzip answer is still decoded, streamed or whole."""
    packed = gzip.compress(b"data: 2\n\n")

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        await reader.readexactly(len(b'{"model": "m"}'))
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\n"
            b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(packed)
        )
        writer.write(packed[:10])
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(packed[10:])
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    up = upstream(base_url=f"http://127.0.0.1:{port}/v1")
    client = UpstreamClient(settings(up), backend=backend)
    try:
        response = await client.open(up, "/chat/completions", b'{"model": "m"}', stream=True)
        assert b"".join([c async for c in chunks_with_idle_timeout(response, 5.0)]) == b"data: 2\n\n"
        await response.aclose()
        whole = await client.open(up, "/chat/completions", b'{"model": "m"}', stream=False)
        assert whole.content == b"data: 2\n\n"
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()


async def test_an_anthropic_upstream_gets_its_key_as_x_api_key_and_the_clients_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    up = upstream(protocol="anthropic")
    client = UpstreamClient(settings(up), transport=httpx.MockTransport(handler))
    try:
        passed = {"anthropic-version": "2023-06-01", "anthropic-beta": "tools-2024-05-16"}
        await client.open(up, "/messages?beta=true", b"{}", stream=False, headers=passed)
    finally:
        await client.aclose()
    (request,) = seen
    assert str(request.url) == "http://upstream.test/v1/messages?beta=true"
    assert request.headers["x-api-key"] == SECRET
    assert "authorization" not in request.headers
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["anthropic-beta"] == "tools-2024-05-16"
    assert request.headers["x-team"] == "blue"
