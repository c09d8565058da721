"""Forwarding a request to an upstream: one shared, pooled HTTP client.

The client decides nothing about billing; it turns the upstream's answer, or
its failure, into either an open `Answer` (`answer.py`) or one of tollway's
`APIError`s.  Below that policy sits one of three backends:

- "lean" (the default): tollway's own HTTP/1.1 client (`lean.py`,
  `lean_conn.py`, `lean_pool.py`: asyncio protocols and httptools' parser), about a third of
  aiohttp's CPU per request.  For an upstream that `HTTP(S)_PROXY` /
  `NO_PROXY` send through a proxy it hands over to aiohttp, which speaks to
  proxies.
- "aiohttp": aiohttp's client for every upstream.  `scripts/bench_stack.py`
  measured it at about a third of httpx's CPU per request and half per
  streamed chunk, and it does not slow down with many requests in flight as
  httpx's pool does.
- "httpx": httpx's `AsyncClient`; any httpx transport can be injected, which
  is how tests run the relay without sockets.

Every backend raises httpx's exceptions (aiohttp's are translated at this
boundary), so the rest of tollway sees one exception tree.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from importlib.metadata import version as _package_version
from typing import Literal

import aiohttp
import httpx
from aiohttp.helpers import BasicAuth, get_env_proxy_for_url
from yarl import URL

from tollway.config import BUILTIN_DEMO, Settings, UpstreamConfig
from tollway.errors import APIError, UpstreamStatus, UpstreamTimeout, UpstreamUnavailable
from tollway.serving.shutdown import Cut, Shutdown
from tollway.upstream.answer import AiohttpAnswer, Answer, HttpxAnswer, translate_aiohttp
from tollway.upstream.lean import LeanClient
from tollway.upstream.scrub import Scrubber

__all__ = ["Backend", "UpstreamClient", "chunks_with_idle_timeout"]

Backend = Literal["lean", "aiohttp", "httpx"]

_MAX_ERROR_BODY = 64 * 1024
_USER_AGENT = f"tollway/{_package_version('tollway')}"
_PASSED_HEADERS = ("retry-after", "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests")
_KEEPALIVE_SECONDS = 5.0  # httpx's default keep-alive expiry, kept for every backend


class UpstreamClient:
    def __init__(
        self,
        settings: Settings,
        *,
        demo_base_url: str | None = None,
        demo_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        backend: Backend = "lean",
    ) -> None:
        """`transport` is an httpx transport, so giving one selects the httpx backend."""
        ups = settings.config.upstreams
        self._base_urls = {
            u.name: (demo_base_url or "http://127.0.0.1:8000/_demo/v1")
            if u.base_url == BUILTIN_DEMO
            else u.base_url.rstrip("/")
            for u in ups
        }
        keys = dict(settings.upstream_keys)
        for u in ups:
            if u.base_url == BUILTIN_DEMO and demo_key:
                keys[u.name] = demo_key  # the built-in demo answers tollway alone
        self._headers = {u.name: self._headers_for(u, keys.get(u.name)) for u in ups}
        self.scrub = Scrubber(keys.values())
        connections = max((u.max_connections for u in ups), default=1000)
        self.backend: Backend = "httpx" if transport is not None else backend
        self._send: _HttpxBackend | _AiohttpBackend | _LeanBackend
        if self.backend == "httpx":
            self._send = _HttpxBackend(connections, transport)
        elif self.backend == "aiohttp":
            self._send = _AiohttpBackend(connections)
        else:
            self._send = _LeanBackend(connections)

    @staticmethod
    def _headers_for(upstream: UpstreamConfig, key: str | None) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept-encoding": "identity", **upstream.headers}
        if key:
            if upstream.protocol == "anthropic":
                headers["x-api-key"] = key  # Anthropic's own scheme
            else:
                headers["authorization"] = f"Bearer {key}"
        return headers

    async def aclose(self) -> None:
        await self._send.aclose()

    async def open(
        self,
        upstream: UpstreamConfig,
        path: str,
        body: bytes,
        *,
        stream: bool,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """POST `body` to the upstream's `path`; return the answer once its status is a success.

        `headers` are the client's headers the surface passes on (e.g. `anthropic-version`).

        For streams the body is left open for the caller to read; otherwise it
        has been read in full.  Failures become `APIError`s.
        """
        url = self._base_urls[upstream.name] + path
        sent = self._headers[upstream.name] if not headers else {**self._headers[upstream.name], **headers}
        response: Answer | None = None
        try:
            async with asyncio.timeout(upstream.first_byte_timeout):
                response = await self._send(url, body, sent, upstream.connect_timeout)
                if response.status_code >= 400:
                    raise await self._status_error(response)
                if not stream:
                    await response.read()
                    await response.aclose()  # read whole: the connection goes back to the pool
            return response
        except TimeoutError as exc:
            if response is not None:
                await response.aclose()
            raise UpstreamTimeout(
                f"Upstream {upstream.name!r} did not answer within {upstream.first_byte_timeout:g} s."
            ) from exc
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(
                f"Upstream {upstream.name!r} did not accept a connection "
                f"within {upstream.connect_timeout:g} s."
            ) from exc
        except httpx.HTTPError as exc:
            if response is not None:
                await response.aclose()
            raise UpstreamUnavailable(
                f"Upstream {upstream.name!r} is unreachable ({type(exc).__name__})."
            ) from exc
        except BaseException:
            if response is not None:
                await response.aclose()
            raise

    async def _status_error(self, response: Answer) -> APIError:
        body = b""
        try:
            async for chunk in response.chunks():
                body += chunk
                if len(body) > _MAX_ERROR_BODY:
                    body = body[:_MAX_ERROR_BODY]
                    break
        finally:
            await response.aclose()
        headers = {h: response.headers[h] for h in _PASSED_HEADERS if h in response.headers}
        content_type = response.headers.get("content-type", "application/json")
        return UpstreamStatus(response.status_code, self.scrub(body), content_type, headers)


async def chunks_with_idle_timeout(
    response: Answer, idle: float, shutdown: Shutdown | None = None
) -> AsyncIterator[bytes]:
    """The response body as it arrives; `TimeoutError` if the upstream goes quiet for `idle` s.

    With `shutdown`, the server's graceful shutdown can end the body early: `Cut` is raised
    (at once when waiting on the upstream, else before the next wait).

    Only time spent waiting on the upstream counts: a slow client (the relay
    blocked on sending) never times the upstream out.  One lazy timer per
    stream (`_IdleWatch`) replaces an `asyncio.timeout` per chunk, which cost
    about 8 µs of CPU per chunk on the benchmark machine.
    """
    iterator = response.chunks().__aiter__()
    watch = _IdleWatch(idle)
    untrack = shutdown.track(watch.cut) if shutdown is not None else None
    try:
        while True:
            if watch.cut_asked:
                raise Cut("the server is shutting down")
            watch.waiting()
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                if watch.fired and watch.task.uncancel() == 0:
                    raise TimeoutError(f"no data from the upstream for {idle:g} s") from None
                if watch.cut_fired and watch.task.uncancel() == 0:
                    raise Cut("the server is shutting down") from None
                raise
            finally:
                watch.since = None
            yield chunk
    finally:
        watch.stop()
        if untrack is not None:
            untrack()


class _IdleWatch:
    """Cancels the reading task once it has waited `idle` s for one piece of the body.

    The timer is re-armed only when it fires early, not on every chunk: a chunk
    costs two attribute writes and a clock read.
    """

    __slots__ = ("cut_asked", "cut_fired", "fired", "handle", "idle", "loop", "since", "task")

    def __init__(self, idle: float) -> None:
        self.loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.idle = idle
        self.since: float | None = None  # when the current wait began; None while not waiting
        self.fired = False
        self.cut_asked = False  # the server is shutting down: stop before the next wait
        self.cut_fired = False  # ... and the wait in progress was cancelled for it
        self.handle: asyncio.TimerHandle | None = None

    def cut(self) -> None:
        self.cut_asked = True
        if self.since is not None and not self.fired:  # waiting on the upstream: wake it now
            self.cut_fired = True
            self.task.cancel()

    def waiting(self) -> None:
        self.since = now = self.loop.time()
        if self.handle is None:
            self.handle = self.loop.call_at(now + self.idle, self._check)

    def _check(self) -> None:
        self.handle = None
        if self.since is None:
            return  # not waiting on the upstream now; the next wait re-arms
        due = self.since + self.idle
        if self.loop.time() >= due:
            self.fired = True
            self.task.cancel()
        else:
            self.handle = self.loop.call_at(due, self._check)

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


# Backends: POST `body` to `url`, return the open answer or raise an `httpx.HTTPError`.
# Read deadlines are the caller's (first byte, gaps between chunks); these only bound connecting.


class _HttpxBackend:
    def __init__(self, connections: int, transport: httpx.AsyncBaseTransport | None) -> None:
        self._client = httpx.AsyncClient(
            transport=transport,
            limits=httpx.Limits(
                max_connections=connections,
                max_keepalive_connections=min(connections, 512),
                keepalive_expiry=_KEEPALIVE_SECONDS,
            ),
            timeout=httpx.Timeout(connect=10.0, read=None, write=30.0, pool=30.0),
            follow_redirects=False,
        )

    async def __call__(
        self, url: str, body: bytes, headers: dict[str, str], connect_timeout: float
    ) -> Answer:
        timeout = httpx.Timeout(
            connect=connect_timeout, read=None, write=connect_timeout, pool=connect_timeout
        )
        request = self._client.build_request("POST", url, content=body, headers=headers, timeout=timeout)
        return HttpxAnswer(await self._client.send(request, stream=True))

    async def aclose(self) -> None:
        await self._client.aclose()


class _AiohttpBackend:
    def __init__(self, connections: int) -> None:
        self._connections = connections
        # httpx's trust store (certifi, or SSL_CERT_FILE / SSL_CERT_DIR), so HTTPS upstreams verify alike.
        self._ssl = httpx.create_ssl_context()
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[str, tuple[URL | None, BasicAuth | None]] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _open_session(self) -> aiohttp.ClientSession:
        # Built on first use, inside the running event loop, which aiohttp binds it to.
        connector = aiohttp.TCPConnector(
            limit=self._connections, ssl=self._ssl, keepalive_timeout=_KEEPALIVE_SECONDS
        )
        return aiohttp.ClientSession(
            connector=connector,
            auto_decompress=True,  # an upstream that compresses despite `accept-encoding: identity`
            cookie_jar=aiohttp.DummyCookieJar(),  # one client serves every workspace: no shared cookies
        )

    def proxy_for(self, url: str) -> tuple[URL | None, BasicAuth | None]:
        """HTTP(S)_PROXY / NO_PROXY for this URL, read once (httpx honours them too)."""
        if url not in self._proxies:
            try:
                self._proxies[url] = get_env_proxy_for_url(URL(url))
            except LookupError:
                self._proxies[url] = (None, None)
        return self._proxies[url]

    async def __call__(
        self, url: str, body: bytes, headers: dict[str, str], connect_timeout: float
    ) -> Answer:
        if self._session is None:
            self._session = self._open_session()
        timeout = self._timeouts.get(connect_timeout)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_connect=connect_timeout)
            self._timeouts[connect_timeout] = timeout
        proxy, proxy_auth = self.proxy_for(url)
        try:
            answer = await self._session.post(
                url,
                data=body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
                proxy=proxy,
                proxy_auth=proxy_auth,
            )
        except aiohttp.ClientError as exc:
            raise translate_aiohttp(exc) from exc
        return AiohttpAnswer(answer)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class _LeanBackend:
    """tollway's own client; aiohttp for the upstreams the environment sends through a proxy."""

    def __init__(self, connections: int) -> None:
        # httpx's trust store (certifi, or SSL_CERT_FILE / SSL_CERT_DIR), as for the other backends.
        self._client = LeanClient(
            connections, keepalive_seconds=_KEEPALIVE_SECONDS, ssl_context=httpx.create_ssl_context()
        )
        self._proxied = _AiohttpBackend(connections)  # opens nothing until a proxied upstream is used
        self._direct: dict[str, bool] = {}

    async def __call__(
        self, url: str, body: bytes, headers: dict[str, str], connect_timeout: float
    ) -> Answer:
        direct = self._direct.get(url)
        if direct is None:
            direct = self._direct[url] = self._proxied.proxy_for(url)[0] is None
        if not direct:
            return await self._proxied(url, body, headers, connect_timeout)
        if "user-agent" not in headers:
            headers = {**headers, "user-agent": _USER_AGENT}
        return await self._client.post(url, body, headers, connect_timeout)

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._proxied.aclose()
