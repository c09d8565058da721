"""Observing a running tollway: Prometheus metrics and the access log (SPEC §7)."""

from __future__ import annotations

from tollway.observe.access_log import ACCESS_LOGGER, AccessEntry, LogFormat
from tollway.observe.exchange import Exchange, Observer
from tollway.observe.metrics import Metrics

__all__ = ["ACCESS_LOGGER", "AccessEntry", "Exchange", "LogFormat", "Metrics", "Observer"]
