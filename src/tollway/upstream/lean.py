"""A lean HTTP/1.1 client for forwarding POSTs to upstream model APIs.

Built on `asyncio.Protocol` and `httptools.HttpResponseParser` to take
aiohttp (and the `httpx.Response` around it) off the hot path: it does only
what forwarding a model request needs.

- `LeanClient.post` sends one POST and returns a `LeanResponse` once the
  final status line and headers are in (1xx interim responses are skipped);
  the caller reads the body with `read()` (whole) or `chunks()` (as it
  arrives, for streams), then `aclose()`s it.
- The request goes out in one `transport.write`: the request line, `host`,
  the caller's headers (minus any `host`, `connection`, `content-length`,
  `transfer-encoding`) and `content-length`.  A header value holding CR, LF
  or NUL raises `ValueError`: nothing can be injected.
- Bodies are framed by content-length, chunked encoding or the end of the
  connection.  gzip and deflate are decoded; identity passes through
  untouched; any other content-encoding raises `httpx.DecodingError`.
- Connections are pooled per (scheme, host, port), at most `connections` open
  each; beyond that `post` waits in line for `connect_timeout` (then
  `httpx.PoolTimeout`).  Idle ones are reused newest first and dropped after
  `keepalive_seconds` or once the peer closed them.  A request on a reused
  connection that dies before a byte of the response, within
  `lean_conn.STALE_WINDOW` (1 s) of being sent, goes again, once, on a fresh
  connection: the upstream closed it while idle.  Later, the upstream may
  have taken the request; that is a `RemoteProtocolError`, not a retry.
- A connection returns to the pool only when its response was received to
  the end and both sides allow keep-alive.  An abandoned or cancelled
  response closes its connection at once, which stops the upstream.
- Errors are httpx's: `ConnectError`, `ConnectTimeout`, `PoolTimeout`,
  `ReadError` (the socket failed mid-body), `RemoteProtocolError` (no
  response, a body cut short, a malformed response), `DecodingError`.
- No proxies, redirects, cookies or HTTP/2: the caller picks another backend
  when it needs those.
"""

from __future__ import annotations

import re
import ssl
import zlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx

from tollway.upstream.lean_conn import Connection, Stale
from tollway.upstream.lean_pool import Pool

__all__ = ["LeanClient", "LeanResponse"]

