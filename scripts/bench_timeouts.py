"""Per-request cost of tollway.serving.timeouts (`python scripts/bench_timeouts.py`).

1. BodyTimeout around a trivial ASGI app, with a body the server already holds
   (the usual case: no timer) and with a receive() that has to wait once (one timer).
2. HeaderTimeoutProtocol against uvicorn's HttpToolsProtocol: keep-alive requests
   fed through a fake transport, each answered by a trivial app.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from tollway.serving.body_timeout import BodyTimeout
from tollway.serving.timeouts import protocol_class

Message = dict[str, Any]
BODY_BYTES = b'{"model":"m"}'
REQUEST = {"type": "http.request", "body": BODY_BYTES, "more_body": False}
START = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
BODY = {"type": "http.response.body", "body": b"ok", "more_body": False}
# What the OpenAI Python SDK sends (14 header lines).
HEAD = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nAccept-Encoding: gzip, deflate\r\n"
    b"Connection: keep-alive\r\nAccept: application/json\r\nContent-Type: application/json\r\n"
    b"User-Agent: OpenAI/Python 1.40.0\r\nX-Stainless-Lang: python\r\nX-Stainless-Package-Version: 1.40.0\r\n"
    b"X-Stainless-OS: Linux\r\nX-Stainless-Arch: x64\r\nX-Stainless-Runtime: CPython\r\n"
    b"X-Stainless-Runtime-Version: 3.11.7\r\nAuthorization: Bearer tw-0123456789abcdef\r\n"
    b"Content-Length: 13\r\n\r\n"
)


async def app(scope: Message, receive: Callable[[], Any], send: Callable[[Message], Any]) -> None:
    await receive()
    await send(START)
    await send(BODY)


async def ready_receive() -> Message:
    return REQUEST


async def waiting_receive() -> Message:
    await asyncio.sleep(0)  # suspends once, like a body that is not there yet
    return REQUEST


async def send(message: Message) -> None:
    return None


async def per_request(
    asgi: Callable[..., Coroutine[Any, Any, None]], receive: Callable[[], Any], n: int
) -> float:
    scope = {"type": "http"}
    start = time.perf_counter()
    for _ in range(n):
        await asgi(scope, receive, send)
    return (time.perf_counter() - start) / n * 1e6


async def bench_middleware(n: int = 100_000, rounds: int = 15) -> None:
    wrapped = BodyTimeout(app, body_timeout=30.0)
    for name, receive in (("body already there", ready_receive), ("receive waits once", waiting_receive)):
        bare_runs, guarded_runs = [], []
        for _ in range(rounds):  # interleaved, best of: the machine is shared
            bare_runs.append(await per_request(app, receive, n))
            guarded_runs.append(await per_request(wrapped, receive, n))
        bare, guarded = min(bare_runs), min(guarded_runs)
        print(f"BodyTimeout, {name}: {bare:.2f} µs bare, {guarded:.2f} µs wrapped, +{guarded - bare:.2f} µs")


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data: Any) -> None:
        pass

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def per_keep_alive_request(cls: type[HttpToolsProtocol], n: int) -> float:
    config = Config(app, lifespan="off", log_level="warning", access_log=False)
    config.load()
    protocol = cls(config=config, server_state=ServerState(), app_state={})
    protocol.connection_made(FakeTransport())
    data = HEAD + BODY_BYTES
    start = time.perf_counter()
    for _ in range(n):
        protocol.data_received(data)
        await asyncio.sleep(0)  # the request's task runs and answers
    elapsed = (time.perf_counter() - start) / n * 1e6
    protocol.connection_lost(None)
    return elapsed


async def bench_protocol(n: int = 20_000, rounds: int = 15) -> None:
    ours = protocol_class(10.0)
    stock_runs, guarded_runs = [], []
    for _ in range(rounds):
        stock_runs.append(await per_keep_alive_request(HttpToolsProtocol, n))
        guarded_runs.append(await per_keep_alive_request(ours, n))
    stock, guarded = min(stock_runs), min(guarded_runs)
    print(
        f"HeaderTimeoutProtocol, keep-alive request: {stock:.2f} µs stock, {guarded:.2f} µs ours, "
        f"+{guarded - stock:.2f} µs"
    )


async def main() -> None:
    await bench_middleware()
    await bench_protocol()


if __name__ == "__main__":
    uvloop.run(main())
