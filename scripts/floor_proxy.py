"""The floor `scripts/bench` measures tollway against: the least a Python proxy can do here.

    python scripts/floor_proxy.py PORT UPSTREAM_URL [none|ledger]

A raw ASGI app on uvicorn (uvloop, httptools) that relays every POST to the
same path of the upstream with aiohttp and passes the answer back as it is,
streams included: no auth, no validation, no metering, no billing.

- `none`: the relay alone (the reference's "F1").
- `ledger`: the same, plus a durable write per request before the answer
  (or a stream's end) goes out: three INSERTs (reservation, entry, usage)
  on one thread with group commit, SQLite WAL with `synchronous=FULL`
  (the reference's "F5g").  What tollway does on top of this is its own.

Not part of tollway: a yardstick, started by `scripts/bench --floor`.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import sys
import tempfile
import threading
import time
from typing import Any

import aiohttp
import uvicorn

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reservations (id INTEGER PRIMARY KEY, ref TEXT UNIQUE, amount TEXT, at REAL);
CREATE TABLE IF NOT EXISTS entries (id INTEGER PRIMARY KEY, workspace INT, amount TEXT, ref TEXT, at REAL);
CREATE INDEX IF NOT EXISTS entries_ws ON entries (workspace, id);
CREATE TABLE IF NOT EXISTS usage (id INTEGER PRIMARY KEY, ref TEXT, prompt INT, completion INT, at REAL);
"""
_RESERVE = "INSERT INTO reservations (ref, amount, at) VALUES (?, '1', ?)"
_ENTRY = "INSERT INTO entries (workspace, amount, ref, at) VALUES (1, '-1', ?, ?)"
_USAGE = "INSERT INTO usage (ref, prompt, completion, at) VALUES (?, 6, 8, ?)"


class GroupLedger:
    """One thread; each commit takes every waiting write (up to 128) and fsyncs once (FULL)."""

    def __init__(self, path: str) -> None:
        self._queue: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, asyncio.Future[None], str]] = (
            queue.SimpleQueue()
        )
        self._path = path
        self._count = 0
        threading.Thread(target=self._serve, daemon=True, name="floor-ledger").start()

    def _serve(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        while True:
            batch = [self._queue.get()]
            while len(batch) < 128:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            now = time.time()
            db.execute("BEGIN IMMEDIATE")
            for _, _, ref in batch:
                db.execute(_RESERVE, (ref, now))
                db.execute(_ENTRY, (ref, now))
                db.execute(_USAGE, (ref, now))
            db.execute("COMMIT")
            batch[0][0].call_soon_threadsafe(_resolve, [future for _, future, _ in batch])

    async def write(self) -> None:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._count += 1
        self._queue.put((loop, future, f"req-{os.getpid()}-{self._count}"))
        await future


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


def make_app(upstream: str, ledger: GroupLedger | None) -> Any:
    session: aiohttp.ClientSession | None = None
    # anthropic-version as tollway sets it by default (the mock's Messages surface wants one).
    headers = {
        "content-type": "application/json",
        "accept-encoding": "identity",
        "anthropic-version": "2023-06-01",
    }

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal session
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    session = aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(limit=2000), auto_decompress=False
                    )
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if session is not None:
                        await session.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":  # the bench's wait() asks GET /health
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        parts = []
        while True:
            message = await receive()
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        assert session is not None
        answer = await session.post(upstream + scope["path"], data=b"".join(parts), headers=headers)
        kind = answer.headers.get("content-type", "application/json").encode()
        if kind.startswith(b"text/event-stream"):
            await send(
                {"type": "http.response.start", "status": answer.status, "headers": [(b"content-type", kind)]}
            )
            async for chunk in answer.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            answer.release()
            if ledger is not None:
                await ledger.write()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        data = await answer.read()
        if ledger is not None:
            await ledger.write()
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [(b"content-type", kind), (b"content-length", b"%d" % len(data))],
            }
        )
        await send({"type": "http.response.body", "body": data, "more_body": False})

    return app


def main() -> None:
    port, upstream = int(sys.argv[1]), sys.argv[2].rstrip("/")
    mode = sys.argv[3] if len(sys.argv) > 3 else "none"
    ledger = (
        GroupLedger(os.path.join(tempfile.mkdtemp(prefix="floor-"), "floor.db")) if mode == "ledger" else None
    )
    uvicorn.run(
        make_app(upstream, ledger),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
