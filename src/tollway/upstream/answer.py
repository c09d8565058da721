"""An upstream's answer as the pipeline reads it, whichever HTTP client fetched it.

`UpstreamClient.open` returns an `Answer` once the status is a success: a
non-stream answer already read whole (`content`), a stream still open for
the relay (`chunks`).  Each backend has its own, with no response object of
another library wrapped around it (an `httpx.Response` built per request cost
about 13 µs): the lean client's own, aiohttp's `ClientResponse` behind
`AiohttpAnswer`, and httpx's `Response` behind `HttpxAnswer` (the backend
tests inject transports into).  Failures while reading are httpx's
exception types on every backend, so the relay catches one family.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol

import aiohttp
import httpx

__all__ = ["AiohttpAnswer", "Answer", "HttpxAnswer", "translate_aiohttp"]


class Answer(Protocol):
    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Looked up by lower-case name."""
        ...

    @property
    def content(self) -> bytes:
        """The whole body, once `read` has returned it."""
        ...

    async def read(self) -> bytes: ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, decoded (for streams; either this or `read`)."""
        ...

    async def aclose(self) -> None:
        """Release the connection: back to the pool if the body was read to its end, else closed."""
        ...


class HttpxAnswer:
    __slots__ = ("_response",)

    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status_code(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def content(self) -> bytes:
        return self._response.content

    async def read(self) -> bytes:
        return await self._response.aread()

    def chunks(self) -> AsyncIterator[bytes]:
        return self._response.aiter_bytes()

    async def aclose(self) -> None:
        await self._response.aclose()


class AiohttpAnswer:
    """aiohttp's response (its session decompresses), read and released the way `Answer` says."""

    __slots__ = ("_answer", "_content")

    def __init__(self, answer: aiohttp.ClientResponse) -> None:
        self._answer = answer
        self._content = b""

    @property
    def status_code(self) -> int:
        return self._answer.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._answer.headers

    @property
    def content(self) -> bytes:
        return self._content

    async def read(self) -> bytes:
        try:
            self._content = await self._answer.read()
        except aiohttp.ClientError as exc:
            raise translate_aiohttp(exc) from exc
        return self._content

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._answer.content.iter_any():
                yield chunk
        except aiohttp.ClientError as exc:
            raise translate_aiohttp(exc) from exc

    async def aclose(self) -> None:
        if self._answer.content.at_eof():
            self._answer.release()  # read to the end: the connection goes back to the pool
        else:
            self._answer.close()  # abandoned mid-way: drop the connection, so the upstream stops


def translate_aiohttp(exc: aiohttp.ClientError) -> httpx.HTTPError:
    """The httpx exception that stands for an aiohttp one (`open` and the relay catch httpx's)."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ConnectTimeout(message)  # only connecting has a deadline here
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)
    if isinstance(exc, aiohttp.ClientOSError):
        return httpx.ReadError(message)
    return httpx.RemoteProtocolError(message)
