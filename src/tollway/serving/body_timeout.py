"""`[server] body_timeout` (SPEC §1): an ASGI middleware that answers 408 when a request body stalls.

`BodyTimeout(app, body_timeout)` bounds each wait for the next piece of a
request body (and for its first byte) while the body is not complete; on
expiry it answers `408` with OpenAI's error shape and `connection: close`,
and the app sees the client as gone.  Once the body is complete, `receive` is
the server's own again (streams wait on it for `http.disconnect`).  Heads are
bounded by the protocol in `tollway.serving.timeouts`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator, MutableMapping
from typing import Any, Final

from tollway.serving.timeouts import Message, Receive, Send, check_seconds, error_json

__all__ = ["DEFAULT_BODY_TIMEOUT", "BodyTimeout"]

DEFAULT_BODY_TIMEOUT: Final = 30.0

_READING: Final = 0  # the body is not complete: waits are bounded
_PASS: Final = 1  # the body is complete: receive is the server's own
_EXPIRED: Final = 2  # the timer cancelled the waiting task
_GONE: Final = 3  # timed out: the app sees a disconnect, its sends go nowhere


class BodyTimeout:
    """ASGI middleware: a request body may stall at most `body_timeout` seconds between two reads.

    While the body is incomplete, each `receive()` that has to wait is bounded
    (the clock starts when the app asks, so time the app spends between reads
    does not count).  On expiry, if no response has started, the client gets a
    408 with an OpenAI-shaped error and `connection: close`; the app's pending
    and later `receive()` return `http.disconnect` and its later sends are
    dropped (so is an exception it raises because of it).  If a response had
    already started, its sends are dropped too and the server closes the
    connection when the app returns.  Once the body is complete, `receive()` is
    not bounded (streams wait on it for `http.disconnect` for minutes).

    Cost: no task; one timer per request at most, and none when `receive()`
    finds the body already there.  Other scopes (lifespan, websocket) pass through.
    Also usable as Litestar middleware: `DefineMiddleware(BodyTimeout, body_timeout=...)`.
    """

    __slots__ = ("_answer", "app", "body_timeout")

    def __init__(
        self, app: Callable[..., Awaitable[None]], body_timeout: float = DEFAULT_BODY_TIMEOUT
    ) -> None:
        self.app = app
        self.body_timeout = check_seconds("body_timeout", body_timeout)
        unit = "second" if self.body_timeout == 1 else "seconds"
        body = error_json(
            f"The request body stalled for more than {self.body_timeout:g} {unit}.", "request_timeout"
        )
        self._answer: tuple[Message, Message] = (
            {
                "type": "http.response.start",
                "status": 408,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            },
            {"type": "http.response.body", "body": body, "more_body": False},
        )

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        guard = _Guard(receive, send, self.body_timeout, self._answer)
        try:
            await self.app(scope, guard.receive, guard.send)
        except Exception:
            if guard.state != _GONE:
                raise
            # The app failed on the disconnect it was shown; the client already has its 408.
        finally:
            if guard.handle is not None:
                guard.handle.cancel()


class _Guard:
    """One request's body clock."""

    __slots__ = (
        "_answer",
        "_receive",
        "_send",
        "_timeout",
        "handle",
        "loop",
        "since",
        "started",
        "state",
        "waiter",
    )

    def __init__(self, receive: Receive, send: Send, timeout: float, answer: tuple[Message, Message]) -> None:
        self._receive = receive
        self._send = send
        self._timeout = timeout
        self._answer = answer
        self.state = _READING
        self.started = False  # the response has started
        self.handle: asyncio.TimerHandle | None = None
        self.waiter: asyncio.Task[Any] | None = None
        self.since = 0.0
        self.loop: asyncio.AbstractEventLoop | None = None

    async def receive(self) -> Message:
        state = self.state
        if state == _PASS:
            return await self._receive()
        if state != _READING:
            return {"type": "http.disconnect"}
        steps = self._receive().__await__()
        try:
            signal = steps.send(None)
        except StopIteration as done:
            message: Message = done.value  # the server had it already: no clock needed
        else:
            message = await self._bounded(steps, signal)
            if self.state != _READING:  # timed out: `message` is our disconnect
                return message
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.state = _PASS
            if self.handle is not None:
                self.handle.cancel()
                self.handle = None
        return message

    async def _bounded(self, steps: Generator[Any, Any, Message], signal: Any) -> Message:
        """Finish the server's `receive()`, which had to wait, within the timeout."""
        loop = self.loop
        if loop is None:
            loop = self.loop = asyncio.get_running_loop()
        self.since = loop.time()
        waiter = self.waiter = asyncio.current_task(loop)
        if self.handle is None:
            self.handle = loop.call_at(self.since + self._timeout, self._expire)
        try:
            message = await _Resume(steps, signal)
            if self.state == _EXPIRED and waiter is not None:  # the server swallowed our cancellation
                waiter.uncancel()
                return await self._time_out()
            return message
        except asyncio.CancelledError:
            if self.state == _EXPIRED and waiter is not None and waiter.uncancel() == 0:
                return await self._time_out()
            raise
        finally:
            self.waiter = None

    def _expire(self) -> None:
        self.handle = None
        waiter, loop = self.waiter, self.loop
        if waiter is None or loop is None or self.state != _READING:
            return  # the app is busy between two reads: the next wait re-arms
        deadline = self.since + self._timeout
        if loop.time() + 0.001 < deadline:  # armed for an earlier wait
            self.handle = loop.call_at(deadline, self._expire)
            return
        self.state = _EXPIRED
        waiter.cancel()

    async def _time_out(self) -> Message:
        self.state = _GONE
        if not self.started:
            self.started = True
            try:
                await self._send(self._answer[0])
                await self._send(self._answer[1])
            except Exception:  # the client left meanwhile: nothing to tell it
                pass
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.state == _GONE:
            return
        self.started = True
        await self._send(message)


class _Resume:
    """Awaits the rest of a coroutine whose first step already ran (and yielded `signal`)."""

    __slots__ = ("_signal", "_steps")

    def __init__(self, steps: Generator[Any, Any, Message], signal: Any) -> None:
        self._steps = steps
        self._signal = signal

    def __await__(self) -> Generator[Any, Any, Message]:
        steps, signal = self._steps, self._signal
        while True:
            try:
                value = yield signal
            except GeneratorExit:
                steps.close()
                raise
            except BaseException as exc:
                try:
                    signal = steps.throw(exc)
                except StopIteration as done:
                    result: Message = done.value
                    return result
            else:
                try:
                    signal = steps.send(value)
                except StopIteration as done:
                    result = done.value
                    return result
