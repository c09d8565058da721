"""LeanClient against raw asyncio servers on loopback that send exact bytes and record what they got.

Every async test here runs on asyncio's default loop (pytest-asyncio), and again under
uvloop through `test_under_uvloop`.
"""

from __future__ import annotations

import asyncio
import gzip
import inspect
import socket
import ssl
import struct
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvloop

from tollway.upstream import lean_conn
from tollway.upstream.lean import LeanClient, LeanResponse
from tollway.upstream.lean_conn import HIGH_WATER

BODY = b'{"model":"m","messages":[]}'
Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter


class Upstream:
    """A raw HTTP server: `handler(upstream, reader, writer, number)` runs for each connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []  # every request received, whole, in order
        self.leftovers: list[bytes] = []  # what came before the client closed (see `until_eof`)
        self.finished = 0  # handlers returned
        self.tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"

    async def serve(self, reader: Reader, writer: Writer) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.connections += 1
        try:
            await self.handler(self, reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # (a cancelled handler returns: asyncio 3.11 would log its CancelledError)
        finally:
            self.finished += 1
            writer.close()
            with suppress(ConnectionError, ssl.SSLError, asyncio.CancelledError):
                await writer.wait_closed()

    async def request(self, reader: Reader) -> bytes | None:
        """One whole request (by its content-length), recorded; None at EOF."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise AssertionError(f"a request cut short: {exc.partial!r}") from exc
            return None
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request

    async def until_eof(self, reader: Reader) -> None:
        self.leftovers.append(await reader.read())


Handler = Callable[[Upstream, Reader, Writer, int], Awaitable[None]]


