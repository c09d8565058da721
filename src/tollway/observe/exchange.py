"""What one proxied request did, gathered along the request path and recorded once at its end.

The request path tells its `Exchange` what it learns (who called, which model,
the reservation, the upstream, the usage billed); `finish` then records the
metrics and writes the access line, exactly once per request: when a refusal
or an answer has been sent, or, for a stream, when it ended and was settled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from decimal import Decimal
from time import perf_counter
from typing import TYPE_CHECKING, TypeVar

from litestar.exceptions import HTTPException
from prometheus_client import Gauge

from tollway.errors import APIError, UpstreamStatus, UpstreamTimeout, UpstreamUnavailable
from tollway.money import format_usd
from tollway.observe.access_log import ACCESS_LOGGER, AccessEntry, direct_sink
from tollway.observe.metrics import Metrics

if TYPE_CHECKING:
    from tollway.auth import Principal
    from tollway.config import UpstreamConfig
    from tollway.pipeline.context import EndState, RequestContext
    from tollway.pipeline.relay import OnEnd
    from tollway.usage import Usage

__all__ = ["Exchange", "Observer", "failure_kind"]

T = TypeVar("T")

# Stream end states that are the upstream's fault, as tollway_upstream_errors_total kinds.
_STREAM_FAULTS = {"upstream_broke_off": "stream_broken", "upstream_timeout": "stream_timeout"}
_INFO = logging.INFO
# Requested model names are the client's text: bounded in the log, never a metric label.
_MODEL_CHARS = 200
# nginx's "client closed request": a request cancelled before it was answered.
_CANCELLED = 499


def failure_kind(exc: Exception) -> str:
    """The tollway_upstream_errors_total kind of a failure to open an upstream request."""
    if isinstance(exc, UpstreamTimeout):
        return "timeout"
    if isinstance(exc, UpstreamStatus):
        return "status"
    return "connect"


class Observer:
    """A server's metrics and access log; `begin` starts the record of one request."""

    def __init__(self, metrics: Metrics, log: logging.Logger | None = None) -> None:
        self.metrics = metrics
        self.log = log or logging.getLogger(ACCESS_LOGGER)

    def begin(self, request_id: str, surface: str) -> Exchange:
        return Exchange(self, request_id, surface)


