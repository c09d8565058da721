"""A tiny Litestar app behind the slow-client guards, run as a real uvicorn server by test_timeouts.

`python -m tests.serving.slow_app --header-timeout 0.5 --body-timeout 0.5` binds a
free loopback port, prints it on the first line of stdout, and serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from litestar import Litestar, Request, get, post
from litestar.response import Stream

from tollway.serving.body_timeout import BodyTimeout
from tollway.serving.timeouts import protocol_class

STREAM_CHUNKS = 12
STREAM_DELAY = 0.25  # 3 s in all: longer than every timeout the tests use


@post("/echo", status_code=200)
async def echo(request: Request[Any, Any, Any]) -> dict[str, int]:
    body = await request.body()
    return {"bytes": len(body)}


@get("/health")
async def health() -> str:
    return "ok"


@get("/stream")
async def stream(chunks: int = STREAM_CHUNKS) -> Stream:
    async def body() -> AsyncIterator[bytes]:
        for i in range(chunks):
            yield b"chunk %d\n" % i
            await asyncio.sleep(STREAM_DELAY)

    return Stream(body(), media_type="text/plain")


def create_app(body_timeout: float) -> BodyTimeout:
    return BodyTimeout(Litestar([echo, health, stream]), body_timeout=body_timeout)


def app_from_env() -> BodyTimeout:
    """Factory for worker processes: the parent passes the timeout by environment."""
    return create_app(float(os.environ["SLOW_APP_BODY_TIMEOUT"]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--header-timeout", type=float, default=0.5)
    parser.add_argument("--body-timeout", type=float, default=0.5)
    parser.add_argument("--keep-alive", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)  # connections wait in the backlog until uvicorn accepts
    sys.stdout.write(f"{sock.getsockname()[1]}\n")
    sys.stdout.flush()

    options: dict[str, Any] = {
        "http": protocol_class(args.header_timeout),
        "loop": "uvloop",
        "ws": "none",
        "lifespan": "on",
        "log_level": "warning",
        "access_log": False,
        "timeout_keep_alive": args.keep_alive,
        "timeout_graceful_shutdown": 10,
    }
    if args.workers == 1:
        server = uvicorn.Server(uvicorn.Config(create_app(args.body_timeout), **options))
        server.run(sockets=[sock])
    else:
        from uvicorn.supervisors import Multiprocess

        os.environ["SLOW_APP_BODY_TIMEOUT"] = str(args.body_timeout)
        config = uvicorn.Config(
            "tests.serving.slow_app:app_from_env",
            factory=True,
            workers=args.workers,
            **options,
        )
        Multiprocess(config, sockets=[sock]).run()  # spawns the workers: pickles config, http class and all


if __name__ == "__main__":
    main()