@asynccontextmanager
async def upstream(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[Upstream]:
    up = Upstream(handler)
    server = await asyncio.start_server(up.serve, "127.0.0.1", 0, ssl=tls)
    up.port = server.sockets[0].getsockname()[1]
    try:
        yield up
    finally:
        server.close()
        for task in up.tasks:
            task.cancel()
        await asyncio.gather(*up.tasks, return_exceptions=True)
        await server.wait_closed()


@asynccontextmanager
async def lean(connections: int = 4, **options: Any) -> AsyncIterator[LeanClient]:
    client = LeanClient(connections, **options)
    try:
        yield client
    finally:
        await client.aclose()


def answering(*replies: bytes) -> Handler:
    """Answer the n-th request on a connection with `replies[n]` (the last one repeating)."""

    async def handler(up: Upstream, reader: Reader, writer: Writer, _: int) -> None:
        n = 0
        while await up.request(reader) is not None:
            writer.write(replies[min(n, len(replies) - 1)])
            await writer.drain()
            n += 1

    return handler


def ok(body: bytes, *headers: bytes) -> bytes:
    extra = b"".join(h + b"\r\n" for h in headers)
    return b"HTTP/1.1 200 OK\r\n" + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("not within 5 s")


async def post(client: LeanClient, up: Upstream, headers: dict[str, str] | None = None) -> LeanResponse:
    return await client.post(up.url, BODY, headers or {}, 2.0)


async def collect(response: LeanResponse) -> list[bytes]:
    return [piece async for piece in response.chunks()]


async def collect_into(
    response: LeanResponse, pieces: list[bytes], each: asyncio.Event | None = None
) -> None:
    async for piece in response.chunks():
        pieces.append(piece)
        if each is not None:
            each.set()


# Bodies


async def test_content_length_body_and_headers() -> None:
    reply = ok(b'{"ok":true}', b"Content-Type: application/json", b"X-Multi: a", b"x-multi: b")
    async with upstream(answering(reply)) as up, lean() as client:
        response = await post(client, up)
        assert response.status_code == 200
        assert response.raw_headers == [
            (b"Content-Type", b"application/json"),
            (b"X-Multi", b"a"),
            (b"x-multi", b"b"),
            (b"Content-Length", b"11"),
        ]
        assert response.headers == {
            "content-type": "application/json",
            "x-multi": "a, b",
            "content-length": "11",
        }
        assert await response.read() == b'{"ok":true}'
        await response.aclose()


async def test_set_cookie_keeps_the_first() -> None:
    async with upstream(answering(ok(b"", b"Set-Cookie: a=1", b"Set-Cookie: b=2"))) as up, lean() as client:
        response = await post(client, up)
        assert response.headers == {"set-cookie": "a=1", "content-length": "0"}
        assert await response.read() == b""


async def test_chunked_body_then_the_connection_is_reused() -> None:
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    async with upstream(answering(reply)) as up, lean() as client:
        for _ in range(2):
            response = await post(client, up)
            assert await response.read() == b"hello world"
            await response.aclose()
        assert (up.connections, len(up.requests)) == (1, 2)


async def test_body_read_until_close() -> None:
    async def handler(up: Upstream, reader: Reader, writer: Writer, _: int) -> None:
        await up.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil ")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"the end")
        # returning closes the connection: that ends the body

    async with upstream(handler) as up, lean() as client:
        response = await post(client, up)
        assert await response.read() == b"until the end"
        response = await post(client, up)
        assert await collect(response) == [b"until ", b"the end"]
        assert up.connections == 2


async def test_interim_100_continue_is_skipped() -> None:
    reply = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    async with upstream(answering(reply)) as up, lean() as client:
        response = await post(client, up)
        assert (response.status_code, response.headers, await response.read()) == (
            201,
            {"content-length": "2"},
            b"ok",
        )


async def test_chunks_arrive_as_the_server_sends_them() -> None:
    log: list[object] = []
    first_seen = asyncio.Event()

    async def handler(up: Upstream, reader: Reader, writer: Writer, _: int) -> None:
        await up.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n")
        log.append("sent 1")
        await asyncio.sleep(0.05)
        await first_seen.wait()  # the client has the first piece before the second is sent
        writer.write(b"9\r\ndata: 2\n\n\r\n0\r\n\r\n")
        log.append("sent 2")
        await up.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nend\r\n0\r\n\r\n")
        await up.request(reader)

    async with upstream(handler) as up, lean() as client:
        response = await post(client, up)
        async with asyncio.timeout(5):
            async for piece in response.chunks():
                log.append(piece)
                first_seen.set()
        await response.aclose()
        assert log == ["sent 1", b"data: 1\n\n", "sent 2", b"data: 2\n\n"]
        assert (await collect(await post(client, up)), up.connections) == ([b"end"], 1)


async def test_large_stream_pauses_reading_and_arrives_whole() -> None:
    payload = bytes(range(256)) * (12 * 1024)  # 3 MiB
    async with upstream(answering(ok(payload))) as up, lean() as client:
        response = await post(client, up)
        conn = response._conn
        assert conn is not None
        await until(lambda: conn.read_paused)
        assert HIGH_WATER < conn.buffered < len(payload)
        assert b"".join(await collect(response)) == payload
        response = await post(client, up)
        assert await response.read() == payload
        assert up.connections == 1


async def test_large_request_body_is_sent_whole() -> None:
    body = b"x" * (4 << 20)

    async def handler(up: Upstream, reader: Reader, writer: Writer, _: int) -> None:
        await asyncio.sleep(0.1)  # the client's socket buffer fills up meanwhile
        request = await up.request(reader)
        assert request is not None
        writer.write(ok(b"%d" % request.count(b"x")))
        await up.request(reader)

    async with upstream(handler) as up, lean() as client:
        response = await client.post(up.url, body, {}, 2.0)
        assert await response.read() == b"4194304"
        assert up.requests[0].endswith(b"\r\ncontent-length: 4194304\r\n\r\n" + body)


# The request


async def test_request_bytes_are_exact() -> None:
    headers = {
        "Content-Type": "application/json",
        "Content-Length": "999",
        "Host": "evil.test",
        "Connection": "close",
        "transfer-encoding": "chunked",
        "authorization": "Bearer sk-1",
        "accept-encoding": "identity",
    }
    async with upstream(answering(ok(b"{}"))) as up, lean() as client:
        response = await client.post(up.url + "?x=1&y=2", b'{"a":1}', headers, 2.0)
        assert await response.read() == b"{}"
        assert up.requests == [
            b"POST /v1/chat/completions?x=1&y=2 HTTP/1.1\r\n"
            b"host: 127.0.0.1:%d\r\n"
            b"Content-Type: application/json\r\n"
            b"authorization: Bearer sk-1\r\n"
            b"accept-encoding: identity\r\n"
            b"content-length: 7\r\n"
            b"\r\n"
            b'{"a":1}' % up.port
        ]


async def test_host_header_leaves_out_default_ports() -> None:
    client = LeanClient(1)
    assert client._target("https://api.openai.com/v1/chat/completions?x=1")[1] == (
        b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: api.openai.com\r\n"
    )
    assert client._target("http://Upstream.test:80")[1] == b"POST / HTTP/1.1\r\nhost: upstream.test\r\n"
    assert client._target("http://[::1]:8000/v1")[1] == b"POST /v1 HTTP/1.1\r\nhost: [::1]:8000\r\n"
    with pytest.raises(ValueError, match="whitespace"):
        client._target("http://upstream.test/a b")
    with pytest.raises(ValueError, match="not an http"):
        client._target("ftp://upstream.test/")
    await client.aclose()


@pytest.mark.parametrize("value", ["a\r\nx-injected: 1", "a\nb", "a\rb", "a\x00b"])
async def test_line_breaks_in_header_values_are_refused(value: str) -> None:
    async with upstream(answering(ok(b"{}"))) as up, lean() as client:
        with pytest.raises(ValueError, match="CR, LF or NUL in the value of header 'x-team'"):
            await post(client, up, {"x-ok": "fine", "x-team": value})
        with pytest.raises(ValueError, match="invalid header name"):
            await post(client, up, {"x bad": "1"})
        assert (up.connections, up.requests) == (0, [])


# The pool


async def test_keep_alive_reuses_one_connection() -> None:
    async with upstream(answering(ok(b"one"), ok(b"two"))) as up, lean() as client:
        first = await post(client, up)
        assert await first.read() == b"one"
        second = await post(client, up)
        assert await second.read() == b"two"
        assert (up.connections, len(up.requests)) == (1, 2)


async def test_aclose_after_a_whole_response_keeps_the_connection() -> None:
    async with upstream(answering(ok(b"unread"))) as up, lean() as client:
        response = await post(client, up)
        await asyncio.sleep(0.02)  # the body is in, though nobody read it
        await response.aclose()
        await response.aclose()
        assert await (await post(client, up)).read() == b"unread"
        assert up.connections == 1


async def test_stale_kept_alive_connection_is_retried_once() -> None:
    async def handler(up: Upstream, reader: Reader, writer: Writer, n: int) -> None:
        await up.request(reader)
        if n == 1:
            writer.write(ok(b"first"))
            await up.request(reader)
            return  # the second request arrives, and the connection closes unanswered
        writer.write(ok(b"second"))
        await up.request(reader)

    async with upstream(handler) as up, lean() as client:
        assert await (await post(client, up)).read() == b"first"
        assert await (await post(client, up)).read() == b"second"
        assert up.connections == 2
        assert len(up.requests) == 3
        assert up.requests[0] == up.requests[1] == up.requests[2]


async def test_a_kept_alive_connection_that_dies_late_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """Closed without an answer well after the request went out: the upstream may have taken it, so a 502."""
    monkeypatch.setattr(lean_conn, "STALE_WINDOW", 0.05)

    async def handler(up: Upstream, reader: Reader, writer: Writer, n: int) -> None:
        await up.request(reader)
        writer.write(ok(b"first"))
        await up.request(reader)
        await asyncio.sleep(0.2)  # took the second request, then died without answering

    async with upstream(handler) as up, lean() as client:
        assert await (await post(client, up)).read() == b"first"
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response") as caught:
            await post(client, up)
        assert not isinstance(caught.value, lean_conn.Stale)
        assert (up.connections, len(up.requests)) == (1, 2)  # sent once, not again


async def test_no_second_retry_and_none_on_a_fresh_connection() -> None:
    async def handler(up: Upstream, reader: Reader, writer: Writer, n: int) -> None:
        await up.request(reader)
        if n == 1:
            writer.write(ok(b"first"))
            await up.request(reader)
        # every other connection closes on its first request, unanswered

    async with upstream(handler) as up, lean() as client:
        assert await (await post(client, up)).read() == b"first"
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await post(client, up)
        assert (up.connections, len(up.requests)) == (2, 3)
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await post(client, up)
        assert (up.connections, len(up.requests)) == (3, 4)


async def test_idle_connection_closed_by_the_peer_is_not_reused() -> None:
    async def handler(up: Upstream, reader: Reader, writer: Writer, _: int) -> None:
        await up.request(reader)
        writer.write(ok(b"bye"))  # keep-alive as far as the client knows; then closed

    async with upstream(handler) as up, lean() as client:
        assert await (await post(client, up)).read() == b"bye"
        await until(lambda: up.finished == 1)
        await asyncio.sleep(0.05)  # the client's loop sees the FIN
        assert await (await post(client, up)).read() == b"bye"
        assert (up.connections, len(up.requests)) == (2, 2)  # no request was sent on the dead one


async def test_idle_connections_expire() -> None:
    async def handler(up: Upstream, reader: Reader, writer: Writer, _: int) -> None:
        while await up.request(reader) is not None:
            writer.write(ok(b"hi"))
        up.leftovers.append(b"eof")

    async with upstream(handler) as up, lean(keepalive_seconds=0.1) as client:
        assert await (await post(client, up)).read() == b"hi"
        await until(lambda: up.leftovers == [b"eof"])  # the client closed it, unused
        assert await (await post(client, up)).read() == b"hi"
        assert up.connections == 2


async def test_a_waiting_post_gets_the_freed_connection() -> None:
    async with upstream(answering(ok(b"a"), ok(b"b"))) as up, lean(connections=1) as client:
        first = await post(client, up)
        second = asyncio.create_task(post(client, up))
        await asyncio.sleep(0.05)
        assert not second.done()
        assert await first.read() == b"a"
        assert await (await second).read() == b"b"
        assert up.connections == 1


@pytest.mark.parametrize("close", [False, True], ids=["connection", "slot"])
async def test_what_a_cancelled_waiter_was_handed_goes_back(close: bool) -> None:
    reply = ok(b"a", b"Connection: close") if close else ok(b"a")
    async with upstream(answering(reply)) as up, lean(connections=1) as client:
        first = await post(client, up)
        second = asyncio.create_task(post(client, up))
        await asyncio.sleep(0.05)
        assert await first.read() == b"a"  # hands the connection (or its slot) to `second`...
        second.cancel()  # ... which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await second
        assert await (await post(client, up)).read() == b"a"
        assert up.connections == (2 if close else 1)  # the cancelled post never connected
        (pool,) = client._pools.values()
        assert (pool.opened, len(pool.idle), len(pool.waiters)) == ((0, 0, 0) if close else (1, 1, 0))


async def test_pool_timeout() -> None:
    async def handler(up: Upstream, reader: Reader, writer: Writer, _: int) -> None:
        await up.request(reader)
        await up.until_eof(reader)  # never answers

    async with upstream(handler) as up, lean(connections=1) as client:
        first = asyncio.create_task(post(client, up))
        await until(lambda: len(up.requests) == 1)
        started = time.monotonic()
        with pytest.raises(httpx.PoolTimeout, match=r"within 0\.1 s"):
            await client.post(up.url, BODY, {}, 0.1)
        assert 0.09 < time.monotonic() - started < 1.0
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await until(lambda: up.leftovers == [b""])  # the cancelled post closed its connection
        assert up.connections == 1


async def test_closed_client_refuses_posts() -> None:
    async with upstream(answering(ok(b"{}"))) as up:
        client = LeanClient(2)
        await client.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await post(client, up)


# Connecting


async def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with lean() as client:
        with pytest.raises(httpx.ConnectError, match=f"connecting to 127.0.0.1:{port} failed"):
            await client.post(f"http://127.0.0.1:{port}/", BODY, {}, 2.0)


@pytest.fixture(name="full_backlog")
def fixture_full_backlog() -> Iterator[int]:
    """A port whose listen backlog is full, so a new connection's SYN goes unanswered."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        with suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for filler in fillers:
        filler.close()
    listener.close()


async def test_connect_timeout(full_backlog: int) -> None:
    async with lean() as client:
        started = time.monotonic()
        with pytest.raises(httpx.ConnectTimeout, match=r"took over 0\.2 s"):
            await client.post(f"http://127.0.0.1:{full_backlog}/", BODY, {}, 0.2)
        assert 0.19 < time.monotonic() - started < 1.0


# A self-signed certificate for 127.0.0.1 only (valid to 2126), made once with openssl for these tests:
# its key guards nothing but a loopback socket in this file.
TLS = Path(__file__).parent / "tls"


@pytest.fixture(name="certificate")
def fixture_certificate() -> tuple[Path, Path]:
    return TLS / "loopback-cert.pem", TLS / "loopback-key.pem"


async def test_https_with_a_self_signed_certificate(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntls\r\n0\r\n\r\n"
    async with upstream(answering(ok(b"secure"), chunked), tls=server_side) as up:
        url = f"https://127.0.0.1:{up.port}/v1/chat/completions"
        async with lean(ssl_context=ssl.create_default_context(cafile=cert)) as client:
            assert await (await client.post(url, BODY, {}, 2.0)).read() == b"secure"
            assert await collect(await client.post(url, BODY, {}, 2.0)) == [b"tls"]
            assert up.connections == 1
            assert up.requests[0].startswith(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:%d\r\n" % up.port
            )
        async with lean() as client:  # the default trust store does not know this certificate
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.post(url, BODY, {}, 2.0)


# Failures mid-way


def cut_short(head: bytes, part: bytes) -> Handler:
    async def handler(up: Upstream, reader: Reader, writer: Writer, _: int) -> None:
        await up.request(reader)
        writer.write(head + part)
        await writer.drain()
        await asyncio.sleep(0.05)  # then the connection closes, the body unfinished

    return handler


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n",
    ],
    ids=["content-length", "chunked"],
)
async def test_body_cut_short(head: bytes) -> None:
    async with upstream(cut_short(head, b"abc")) as up, lean() as client:
        response = await post(client, up)
        with pytest.raises(httpx.RemoteProtocolError, match="before the end of the body"):
            await response.read()
        response = await post(client, up)
        pieces: list[bytes] = []
        with pytest.raises(httpx.RemoteProtocolError, match="before the end of the body"):
            await collect_into(response, pieces)
        assert pieces == [b"abc"]
        assert up.connections == 2


async def test_reset_mid_body_is_a_read_error() -> None:
    got_part = asyncio.Event()

    async def handler(up: Upstream, reader: Reader, writer: Writer, _: int) -> None:
        await up.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart")
        await got_part.wait()
        writer.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        writer.transport.abort()  # an RST, not a FIN

    async with upstream(handler) as up, lean() as client:
        response = await post(client, up)
        pieces: list[bytes] = []
        with pytest.raises(httpx.ReadError, match="reading the upstream's response failed"):
            await collect_into(response, pieces, got_part)
        assert pieces == [b"part"]


async def test_malformed_response() -> None:
    async with upstream(answering(b"HTTP/1.1 2OO OK\r\n\r\n")) as up, lean() as client:
        with pytest.raises(httpx.RemoteProtocolError, match="malformed response from the upstream"):
            await post(client, up)


async def test_bytes_after_the_response_spoil_the_connection() -> None:
    async with upstream(answering(ok(b"one") + b"HTTP/1.1 200 OK\r\n", ok(b"two"))) as up, lean() as client:
        assert await (await post(client, up)).read() == b"one"
        assert await (await post(client, up)).read() == b"one"
        assert up.connections == 2


# Abandoning a response


def stream_then_wait() -> Handler:
    async def handler(up: Upstream, reader: Reader, writer: Writer, _: int) -> None:
        await up.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n")
        await up.until_eof(reader)

    return handler


async def test_cancelling_a_chunks_consumer_closes_the_connection() -> None:
    async with upstream(stream_then_wait()) as up, lean() as client:
        pieces: list[bytes] = []

        async def consume() -> None:
            response = await post(client, up)
            try:
                async for piece in response.chunks():
                    pieces.append(piece)
            finally:
                await response.aclose()

        task = asyncio.create_task(consume())
        await until(lambda: pieces == [b"data: 1\n\n"])
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: up.leftovers == [b""])  # the server saw EOF
        assert up.connections == 1


async def test_cancelling_post_closes_the_connection() -> None:
    async def handler(up: Upstream, reader: Reader, writer: Writer, _: int) -> None:
        await up.request(reader)
        await up.until_eof(reader)

    async with upstream(handler) as up, lean() as client:
        task = asyncio.create_task(post(client, up))
        await until(lambda: len(up.requests) == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: up.leftovers == [b""])


async def test_cancelling_read_closes_the_connection() -> None:
    async with upstream(stream_then_wait()) as up, lean() as client:
        response = await post(client, up)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await response.read()
        await response.aclose()
        await until(lambda: up.leftovers == [b""])


async def test_aclose_of_an_unread_stream_closes_the_connection() -> None:
    async with upstream(stream_then_wait()) as up, lean() as client:
        response = await post(client, up)
        await response.aclose()
        await until(lambda: up.leftovers == [b""])
        with pytest.raises(httpx.StreamClosed):
            await response.read()


async def test_body_is_read_once() -> None:
    async with upstream(answering(ok(b"{}"))) as up, lean() as client:
        response = await post(client, up)
        assert await response.read() == b"{}"
        with pytest.raises(RuntimeError, match="read once"):
            await collect(response)


# Content-Encoding

TEXT = b"the quick brown fox jumps over the lazy dog\n" * 50


def deflate_raw(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        (b"gzip", gzip.compress(TEXT)),
        (b"deflate", zlib.compress(TEXT)),
        (b"deflate", deflate_raw(TEXT)),
        (b"identity", TEXT),
    ],
    ids=["gzip", "deflate-zlib", "deflate-raw", "identity"],
)
async def test_content_encoding_is_decoded(encoding: bytes, encoded: bytes) -> None:
    half = len(encoded) // 2
    chunked = b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % encoding
    pieces = [b"%x\r\n%s\r\n" % (len(p), p) for p in (encoded[:half], encoded[half:])]

    async def handler(up: Upstream, reader: Reader, writer: Writer, _: int) -> None:
        await up.request(reader)
        writer.write(ok(encoded, b"Content-Encoding: " + encoding))
        await up.request(reader)
        writer.write(chunked + pieces[0])
        await asyncio.sleep(0.02)
        writer.write(pieces[1] + b"0\r\n\r\n")
        await up.request(reader)

    async with upstream(handler) as up, lean() as client:
        assert await (await post(client, up)).read() == TEXT
        assert b"".join(await collect(await post(client, up))) == TEXT
        assert up.connections == 1


@pytest.mark.parametrize("encoding", [b"br", b"zstd", b"gzip, br"])
async def test_unsupported_content_encoding(encoding: bytes) -> None:
    reply = ok(b"\x0b\x02\x80hi\x03", b"Content-Encoding: " + encoding)
    async with upstream(answering(reply)) as up, lean() as client:
        response = await post(client, up)
        with pytest.raises(httpx.DecodingError, match="unsupported content-encoding"):
            await response.read()
        response = await post(client, up)
        with pytest.raises(httpx.DecodingError, match="unsupported content-encoding"):
            await collect(response)
        assert up.connections == 2  # neither connection went back to the pool


async def test_corrupt_gzip_is_a_decoding_error() -> None:
    async with upstream(answering(ok(b"not gzip at all", b"Content-Encoding: gzip"))) as up, lean() as client:
        with pytest.raises(httpx.DecodingError, match="does not decode"):
            await (await post(client, up)).read()


# The same tests under uvloop

_UVLOOP_CASES = [
    case
    for name, case in sorted(globals().items())
    if name.startswith("test_")
    and inspect.iscoroutinefunction(case)
    and not inspect.signature(case).parameters
]


@pytest.mark.parametrize("case", _UVLOOP_CASES, ids=lambda case: case.__name__.removeprefix("test_"))
def test_under_uvloop(case: Callable[[], Awaitable[None]]) -> None:
    async def run() -> None:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        await case()

    uvloop.run(run())
