"""A response with a Content-Length leaves in one write: its head goes with the first piece of its body.

uvicorn writes a response's status line and headers when the app sends
`http.response.start`, and its body when the app sends `http.response.body`:
two system calls, and on a TCP_NODELAY socket two segments for the client to
read, although a whole JSON answer's two messages come one right after the
other.  `hold_heads` gives a request's cycle a stand-in for its transport that
keeps the head of a response which declares its length and writes it with
the first body message, in one system call.  A stream's head (chunked, no
length) and a HEAD request's (no body follows) are written at once, as
before; either way the stand-in then hands the cycle its transport back, so
a stream's chunks are written as they were.  The bytes are uvicorn's own: its
`send` still builds, checks and counts the response.

`HeaderTimeoutProtocol.on_headers_complete` gives every cycle one.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

__all__ = ["hold_heads"]

# Above this a body goes out with its head through `writelines` rather than copied behind it.
_COPY_BELOW: Final = 64 * 1024


class _HeadHolder:
    """The cycle's transport until its response's head is out (with its body's first piece)."""

    __slots__ = ("_cycle", "_head", "_transport")

    def __init__(self, cycle: RequestResponseCycle, transport: asyncio.Transport) -> None:
        self._cycle = cycle
        self._transport = transport
        self._head: bytes | None = None

    def write(self, data: bytes) -> None:
        head = self._head
        cycle = self._cycle
        if head is not None:  # the first piece of the body: with its head, and the holder is done
            cycle.transport = self._transport
            if len(data) < _COPY_BELOW:
                self._transport.write(head + data)
            else:
                self._transport.writelines((head, data))
            return
        if cycle.response_started:  # the response's head: uvicorn has read its framing already
            if cycle.chunked_encoding is False and cycle.scope["method"] != "HEAD":
                self._head = data
                return
            cycle.transport = self._transport  # a stream's, or a HEAD request's: out now
        self._transport.write(data)  # ... and so is "100 Continue", before any response

    def __getattr__(self, name: str) -> Any:  # close, is_closing, ...: the transport's own
        return getattr(self._transport, name)


def hold_heads(cycle: RequestResponseCycle) -> None:
    """Make `cycle`'s response leave in one write when it declares its length."""
    cycle.transport = _HeadHolder(cycle, cycle.transport)  # type: ignore[assignment]
