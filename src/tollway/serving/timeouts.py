"""Slow and oversized request heads (SPEC §1 `[server] header_timeout`); bodies: `body_timeout.py`.

`protocol_class(header_timeout)` makes a uvicorn httptools protocol that cuts a
connection whose request head is not complete `header_timeout` seconds after
the connection opened (first request) or after the first byte of a later
keep-alive request, and that refuses oversized heads instead of buffering them.

What the protocol does with each kind of input:

* nothing at all: the connection is closed, silently, after `header_timeout`
  (a 408 there would be read by a client as the answer to the request it is
  just about to send on a pre-opened connection);
* part of a head: `408 Request Timeout` (`connection: close`, OpenAI-shaped
  JSON) after `header_timeout`, then close;
* a URL over `max_url_bytes` (16 KiB): `414`; more than `max_header_count`
  (256) header lines, trailers included, more than `max_head_bytes` (64 KiB) of
  request line and headers, or more than that read while a header section is
  unfinished (one huge header, or trailers): `431`; bytes httptools cannot
  parse: `400` (uvicorn's own answer is plain text); then close.  Every one of
  these is OpenAI-shaped JSON with an `x-request-id`, like the app's answers.  What is held
  for a refused head never exceeds the limit plus one socket read.
* any of those while an earlier request of the same connection is still being
  answered (HTTP pipelining): that response is never cut; the connection stops
  reading and closes once the requests it already has are answered.
* stray bytes between requests (a lone CRLF) no longer switch off uvicorn's
  `timeout_keep_alive`, and neither does the unread rest of a body the app did
  not read: the idle connection still closes `timeout_keep_alive` seconds
  after its last response (uvicorn cancels that timer on any byte and re-arms
  it only when a response completes).

The classes `protocol_class` makes are created on demand but pickle by
reference: the module resolves their names (`__getattr__`), so a
`uvicorn.Config(http=protocol_class(...))` survives the spawn of `--workers`
processes, and `http="tollway.serving.timeouts:<name>"` works as well.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from tollway.keys import new_id
from tollway.serving.one_write import hold_heads

__all__ = [
    "DEFAULT_HEADER_TIMEOUT",
    "MAX_HEADER_COUNT",
    "MAX_HEAD_BYTES",
    "MAX_URL_BYTES",
    "HeaderTimeoutProtocol",
    "Message",
    "Receive",
    "Send",
    "check_seconds",
    "error_json",
    "protocol_class",
]

DEFAULT_HEADER_TIMEOUT: Final = 10.0
# Request line and header lines of one request, and its trailers (chunked bodies) again.
MAX_HEAD_BYTES: Final = 64 * 1024
MAX_URL_BYTES: Final = 16 * 1024
MAX_HEADER_COUNT: Final = 256

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def error_json(message: str, code: str) -> bytes:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    return json.dumps({"error": error}, separators=(",", ":")).encode()


def check_seconds(name: str, value: float) -> float:
    seconds = float(value)
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
    return seconds


# ---------------------------------------------------------------------------
# header_timeout and head size limits: the uvicorn protocol


class _Refused(Exception):
    """Raised from a parser callback to stop httptools on an oversized head."""


_REASONS: Final = {
    400: ("The request is not valid HTTP/1.1.", "invalid_http_request"),
    408: ("The request head was not received in time.", "request_timeout"),
    414: ("The request URL is longer than this server accepts.", "uri_too_long"),
    431: ("The request headers are larger than this server accepts.", "request_headers_too_large"),
}


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for request heads and bounded head sizes.

    Use `protocol_class()` to get one bound to other values; this class itself
    uses the defaults.  Costs about a microsecond per request: the deadline is
    kept lazily (one timer per connection, re-armed when it fires early), and
    sizes are checked on uvicorn's own `url` / `headers` once per read, the
    exact byte count only when the reads that carried a head exceed the limit.
    """

    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    max_head_bytes: int = MAX_HEAD_BYTES
    max_url_bytes: int = MAX_URL_BYTES
    max_header_count: int = MAX_HEADER_COUNT

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._header_timer: asyncio.TimerHandle | None = None
        self._head_deadline: float | None = None  # while a head is due
        self._in_head = False  # between a message's first byte and its end of headers
        self._read = 0  # size of the read being parsed
        self._head_reads = 0  # sizes of the reads the current head came in: its upper bound
        self._progress = False  # the parser began or ended a head, or gave body, during this read
        self._silent = 0  # bytes read since then: a lower bound of a header or trailer in the making
        self._refusal: int | None = None
        self._stopped = False  # reads nothing more: closes once the requests it has are answered

    # Connection events

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_deadline = None
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._stopped:
            return
        size = self._read = len(data)
        if self._in_head:
            self._head_reads += size
        # uvicorn cancels its keep-alive timer on any byte and re-arms it only when a
        # response completes: hide it so that it keeps running unless a request begins.
        keep_alive = self.timeout_keep_alive_task
        self.timeout_keep_alive_task = None
        self._progress = False
        super().data_received(data)
        if keep_alive is not None:
            if self.timeout_keep_alive_task is None and self._idle() and not self.transport.is_closing():
                self.timeout_keep_alive_task = keep_alive
            else:
                keep_alive.cancel()
        if self.transport.is_closing():
            return
        # httptools keeps an unfinished header name or value to itself: bound it by the bytes
        # read since the parser last made progress.
        self._silent = 0 if self._progress else self._silent + size
        if self._silent > self.max_head_bytes:
            self._refuse(431)
        elif self._in_head and len(self.url) > self.max_url_bytes:
            self._refuse(414)
        elif self.headers is not None and len(self.headers) > self.max_header_count:  # head or trailers
            self._refuse(431)

    def _idle(self) -> bool:
        """No request is being received or answered (the unread rest of an ignored body may still come)."""
        cycle = self.cycle
        return not self._in_head and (cycle is None or cycle.response_complete) and not self.pipeline

    # Parser callbacks

    def on_message_begin(self) -> None:
        self._progress = True
        self._in_head = True
        self._head_reads = self._read
        # The first request's deadline runs from connection_made; a later one's from its first byte.
        self._arm_header_timer()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._progress = True
        self._in_head = False
        self._head_deadline = None
        status = None
        if len(self.url) > self.max_url_bytes:
            status = 414
        elif len(self.headers) > self.max_header_count:
            status = 431
        elif self._head_reads > self.max_head_bytes:  # the reads can't tell: measure the head
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            if size > self.max_head_bytes:
                status = 431
        if status is not None:
            self._refusal = status
            raise _Refused  # httptools stops; uvicorn answers with send_400_response, below
        existing = self.cycle
        super().on_headers_complete()
        if self.cycle is not existing:  # uvicorn made one (not an upgrade): its head goes with its body
            hold_heads(self.cycle, self.loop)

    def on_body(self, body: bytes) -> None:
        self._progress = True
        super().on_body(body)

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to any parser error, including the _Refused raised above; uvicorn's
        # own is plain text without a request id, so it is answered here like the refusals.
        status, self._refusal = self._refusal, None
        self._refuse(400 if status is None else status)

    # Deadline and refusals

    def _arm_header_timer(self) -> None:
        if self._head_deadline is None:
            deadline = self._head_deadline = self.loop.time() + self.header_timeout
            if self._header_timer is None:
                self._header_timer = self.loop.call_at(deadline, self._on_header_timer)

    def _on_header_timer(self) -> None:
        self._header_timer = None
        deadline = self._head_deadline
        if deadline is None or self.transport.is_closing():
            return
        if self.loop.time() + 0.001 < deadline:  # armed for an earlier head
            self._header_timer = self.loop.call_at(deadline, self._on_header_timer)
            return
        self._head_deadline = None
        if self._in_head:
            self._refuse(408)
        elif self._idle():  # nothing (or only blank lines) was sent: no request to answer
            self.transport.close()

    def _refuse(self, status: int) -> None:
        self._head_deadline = None
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if self._in_head:
                # The head of a pipelined request, with the earlier ones (whose bodies are all
                # in) still being answered: don't cut them, answer them and close.
                self._stopped = True
                self.flow.pause_reading()
                cycle.keep_alive = False
            else:
                # Oversized trailers of the request being answered.
                self.transport.close()
            return
        message, code = _REASONS[status]
        body = error_json(message, code)
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(body),
                b"x-request-id: %s\r\n" % new_id("req").encode(),
                b"connection: close\r\n\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()


