"""A response's head leaves with the first piece of its body: one write where uvicorn makes two.

uvicorn writes a response's status line and headers when the app sends
`http.response.start`, and its body when the app sends `http.response.body`:
two system calls, and on a TCP_NODELAY socket two segments for the client to
read, although the two messages mostly come one right after the other (a whole
JSON answer always; a stream's first chunk when the upstream sent it with its
headers, as upstreams do).  `hold_heads` gives a request's cycle a stand-in for
its transport that keeps the head and writes it with the first body message,
in one system call:

* a response that declares its length: until its body comes (a client can do
  nothing with the head alone);
* a stream (chunked): until its first chunk, or the end of the event loop's
  current turn, whichever is first: a stream whose first chunk is not there yet
  gets its head at once, as before, not when the upstream speaks;
* a HEAD request's, which no body follows: at once.

Once the head is out the stand-in hands the cycle its transport back, so a
stream's chunks are written as they were.  The bytes are uvicorn's own: its
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

    __slots__ = ("_cycle", "_head", "_loop", "_transport")

    def __init__(
        self, cycle: RequestResponseCycle, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._cycle = cycle
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None

    def write(self, data: bytes) -> None:
        head = self._head
        cycle = self._cycle
        if head is not None:  # the first piece of the body: with its head, and the holder is done
            self._head = None
            cycle.transport = self._transport
            if len(data) < _COPY_BELOW:
                self._transport.write(head + data)
            else:
                self._transport.writelines((head, data))
            return
        if cycle.response_started and cycle.scope["method"] != "HEAD":  # the head: its framing is set
            self._head = data
            if cycle.chunked_encoding:
                self._loop.call_soon(self._flush)
            return
        if cycle.response_started:
            cycle.transport = self._transport  # a HEAD request's head: out now
        self._transport.write(data)  # ... and so is "100 Continue", before any response

    def _flush(self) -> None:
        """The stream's first chunk did not come in the turn its head was sent: the head goes alone."""
        head, self._head = self._head, None
        if head is not None:
            self._cycle.transport = self._transport
            if not self._transport.is_closing():
                self._transport.write(head)

    def __getattr__(self, name: str) -> Any:  # close, is_closing, ...: the transport's own
        return getattr(self._transport, name)


def hold_heads(cycle: RequestResponseCycle, loop: asyncio.AbstractEventLoop) -> None:
    """Make `cycle`'s response head leave with the first piece of its body."""
    cycle.transport = _HeadHolder(cycle, cycle.transport, loop)  # type: ignore[assignment]
