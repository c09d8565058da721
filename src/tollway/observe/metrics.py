"""Prometheus metrics of one tollway process, summed over the workers of a server at scrape time.

Two modes, chosen by prometheus-client when it is first imported:

- single process (no `PROMETHEUS_MULTIPROC_DIR`): every `Metrics` owns its own
  registry, so several apps in one process (tests) never see each other's counts;
- multiprocess (`tollway serve --workers N` sets the directory for its workers,
  see `tollway.observe.workers`): each worker writes its values into files of
  that directory and a scrape on any worker reads and sums all of them.  Gauges
  sum live workers only (`livesum`); a dead worker's counters keep counting.

The hot path never calls `.labels()`: labelled children are cached in dicts on
first use, and it calls their values directly (`_counting`, `_observing`).  Money
is counted in whole nano-dollars (the ledger is the source of truth; a counter is
a float, exact up to 2**53 nano-dollars, about $9 million).
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector

from tollway.errors import StartupError

if TYPE_CHECKING:
    from tollway.usage import Usage

__all__ = ["CONTENT_TYPE", "MULTIPROC_ENV", "TOKEN_CLASSES", "Metrics", "multiprocess_mode"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# The `class` label of tollway_tokens_total, in the order `Metrics.usage` takes them.
TOKEN_CLASSES = ("prompt", "cached", "cache_write", "completion", "reasoning")

# Answers take from milliseconds (a refusal) to minutes (a long stream).
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_FIRST_BYTE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


def _counting(child: Counter | Gauge) -> Callable[[float], None]:
    """What adds to a labelled child (or an unlabelled metric): its value's own `inc`.

    `Counter.inc` and `Gauge.inc` check that the metric has its labels and the amount is not
    negative, then call it; here both hold by construction (children are made by `.labels()`,
    counts and costs are never negative), and the three Python calls the checks cost add up on
    the request path.  Falls back to the public method if a prometheus-client lacks the value."""
    value: Any = getattr(child, "_value", None)
    return value.inc if value is not None else child.inc


def _observing(child: Histogram) -> Callable[[float], None]:
    """What `Histogram.observe` does for a labelled child (no exemplars): the sum, then the first
    bucket whose bound holds the value (found by bisection; the last bound is +Inf)."""
    bounds: Any = getattr(child, "_upper_bounds", None)
    buckets: Any = getattr(child, "_buckets", None)
    total: Any = getattr(child, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        return child.observe
    add = total.inc
    counts = tuple(bucket.inc for bucket in buckets)

    def observe(seconds: float) -> None:  # every histogram here times something; money is counted
        add(seconds)
        counts[bisect_left(bounds, seconds)](1)

    return observe


def multiprocess_mode() -> bool:
    """Whether prometheus-client keeps values in files (it decided when it was imported)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def _files_registry() -> CollectorRegistry:
    """A registry that reads (and sums) the files of every process in the multiprocess directory."""
    path = os.environ.get(MULTIPROC_ENV, "")
    if not os.path.isdir(path):
        raise StartupError(f"{MULTIPROC_ENV}={path!r} is not a directory (multiprocess metrics need one)")
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return registry