_PREFIX: Final = "HeaderTimeoutProtocol_"
_CLASSES: dict[str, type[HeaderTimeoutProtocol]] = {}


def _class_name(header_timeout: float, max_head_bytes: int, max_url_bytes: int, max_header_count: int) -> str:
    # A name that is also an identifier and has no dot (pickle splits qualified names on dots).
    seconds = repr(header_timeout).replace(".", "p").replace("-", "m").replace("+", "")
    return f"{_PREFIX}t{seconds}_h{max_head_bytes}_u{max_url_bytes}_n{max_header_count}"


def protocol_class(
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    *,
    max_head_bytes: int = MAX_HEAD_BYTES,
    max_url_bytes: int = MAX_URL_BYTES,
    max_header_count: int = MAX_HEADER_COUNT,
) -> type[HeaderTimeoutProtocol]:
    """The protocol class to pass as `uvicorn.Config(http=...)` / `uvicorn.run(http=...)`.

    The same arguments give the same class.  It pickles by name, so it also
    works with `workers=N` (uvicorn spawns the workers and pickles its config).
    """
    seconds = check_seconds("header_timeout", header_timeout)
    limits = (int(max_head_bytes), int(max_url_bytes), int(max_header_count))
    if min(limits) < 1:
        raise ValueError(f"head limits must be positive, not {limits}")
    name = _class_name(seconds, *limits)
    cls = _CLASSES.get(name)
    if cls is None:
        namespace = {
            "__module__": __name__,
            "__qualname__": name,
            "__doc__": f"HeaderTimeoutProtocol with header_timeout={seconds!r}s and head limits {limits}.",
            "header_timeout": seconds,
            "max_head_bytes": limits[0],
            "max_url_bytes": limits[1],
            "max_header_count": limits[2],
        }
        cls = type(name, (HeaderTimeoutProtocol,), namespace)
        _CLASSES[name] = cls
    return cls


def __getattr__(name: str) -> Any:
    """Rebuild a `protocol_class()` class from its name (in a spawned worker, or from an import string)."""
    if name.startswith(_PREFIX):
        try:
            seconds, head, url, count = name[len(_PREFIX) :].split("_")
            if seconds[0] != "t" or head[0] != "h" or url[0] != "u" or count[0] != "n":
                raise ValueError(name)
            cls = protocol_class(
                float(seconds[1:].replace("p", ".").replace("m", "-")),
                max_head_bytes=int(head[1:]),
                max_url_bytes=int(url[1:]),
                max_header_count=int(count[1:]),
            )
        except (ValueError, IndexError):
            pass
        else:
            if cls.__name__ == name:
                return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
