"""The per-origin pool of `tollway.upstream.lean`'s connections (`lean_conn.Connection`).

A `Pool` holds one origin's idle keep-alive connections, newest last (LIFO),
and counts every connection open or being opened against its limit.  A freed
connection, or the slot of a closed one, goes straight to the longest waiter
(FIFO), so nobody can jump the queue.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque

import httpx

from tollway.upstream.lean_conn import Connection

__all__ = ["Pool"]


class Pool:
    """One origin's connections: at most `limit` open, idle ones reused newest first."""

    __slots__ = (
        "client_closed",
        "host",
        "idle",
        "keepalive",
        "limit",
        "loop",
        "opened",
        "port",
        "ssl",
        "timer",
        "waiters",
    )

    def __init__(
        self, host: str, port: int, ssl_context: ssl.SSLContext | None, limit: int, keepalive: float
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.host = host
        self.port = port
        self.ssl = ssl_context
        self.limit = limit
        self.keepalive = keepalive
        self.idle: list[Connection] = []
        self.opened = 0  # connections open or being opened, idle ones included
        self.waiters: deque[asyncio.Future[Connection | None]] = deque()  # None: "a slot is yours"
        self.timer: asyncio.TimerHandle | None = None
        self.client_closed = False

    async def acquire(self, seconds: float) -> Connection:
        idle = self.idle
        if idle:
            horizon = self.loop.time() - self.keepalive
            while idle:
                conn = idle.pop()
                if conn.usable(horizon):
                    return conn
                conn.abort()
                self.opened -= 1  # nobody waits while a connection is idle
        if self.opened < self.limit:
            self.opened += 1
            return await self.connect(seconds)
        waiter: asyncio.Future[Connection | None] = self.loop.create_future()
        self.waiters.append(waiter)
        try:
            async with asyncio.timeout(seconds):
                got = await waiter
        except BaseException as exc:
            self._give_back(waiter)
            if isinstance(exc, TimeoutError):
                raise httpx.PoolTimeout(
                    f"no connection to {self.host}:{self.port} came free within {seconds:g} s"
                ) from None
            raise
        if got is not None and got.usable(self.loop.time() - self.keepalive):
            return got
        if got is not None:
            got.abort()
        return await self.connect(seconds)  # on the slot handed over

    async def connect(self, seconds: float) -> Connection:
        """A new connection on a slot already counted in `opened` (given back if connecting fails)."""
        loop = self.loop
        if self.client_closed:
            self.free()
            raise RuntimeError("the LeanClient is closed")
        try:
            async with asyncio.timeout(seconds):
                _, conn = await loop.create_connection(
                    lambda: Connection(loop),
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl is not None else None,
                )
        except BaseException as exc:
            self.free()
            where = f"{self.host}:{self.port}"
            if isinstance(exc, TimeoutError):
                raise httpx.ConnectTimeout(f"connecting to {where} took over {seconds:g} s") from None
            if isinstance(exc, OSError):
                raise httpx.ConnectError(f"connecting to {where} failed: {exc}") from exc
            raise
        return conn

    def release(self, conn: Connection, keep: bool) -> None:
        conn.active = False
        transport = conn.transport
        if keep and not conn.lost and not self.client_closed and transport and not transport.is_closing():
            conn.idle_since = self.loop.time()
            waiters = self.waiters
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(conn)
                    return
            self.idle.append(conn)
            if self.timer is None:
                self.timer = self.loop.call_later(self.keepalive, self._prune)
            return
        conn.abort()
        self.free()

    def free(self) -> None:
        """A connection is gone: its slot goes to the first waiter, else back to the count."""
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.opened -= 1

    def close_idle(self) -> None:
        self.client_closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for conn in self.idle:
            conn.abort()
            self.opened -= 1
        self.idle.clear()

    def _give_back(self, waiter: asyncio.Future[Connection | None]) -> None:
        """A waiter gave up: whatever it was handed goes to the next one."""
        if waiter.done() and not waiter.cancelled():
            got = waiter.result()
            if got is None:
                self.free()
            else:
                self.release(got, keep=True)
            return
        waiter.cancel()
        try:
            self.waiters.remove(waiter)
        except ValueError:
            pass

    def _prune(self) -> None:
        """Close idle connections past their keep-alive (or closed by the peer); re-arm while any idle."""
        self.timer = None
        now = self.loop.time()
        horizon = now - self.keepalive
        fresh = []
        for conn in self.idle:
            if conn.usable(horizon):
                fresh.append(conn)
            else:
                conn.abort()
                self.free()
        self.idle[:] = fresh
        if fresh:
            self.timer = self.loop.call_at(fresh[0].idle_since + self.keepalive + 0.01, self._prune)