class Metrics:
    """The metric families; methods record one fact each, cheaply."""

    def __init__(self) -> None:
        self.multiprocess = multiprocess_mode()
        # In multiprocess mode the families live in files, not in a registry; a scrape reads the files.
        own = None if self.multiprocess else CollectorRegistry()
        self.registry = own if own is not None else _files_registry()
        self._requests = Counter(
            "tollway_requests",
            "Proxied requests, by surface, served model ('' when none was resolved) and HTTP status.",
            ("surface", "model", "status"),
            registry=own,
        )
        self._duration = Histogram(
            "tollway_request_duration_seconds",
            "Time from receiving a proxied request to its end (a stream's: its last byte).",
            ("surface",),
            buckets=_REQUEST_BUCKETS,
            registry=own,
        )
        self._first_byte = Histogram(
            "tollway_time_to_first_byte_seconds",
            "Streams: time from receiving the request to relaying the upstream's first bytes.",
            ("surface",),
            buckets=_FIRST_BYTE_BUCKETS,
            registry=own,
        )
        self._tokens = Counter(
            "tollway_tokens",
            "Tokens billed, by model and class (cached and cache_write are parts of prompt, "
            "reasoning of completion).",
            ("model", "class"),
            registry=own,
        )
        self._cost = Counter(
            "tollway_cost_nanodollars",
            "Cost billed in nano-USD (1e-9 USD), by model; the ledger is the source of truth.",
            ("model",),
            registry=own,
        )
        self._holds = Gauge(
            "tollway_reservations_held",
            "Credit reservations open in this server (requests between reserve and settle or release).",
            registry=own,
            multiprocess_mode="livesum",
        )
        self._streams = Gauge(
            "tollway_open_streams",
            "Streams being relayed now, by surface.",
            ("surface",),
            registry=own,
            multiprocess_mode="livesum",
        )
        self._upstream_errors = Counter(
            "tollway_upstream_errors",
            "Failures of an upstream, by upstream and kind (connect, timeout, status, bad_answer, "
            "stream_broken, stream_timeout); every failed attempt of a fallback counts.",
            ("upstream", "kind"),
            registry=own,
        )
        self._commit = Histogram(
            "tollway_ledger_commit_seconds",
            "Duration of ledger write transactions (Ledger.transact), by operation.",
            ("operation",),
            buckets=_COMMIT_BUCKETS,
            registry=own,
        )
        self._request_children: dict[tuple[str, str, int], Callable[[float], None]] = {}
        self._duration_children: dict[str, Callable[[float], None]] = {}
        self._first_byte_children: dict[str, Callable[[float], None]] = {}
        self._token_children: dict[str, tuple[Callable[[float], None], ...]] = {}
        self._cost_children: dict[str, Callable[[float], None]] = {}
        self._stream_children: dict[str, Gauge] = {}
        self._error_children: dict[tuple[str, str], Callable[[float], None]] = {}
        self._commit_children: dict[str, Callable[[float], None]] = {}
        held = _counting(self._holds)
        self.hold_opened: Callable[[], None] = partial(held, 1)
        self.hold_closed: Callable[[], None] = partial(held, -1)

    def render(self) -> bytes:
        """The text exposition (in multiprocess mode it reads files: call it off the event loop)."""
        return generate_latest(self.registry)

    def request(self, surface: str, model: str, status: int, seconds: float) -> None:
        key = (surface, model, status)
        count = self._request_children.get(key)
        if count is None:
            count = self._request_children[key] = _counting(
                self._requests.labels(surface, model, str(status))
            )
        count(1)
        observe = self._duration_children.get(surface)
        if observe is None:
            observe = self._duration_children[surface] = _observing(self._duration.labels(surface))
        observe(seconds)

    def first_byte(self, surface: str, seconds: float) -> None:
        observe = self._first_byte_children.get(surface)
        if observe is None:
            observe = self._first_byte_children[surface] = _observing(self._first_byte.labels(surface))
        observe(seconds)

    def usage(self, model: str, usage: Usage, cost_nano: int) -> None:
        """The tokens and cost of one settled request, exactly as billed."""
        tokens = self._token_children.get(model)
        if tokens is None:
            tokens = self._token_children[model] = tuple(
                _counting(self._tokens.labels(model, kind)) for kind in TOKEN_CLASSES
            )
            self._cost_children[model] = _counting(self._cost.labels(model))
        prompt, cached, cache_write, completion, reasoning = tokens
        # Zeros are skipped: in multiprocess mode every increment is a write to a file.
        if usage.prompt:
            prompt(usage.prompt)
        if usage.cached:
            cached(usage.cached)
        if usage.cache_write:
            cache_write(usage.cache_write)
        if usage.completion:
            completion(usage.completion)
        if usage.reasoning:
            reasoning(usage.reasoning)
        if cost_nano:
            self._cost_children[model](cost_nano)

    def stream_gauge(self, surface: str) -> Gauge:
        gauge = self._stream_children.get(surface)
        if gauge is None:
            gauge = self._stream_children[surface] = self._streams.labels(surface)
        return gauge

    def upstream_error(self, upstream: str, kind: str) -> None:
        key = (upstream, kind)
        count = self._error_children.get(key)
        if count is None:
            count = self._error_children[key] = _counting(self._upstream_errors.labels(upstream, kind))
        count(1)

    def ledger_commit(self, operation: str, seconds: float) -> None:
        observe = self._commit_children.get(operation)
        if observe is None:
            observe = self._commit_children[operation] = _observing(self._commit.labels(operation))
        observe(seconds)
