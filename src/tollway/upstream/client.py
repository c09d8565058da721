"""Forwarding a request to an upstream: one shared, pooled httpx client.

The client decides nothing about billing; it turns the upstream's answer, or
its failure, into either an open `httpx.Response` or one of tollway's
`APIError`s.  The transport is injectable so tests can swap it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from tollway.config import BUILTIN_DEMO, Settings, UpstreamConfig
from tollway.errors import APIError, UpstreamStatus, UpstreamTimeout, UpstreamUnavailable
from tollway.upstream.scrub import Scrubber

__all__ = ["UpstreamClient"]

_MAX_ERROR_BODY = 64 * 1024
_PASSED_HEADERS = ("retry-after", "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests")


class UpstreamClient:
    def __init__(
        self,
        settings: Settings,
        *,
        demo_base_url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        ups = settings.config.upstreams
        self._base_urls = {
            u.name: (demo_base_url or "http://127.0.0.1:8000/_demo/v1")
            if u.base_url == BUILTIN_DEMO
            else u.base_url.rstrip("/")
            for u in ups
        }
        self._headers = {u.name: self._headers_for(u, settings.upstream_keys.get(u.name)) for u in ups}
        self.scrub = Scrubber(settings.upstream_keys.values())
        connections = max((u.max_connections for u in ups), default=1000)
        self._client = httpx.AsyncClient(
            transport=transport,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=min(connections, 512)),
            # Read deadlines are enforced per phase below (first byte, gaps between chunks).
            timeout=httpx.Timeout(connect=10.0, read=None, write=30.0, pool=30.0),
            follow_redirects=False,
        )

    @staticmethod
    def _headers_for(upstream: UpstreamConfig, key: str | None) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept-encoding": "identity", **upstream.headers}
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    async def aclose(self) -> None:
        await self._client.aclose()

    async def open(self, upstream: UpstreamConfig, body: bytes, *, stream: bool) -> httpx.Response:
        """POST a chat completion; return the response once its status is a success.

        For streams the body is left open for the caller to read; otherwise it
        has been read in full.  Failures become `APIError`s.
        """
        request = self._client.build_request(
            "POST",
            self._base_urls[upstream.name] + "/chat/completions",
            content=body,
            headers=self._headers[upstream.name],
            timeout=httpx.Timeout(
                connect=upstream.connect_timeout,
                read=None,
                write=upstream.connect_timeout,
                pool=upstream.connect_timeout,
            ),
        )
        response: httpx.Response | None = None
        try:
            async with asyncio.timeout(upstream.first_byte_timeout):
                response = await self._client.send(request, stream=True)
                if response.status_code >= 400:
                    raise await self._status_error(response)
                if not stream:
                    await response.aread()
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

    async def _status_error(self, response: httpx.Response) -> APIError:
        body = b""
        try:
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > _MAX_ERROR_BODY:
                    body = body[:_MAX_ERROR_BODY]
                    break
        finally:
            await response.aclose()
        headers = {h: response.headers[h] for h in _PASSED_HEADERS if h in response.headers}
        content_type = response.headers.get("content-type", "application/json")
        return UpstreamStatus(response.status_code, self.scrub(body), content_type, headers)


async def chunks_with_idle_timeout(response: httpx.Response, idle: float) -> AsyncIterator[bytes]:
    """The response body as it arrives; `TimeoutError` if the upstream goes quiet for `idle` s."""
    iterator = response.aiter_bytes().__aiter__()
    while True:
        try:
            async with asyncio.timeout(idle):
                chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        yield chunk
