"""Graceful shutdown (SPEC §7): drain what is in flight, then end open streams cleanly.

On SIGTERM (or SIGINT) uvicorn stops accepting and waits for the requests in
flight.  `Shutdown` learns of the signal too (its handler runs before
uvicorn's), and once `grace` seconds have passed it cuts every stream still
open: each relay stops reading its upstream, bills what it delivered with end
state `server_shutdown`, and ends its stream with the usage chunk and an error
event instead of a dropped connection.  uvicorn itself gives up on whatever is
left a few seconds later (`UVICORN_MARGIN`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["UVICORN_MARGIN", "Cut", "Shutdown"]

# After the grace period, how long cut streams get to settle and end before uvicorn cancels them.
UVICORN_MARGIN = 5.0
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Cut(Exception):
    """Raised into a relay reading its upstream when the server ends the stream."""


class Shutdown:
    """One process's shutdown state, and the streams it may have to cut."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.begun = False
        self.cutting = False
        self._streams: set[Callable[[], None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Chain this process's signal handlers in front of uvicorn's (call from the running loop)."""
        self._loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread (an embedded server): nothing to chain
                return

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, previous)
        self._previous.clear()
        if self._timer is not None:
            self._timer.cancel()

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.begin)
        previous = self._previous.get(sig)
        if callable(previous):
            previous(sig, frame)

    def begin(self) -> None:
        """The server stops accepting: in `grace` seconds, cut what is still streaming."""
        if self.begun:
            return
        self.begun = True
        loop = self._loop or asyncio.get_running_loop()
        self._timer = loop.call_later(self.grace, self.cut_all)

    def cut_all(self) -> None:
        self.cutting = True
        for cut in list(self._streams):
            cut()

    def track(self, cut: Callable[[], None]) -> Callable[[], None]:
        """Register a stream's cut callback; returns the function that unregisters it."""
        if self.cutting:
            cut()
        self._streams.add(cut)
        return lambda: self._streams.discard(cut)