class Exchange:
    __slots__ = (
        "_done",
        "_holding",
        "_observer",
        "_stream_gauge",
        "_upstream_refused",
        "cost_nano",
        "error",
        "model",
        "principal",
        "request_id",
        "served",
        "started",
        "stream",
        "surface",
        "upstream",
        "usage",
    )

    def __init__(self, observer: Observer, request_id: str, surface: str) -> None:
        self._observer = observer
        self.request_id = request_id
        self.surface = surface
        self.started = perf_counter()
        self.principal: Principal | None = None
        self.model: str | None = None  # as the client asked for it
        self.served: str = ""  # the served model's name, once routed: the metrics' model label
        self.stream = False
        self.upstream: str | None = None  # the upstream that answered
        self.usage: Usage | None = None  # as billed
        self.cost_nano: int | None = None
        self.error: str | None = None  # a refusal's error code
        self._upstream_refused = False  # the refusal was an upstream's failure
        self._holding = False
        self._stream_gauge: Gauge | None = None
        self._done = False

    async def noting_refusals(self, handling: Awaitable[T]) -> T:
        """Await the handler; a refusal it raises is noted (its code goes to the access line)."""
        try:
            return await handling
        except APIError as exc:
            self.error = exc.code
            self._upstream_refused = isinstance(exc, UpstreamUnavailable | UpstreamTimeout)
            raise
        except HTTPException as exc:
            if exc.status_code == 413:  # answered as RequestTooLarge by `in_surface_shape`
                self.error = "request_too_large"
            raise

    def reserved(self) -> None:
        """A reservation is open; it closes (settled or released) before `finish`."""
        self._holding = True
        self._observer.metrics.hold_opened()

    def upstream_failed(self, upstream: UpstreamConfig, exc: Exception) -> None:
        """`forward`'s report of one failed attempt (a fallback may still answer)."""
        self._observer.metrics.upstream_error(upstream.name, failure_kind(exc))

    def settled(self, usage: Usage, cost_nano: int) -> None:
        self.usage = usage
        self.cost_nano = cost_nano

    def stream_started(self) -> None:
        """The answer is a stream now being relayed: `ending` finishes this exchange when it ends."""
        gauge = self._stream_gauge = self._observer.metrics.stream_gauge(self.surface)
        gauge.inc()

    def ending(self, on_end: OnEnd) -> OnEnd:
        """`on_end` (which settles a stream), then the end of this exchange."""

        async def ended(ctx: RequestContext, state: EndState, usage: Usage) -> Decimal | None:
            try:
                return await on_end(ctx, state, usage)
            finally:
                self.finish(200, state, ctx.first_byte_at)

        return ended

    def crashed(self, exc: BaseException) -> None:
        """The handler raised instead of answering (a bug, or the request was cancelled)."""
        if isinstance(exc, asyncio.CancelledError):
            self.finish(_CANCELLED, "cancelled")
        elif isinstance(exc, HTTPException):  # answered by the app's exception handlers
            self.finish(exc.status_code)
        else:
            self.error = self.error or "internal_error"
            self.finish(500)

    def finish(self, status: int, end_state: str | None = None, first_byte_at: float = 0.0) -> None:
        """Record the metrics and write the access line (once; later calls do nothing)."""
        if self._done:
            return
        self._done = True
        elapsed = perf_counter() - self.started
        metrics = self._observer.metrics
        surface = self.surface
        metrics.request(surface, self.served, status, elapsed)
        if first_byte_at:
            metrics.first_byte(surface, first_byte_at - self.started)
        usage = self.usage
        if usage is not None:
            metrics.usage(self.served, usage, self.cost_nano or 0)
        if self._holding:
            metrics.hold_closed()
        if self._stream_gauge is not None:
            self._stream_gauge.dec()
        if end_state is None:
            end_state = "completed" if status < 400 else "error"
        upstream = self.upstream
        if upstream is not None:
            kind = _STREAM_FAULTS.get(end_state)
            # After `forward` succeeded, an upstream error is its answer's (a body that is not JSON).
            if kind is None and self._upstream_refused:
                kind = "bad_answer"
            if kind is not None:
                metrics.upstream_error(upstream, kind)
        log = self._observer.log
        if log.isEnabledFor(_INFO):
            entry = self._entry(status, end_state, elapsed, first_byte_at)
            sink = direct_sink(log)
            if sink is not None:
                sink.put_access(log.name, entry)
            else:
                log.handle(log.makeRecord(log.name, _INFO, "", 0, entry, (), None))

    def _entry(self, status: int, end_state: str, elapsed: float, first_byte_at: float) -> AccessEntry:
        principal = self.principal
        usage = self.usage
        model = self.served or (self.model[:_MODEL_CHARS] if self.model is not None else None)
        return AccessEntry(
            request_id=self.request_id,
            workspace_id=principal.workspace_id if principal is not None else None,
            key_id=principal.key_id if principal is not None else None,
            surface=self.surface,
            model=model,
            upstream=self.upstream,
            stream=self.stream,
            status=status,
            end_state=end_state,
            error=self.error,
            prompt_tokens=usage.prompt if usage is not None else None,
            completion_tokens=usage.completion if usage is not None else None,
            total_tokens=usage.total if usage is not None else None,
            cost_usd=format_usd(self.cost_nano) if self.cost_nano is not None else None,
            duration_ms=round(elapsed * 1000, 3),
            ttfb_ms=round((first_byte_at - self.started) * 1000, 3) if first_byte_at else None,
        )
