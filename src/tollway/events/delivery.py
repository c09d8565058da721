"""Delivering the outbox: each server process leases due deliveries and POSTs them, signed.

The deliverer is a background task beside the request path, never on it: an
emit only wakes it (`Outbox.notify`, safe from any thread), and it talks to
receivers through its own HTTP client, at most `PER_WEBHOOK` attempts in
flight per webhook, each bounded by the webhook's `timeout_seconds`.  A
receiver that is down or slow costs its own deliveries time, nobody else's.

Every process runs one; the leases (`leases.py`) make sure that only one of
them makes any given attempt.  Each attempt's outcome is written back before
the next is possible: 2xx → delivered; anything else (another status, a
refused connection, a timeout) → retried after an exponential backoff with
jitter, until `max_attempts`, then failed.  Delivery is at least once: a
process that dies between the receiver's 2xx and recording it leaves a lease
that expires, and the event is sent again with the same `id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlsplit

import httpx
import msgspec
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.clock import iso
from tollway.config import WebhookConfig
from tollway.events.leases import DeliveryQueue, Leased
from tollway.events.outbox import Outbox, Subscription
from tollway.events.signing import SIGNATURE_HEADER, sign

__all__ = ["PER_WEBHOOK", "POLL_SECONDS", "Deliverer", "event_body", "retry_delay", "subscriptions"]

log = logging.getLogger("tollway.webhooks")

POLL_SECONDS = 0.5
PER_WEBHOOK = 4  # attempts in flight per webhook, per process
# Outbox.notify runs just before the cause's transaction commits: give the commit a moment.
_SETTLE_SECONDS = 0.02
_RECORD_TRIES = 3
USER_AGENT = "tollway-webhooks/1"


class _Body(Struct):
    id: str
    type: str
    created_at: str
    data: msgspec.Raw


_encode = msgspec.json.Encoder().encode


def event_body(leased: Leased) -> bytes:
    """The POSTed JSON: `{"id", "type", "created_at", "data"}`, `data` exactly as stored."""
    return _encode(_Body(leased.event_id, leased.type, iso(leased.created_at), msgspec.Raw(leased.data)))


def retry_delay(failures: int, base: float, cap: float, rand: float) -> float:
    """Seconds to wait after the `failures`-th failed attempt: base * 2**(failures - 1), at most `cap`,
    less up to a quarter (`rand` in [0, 1)) so receivers coming back are not hit all at once."""
    return min(cap, base * 2.0 ** min(failures - 1, 64)) * (1.0 - 0.25 * rand)


def subscriptions(webhooks: Sequence[WebhookConfig]) -> list[Subscription]:
    return [Subscription(webhook=hook.url, events=hook.event_types) for hook in webhooks]


def _origin(url: str) -> str:
    """What logs may name of a webhook: its path or query can carry a token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class _Target:
    def __init__(self, config: WebhookConfig, secret: str) -> None:
        self.url = config.url
        self.origin = _origin(config.url)
        self.secret = secret
        self.config = config
        # Outlives an attempt (bounded by the timeout) and the recording of its outcome.
        self.lease_us = int((2 * config.timeout_seconds + 5) * 1_000_000)
        self.in_flight: dict[asyncio.Task[None], Leased] = {}