_NOT_SENT = frozenset({"content-length", "transfer-encoding", "host", "connection"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_NAMES: dict[str, bool] = {}  # header names seen so far -> whether they are sent
_MAX_CACHED = 1024


class LeanClient:
    """A pool of HTTP/1.1 connections for POSTing to upstreams; see the module's docstring."""

    def __init__(
        self, connections: int, *, keepalive_seconds: float = 5.0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        if connections < 1:
            raise ValueError("connections must be at least 1")
        self._limit = connections
        self._keepalive = keepalive_seconds
        self._ssl = ssl_context
        self._pools: dict[tuple[str, str, int], Pool] = {}
        self._targets: dict[str, tuple[Pool, bytes]] = {}  # url -> its pool, request line and host
        self._closed = False

    async def post(
        self, url: str, body: bytes, headers: dict[str, str], connect_timeout: float
    ) -> LeanResponse:
        """POST `body` to `url`; return once the response's status and headers are in."""
        if self._closed:
            raise RuntimeError("the LeanClient is closed")
        target = self._targets.get(url)
        if target is None:
            target = self._target(url)
        pool, start = target
        data = b"".join((start, _header_block(headers), b"content-length: %d\r\n\r\n" % len(body), body))
        conn = await pool.acquire(connect_timeout)
        try:
            await conn.send(data)
        except Stale:
            conn.abort()  # dead already; its slot carries the fresh connection
            conn = await pool.connect(connect_timeout)
            try:
                await conn.send(data)
            except BaseException:
                pool.release(conn, keep=False)
                raise
        except BaseException:
            pool.release(conn, keep=False)
            raise
        return LeanResponse(conn, pool)

    async def aclose(self) -> None:
        """Close the idle connections; those in use close when their response is done with."""
        self._closed = True
        for pool in self._pools.values():
            pool.close_idle()

    def _target(self, url: str) -> tuple[Pool, bytes]:
        parts = urlsplit(url)
        scheme = parts.scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {url!r}")
        host = parts.hostname
        if not host:
            raise ValueError(f"no host in {url!r}")
        if parts.username is not None or parts.password is not None:
            raise ValueError("credentials in the URL are not supported")
        default = 443 if scheme == "https" else 80
        port = parts.port or default
        host_header = f"[{host}]" if ":" in host else host
        if port != default:
            host_header += f":{port}"
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        if re.search(r"[\s\x00-\x1f\x7f]", path + host):
            raise ValueError(f"whitespace or control characters in {url!r}")
        start = f"POST {path} HTTP/1.1\r\nhost: {host_header}\r\n".encode("ascii")
        key = (scheme, host, port)
        pool = self._pools.get(key)
        if pool is None:
            context = None
            if scheme == "https":
                if self._ssl is None:
                    self._ssl = ssl.create_default_context()
                context = self._ssl
            pool = self._pools[key] = Pool(host, port, context, self._limit, self._keepalive)
        if len(self._targets) >= _MAX_CACHED:
            self._targets.clear()
        target = self._targets[url] = (pool, start)
        return target


class LeanResponse:
    """An upstream's answer: status and headers now, the body through `read()` or `chunks()`."""

    __slots__ = ("_conn", "_pool", "_used", "content", "headers", "raw_headers", "status_code")

    def __init__(self, conn: Connection, pool: Pool) -> None:
        self._conn: Connection | None = conn
        self._pool = pool
        self._used = False
        self.content = b""  # the whole body, once `read` returned it
        self.status_code: int = conn.status
        self.raw_headers: list[tuple[bytes, bytes]] = conn.raw
        headers: dict[str, str] = {}
        for name, value in conn.raw:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            seen = headers.get(key)
            if seen is None:
                headers[key] = text
            elif key != "set-cookie":
                headers[key] = f"{seen}, {text}"
        self.headers: dict[str, str] = headers

    async def read(self) -> bytes:
        """The whole body, decoded."""
        conn = self._start()
        conn.whole = True
        if conn.read_paused:
            conn.resume()
        try:
            decoder = _decoder(self.headers)
            while not conn.done:
                if conn.error is not None:
                    raise conn.error
                await conn.wait()
        except BaseException:
            self._release(False)
            raise
        body = conn.body
        data = body[0] if len(body) == 1 else b"".join(body)
        self._release(conn.keep)
        if decoder is not None:
            data = decoder.decode(data) + decoder.flush()
        self.content = data
        return data

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, decoded, in pieces as they arrive (what came since the last piece, joined)."""
        conn = self._start()
        tail = b""
        try:
            decoder = _decoder(self.headers)
            while True:
                if conn.body:
                    body = conn.body
                    conn.body = []
                    conn.buffered = 0
                    if conn.read_paused:
                        conn.resume()
                    data = body[0] if len(body) == 1 else b"".join(body)
                    if decoder is not None:
                        data = decoder.decode(data)
                    if data:
                        yield data
                    if self._conn is None:
                        raise httpx.StreamClosed()
                elif conn.done:
                    break
                elif conn.error is not None:
                    raise conn.error
                else:
                    await conn.wait()
            if decoder is not None:
                tail = decoder.flush()
        except BaseException:
            self._release(False)
            raise
        self._release(conn.keep)
        if tail:
            yield tail

    async def aclose(self) -> None:
        """Done with the response: its connection is pooled if the response came whole, else closed."""
        conn = self._conn
        if conn is not None:
            self._release(conn.done and conn.keep)

    def _start(self) -> Connection:
        if self._used:
            raise RuntimeError("the body can be read once, with read() or chunks()")
        self._used = True
        if self._conn is None:
            raise httpx.StreamClosed()
        return self._conn

    def _release(self, keep: bool) -> None:
        conn = self._conn
        if conn is not None:
            self._conn = None
            self._pool.release(conn, keep)

    def __del__(self) -> None:
        if self._conn is not None:  # dropped without aclose(): free its slot
            try:
                self._release(False)
            except RuntimeError:
                pass  # the event loop is closed: so is the socket


def _header_block(headers: dict[str, str]) -> bytes:
    lines = []
    for name, value in headers.items():
        sent = _HEADER_NAMES.get(name)
        if sent is None:
            sent = _learn(name)
        if sent:
            lines.append(f"{name}: {value}\r\n")
    text = "".join(lines)
    count = len(lines)
    if text.count("\n") != count or text.count("\r") != count or "\x00" in text:
        bad = [name for name, value in headers.items() if re.search(r"[\r\n\x00]", value)]
        raise ValueError(f"CR, LF or NUL in the value of header {bad[0]!r}")
    return text.encode("latin-1")


def _learn(name: str) -> bool:
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"invalid header name {name!r}")
    sent = name.lower() not in _NOT_SENT
    if len(_HEADER_NAMES) < _MAX_CACHED:
        _HEADER_NAMES[name] = sent
    return sent


class _Decoder:
    """gzip or deflate (zlib-wrapped, or raw as some servers send it), piece by piece."""

    __slots__ = ("_inflate", "_maybe_raw")

    def __init__(self, gzip: bool) -> None:
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS)
        self._maybe_raw = not gzip

    def decode(self, data: bytes) -> bytes:
        try:
            out = self._inflate.decompress(data)
        except zlib.error as exc:
            if not self._maybe_raw:
                raise httpx.DecodingError(f"the body does not decode: {exc}") from exc
            self._maybe_raw = False
            self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            return self.decode(data)
        if data:
            self._maybe_raw = False
        return out

    def flush(self) -> bytes:
        try:
            return self._inflate.flush()
        except zlib.error as exc:
            raise httpx.DecodingError(f"the body does not decode: {exc}") from exc


def _decoder(headers: dict[str, str]) -> _Decoder | None:
    encoding = headers.get("content-encoding")
    if encoding is None:
        return None
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return _Decoder(gzip=True)
    if encoding == "deflate":
        return _Decoder(gzip=False)
    raise httpx.DecodingError(f"unsupported content-encoding {encoding!r}")
