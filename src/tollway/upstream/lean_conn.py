"""One upstream connection of `tollway.upstream.lean`: an `asyncio.Protocol` with its parser.

A `Connection` carries at most one request at a time.  Its parser (`httptools`,
kept for the connection's life) fills the connection's per-request state from
the event loop's callbacks, and the task reading the response waits on a
single future, made only when it has to wait and resolved by whichever
callback has news (headers, body, end, error).
"""

from __future__ import annotations

import asyncio
import socket
from typing import cast

import httptools
import httpx

__all__ = ["HIGH_WATER", "STALE_WINDOW", "Connection", "Stale"]

HIGH_WATER = 1 << 20  # bytes buffered for a streaming reader before the socket stops being read
# A kept-alive connection that dies this soon after the request went out, before a byte of the
# answer, was closed by the upstream while idle (the request crossed its FIN): the request can go
# again.  Later, the upstream may have taken the request and failed on it: no second try, a 502.
STALE_WINDOW = 1.0


class Stale(httpx.RemoteProtocolError):
    """A reused connection died before a byte of the response came: the request can go again."""


class Connection(asyncio.Protocol):
    __slots__ = (
        "active",
        "body",
        "buffered",
        "done",
        "error",
        "headers_done",
        "idle_since",
        "keep",
        "loop",
        "lost",
        "parser",
        "raw",
        "read_paused",
        "received",
        "sent_at",
        "status",
        "transport",
        "uses",
        "waiter",
        "whole",
        "write_paused",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = False  # the peer closed, the connection broke, or it was aborted
        self.uses = 0
        self.idle_since = 0.0
        self.sent_at = 0.0
        self.waiter: asyncio.Future[None] | None = None
        self.write_paused = False
        self.read_paused = False
        self.reset()

    def reset(self) -> None:
        """Fresh state for the next request on this connection."""
        self.active = False  # a request was sent and its response is not finished with
        self.received = False  # any byte of its response came
        self.raw: list[tuple[bytes, bytes]] = []
        self.status = 0
        self.headers_done = False
        self.done = False  # the whole response is parsed
        self.keep = False  # ... and the connection may carry another
        self.body: list[bytes] = []
        self.buffered = 0
        self.whole = False  # read() takes the body whole: no flow control
        self.error: httpx.HTTPError | None = None

    def usable(self, horizon: float) -> bool:
        """Idle since after `horizon` and still open on both sides."""
        transport = self.transport
        return (
            not self.lost
            and transport is not None
            and not transport.is_closing()
            and self.idle_since > horizon
        )

    def abort(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.abort()

    async def send(self, data: bytes) -> None:
        """Write a request; return once its final (non-1xx) status line and headers are parsed."""
        self.reset()
        self.active = True
        self.uses += 1
        assert self.transport is not None
        self.sent_at = self.loop.time()
        self.transport.write(data)
        while self.write_paused and self.error is None and not self.headers_done:
            await self.wait()  # the kernel has not taken the body yet (resume_writing wakes us)
        while not self.headers_done:
            if self.error is not None:
                raise self.error
            await self.wait()

    def wait(self) -> asyncio.Future[None]:
        waiter = self.waiter = self.loop.create_future()
        return waiter

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def resume(self) -> None:
        self.read_paused = False
        if self.transport is not None:
            self.transport.resume_reading()

    def fail(self, error: httpx.HTTPError) -> None:
        if not self.done:
            self.error = error
            self.wake()
        self.keep = False
        self.abort()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data: bytes) -> None:
        if not self.active or self.done:
            self.fail(httpx.RemoteProtocolError("the upstream sent bytes nobody asked for"))
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(httpx.RemoteProtocolError(f"malformed response from the upstream: {exc}"))

    def eof_received(self) -> bool | None:
        self.lost = True
        return None  # the transport closes itself; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.active and not self.done and self.error is None:
            why = f" ({exc})" if exc is not None else ""
            if not self.headers_done:
                if not self.received and self.uses > 1 and self.loop.time() - self.sent_at <= STALE_WINDOW:
                    self.error = Stale(f"the upstream closed a kept-alive connection{why}")
                else:
                    self.error = httpx.RemoteProtocolError(
                        f"the upstream closed the connection without sending a response{why}"
                    )
            elif exc is not None:
                self.error = httpx.ReadError(f"reading the upstream's response failed: {exc}")
            elif self._until_close():
                self.done = True
            else:
                self.error = httpx.RemoteProtocolError(
                    "the upstream closed the connection before the end of the body"
                )
        self.wake()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self.wake()

    def _until_close(self) -> bool:
        """The body runs to the end of the connection: neither a length nor chunked framing."""
        for name, value in self.raw:
            name = name.lower()
            if name == b"content-length":
                return False
            if name == b"transfer-encoding" and value.rstrip().lower().endswith(b"chunked"):
                return False
        return True

    # httptools callbacks.  Anything after the awaited response (`done`) is ignored: the
    # connection is not reused.

    def on_message_begin(self) -> None:
        if self.done:
            self.keep = False
            self.raw = []  # the response handed out keeps its own list

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.headers_done:  # trailers are dropped
            self.raw.append((name, value))

    def on_headers_complete(self) -> None:
        if self.done:
            return
        status = self.parser.get_status_code()
        if status < 200:  # 100 Continue, 103 Early Hints: skipped (101 fails in the parser next)
            self.raw = []
            return
        self.status = status
        self.headers_done = True
        self.wake()

    def on_body(self, body: bytes) -> None:
        if self.done:
            return
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.whole and not self.read_paused:
            self.read_paused = True
            assert self.transport is not None
            self.transport.pause_reading()
        self.wake()

    def on_message_complete(self) -> None:
        if self.done or not self.headers_done:  # already over, or the end of an interim response
            return
        self.done = True
        self.keep = self.parser.should_keep_alive()
        self.wake()