class Deliverer:
    def __init__(
        self,
        engine: AsyncEngine,
        webhooks: Sequence[WebhookConfig],
        secrets: Mapping[str, str],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        poll_seconds: float = POLL_SECONDS,
        per_webhook: int = PER_WEBHOOK,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._queue = DeliveryQueue(engine)
        self._targets = [_Target(hook, secrets[hook.url]) for hook in webhooks]
        self._poll_seconds = poll_seconds
        self._per_webhook = per_webhook
        self._rand = rand
        self._client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max(1, per_webhook * len(self._targets))),
            headers={"user-agent": USER_AGENT},
        )
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._outbox: Outbox | None = None
        self._failing = False
        # Leases being taken: if `close` cancels the poll meanwhile, the database may still have
        # granted them, and `close` gives them back.
        self._leasing: set[asyncio.Future[list[Leased]]] = set()

    def start(self, outbox: Outbox) -> None:
        """Run in the background (nothing to do without webhooks); `outbox`'s emits wake it."""
        if not self._targets or self._task is not None:
            return
        loop = asyncio.get_running_loop()
        wake = self._wake

        def notify() -> None:  # any thread: the SQLite ledger thread emits too
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to wake
                loop.call_soon_threadsafe(wake.set)

        outbox.notify = notify
        self._outbox = outbox
        self._task = loop.create_task(self.run(), name="tollway-webhooks")

    async def close(self) -> None:
        """Stop; attempts cut short give their leases back, so another process retries at once."""
        if self._outbox is not None:
            self._outbox.notify = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        cut = [(task, leased) for target in self._targets for task, leased in target.in_flight.items()]
        for task, _ in cut:
            task.cancel()
        await asyncio.gather(*(task for task, _ in cut), return_exceptions=True)
        given_back = [leased for _, leased in cut]
        with contextlib.suppress(Exception):  # else the leases expire by themselves
            async with asyncio.timeout(2):
                # Granted as the poll was cancelled: no attempt started; given back as well.
                for won in await asyncio.gather(*self._leasing, return_exceptions=True):
                    if isinstance(won, list):
                        given_back.extend(won)
                for leased in given_back:
                    await self._queue.release(leased)
        await self._client.aclose()

    async def run(self) -> None:
        """Poll until cancelled: every `poll_seconds`, and soon after each wake-up."""
        while True:
            self._wake.clear()
            try:
                await self.poll()
            except Exception as exc:  # the database is down or locked: next round
                if not self._failing:
                    log.warning("webhook deliveries: polling failed, retrying: %s", _brief(exc))
                self._failing = True
            else:
                if self._failing:
                    log.warning("webhook deliveries: polling works again")
                self._failing = False
            try:
                async with asyncio.timeout(self._poll_seconds):
                    await self._wake.wait()
            except TimeoutError:
                continue
            await asyncio.sleep(_SETTLE_SECONDS)

    async def poll(self) -> int:
        """Lease what is due, as far as each webhook has room, and start its attempts; how many."""
        now = await self._queue.now()
        started = 0
        for target in self._targets:
            room = self._per_webhook - len(target.in_flight)
            if room <= 0:
                continue
            ids = await self._queue.due(target.url, now, room)
            if not ids:
                continue
            # Shielded: once the database has granted a lease, its attempt starts here, or `close`
            # (which cancels this poll, maybe while the grant commits) gives it back.
            leasing = asyncio.ensure_future(self._queue.lease(ids, now, now + target.lease_us))
            self._leasing.add(leasing)
            try:
                won = await asyncio.shield(leasing)
            except Exception:
                self._leasing.discard(leasing)
                raise
            self._leasing.discard(leasing)
            for leased in won:
                task = asyncio.create_task(self._attempt(target, leased), name=f"tollway-webhook-{leased.id}")
                target.in_flight[task] = leased
                task.add_done_callback(functools.partial(self._done, target))
                started += 1
        return started

    def _done(self, target: _Target, task: asyncio.Task[None]) -> None:
        target.in_flight.pop(task, None)
        self._wake.set()  # room again: more may be due

    async def _attempt(self, target: _Target, leased: Leased) -> None:
        attempt = leased.attempts + 1
        status, error = await self._send(target, leased, attempt)
        hook = target.config
        for tries_left in range(_RECORD_TRIES - 1, -1, -1):
            try:
                now = await self._queue.now()
                if error is None:
                    assert status is not None
                    kept = await self._queue.delivered(leased, now, status)
                elif attempt >= hook.max_attempts:
                    kept = await self._queue.failed_attempt(leased, status, error, None)
                    log.error(
                        "webhook %s: event %s (%s) failed %d times, giving up: %s",
                        target.origin,
                        leased.event_id,
                        leased.type,
                        attempt,
                        error,
                    )
                else:
                    delay = retry_delay(
                        attempt, hook.retry_base_seconds, hook.retry_max_seconds, self._rand()
                    )
                    kept = await self._queue.failed_attempt(leased, status, error, now + int(delay * 1e6))
                    log.warning(
                        "webhook %s: event %s (%s) attempt %d failed: %s; retrying in %.1f s",
                        target.origin,
                        leased.event_id,
                        leased.type,
                        attempt,
                        error,
                        delay,
                    )
            except Exception as exc:
                if tries_left == 0:  # the lease expires, and the event is sent again
                    log.warning("webhook %s: cannot record an attempt: %s", target.origin, _brief(exc))
                    return
                await asyncio.sleep(0.5)
                continue
            if not kept:
                log.warning(
                    "webhook %s: lease on event %s lost; its outcome was dropped",
                    target.origin,
                    leased.event_id,
                )
            return

    async def _send(self, target: _Target, leased: Leased, attempt: int) -> tuple[int | None, str | None]:
        """POST the event once: (status, None) on 2xx, else (status or None, what went wrong)."""
        body = event_body(leased)
        headers = {
            "content-type": "application/json",
            SIGNATURE_HEADER: sign(target.secret, int(time.time()), body),
            "tollway-event-id": leased.event_id,
            "tollway-event-type": leased.type,
            "tollway-delivery-attempt": str(attempt),
        }
        timeout = target.config.timeout_seconds
        request = self._client.build_request(
            "POST", target.url, content=body, headers=headers, timeout=timeout
        )
        try:
            async with asyncio.timeout(timeout):  # the whole attempt, not each phase
                response = await self._client.send(request, stream=True)
                await response.aclose()  # the body is not read: a 2xx is the whole answer
        except (TimeoutError, httpx.TimeoutException):
            return None, f"timed out after {timeout:g} s"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}".replace(target.url, target.origin)
        except Exception as exc:  # counted as a failed attempt, never a lease left to expire again
            return None, type(exc).__name__
        status = response.status_code
        return status, None if 200 <= status < 300 else f"HTTP {status}"


def _brief(exc: BaseException) -> str:
    """One line about a database error, without its statement and parameters."""
    cause = getattr(exc, "orig", None) or exc
    return f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"[:300]
