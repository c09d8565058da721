"""Everything a running tollway holds, built once at start-up and injected (no module globals)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.accounts import AccountStore
from tollway.auth import Authenticator
from tollway.billing.biller import Biller
from tollway.billing.recovery import Recovery
from tollway.config import Settings
from tollway.db import create_engine, prepare, unavailable
from tollway.events import Outbox
from tollway.events.delivery import Deliverer, subscriptions
from tollway.events.listing import EventLog
from tollway.ledger import Ledger
from tollway.observe import Metrics, Observer
from tollway.pipeline.routing import Router
from tollway.reports.service import Reports
from tollway.serving.shutdown import Shutdown
from tollway.tokens import TokenCounter
from tollway.upstream.client import UpstreamClient

__all__ = ["Runtime", "open_runtime"]


class Runtime:
    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        counter: TokenCounter,
        upstream: UpstreamClient,
        recovery: Recovery,
        ledger: Ledger,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        # What the server records about its requests: Prometheus metrics and the access log.
        self.metrics = metrics or Metrics()
        self.observer = Observer(self.metrics)
        self.engine = engine
        # The webhook outbox: events are written through it in their cause's transaction.
        self.outbox = Outbox(subscriptions(settings.config.webhooks))
        self.accounts = AccountStore(engine, self.outbox)
        self.auth = Authenticator(self.accounts, settings.config.server.auth_cache_seconds)
        self.router = Router(settings)
        self.counter = counter
        self.upstream = upstream
        self.ledger = ledger
        self.recovery = recovery
        self.biller = Biller(ledger, settings.prices, counter, recovery.instance_id, self.outbox)
        self.reports = Reports(engine, settings.config.reports.max_range_days)
        self.events = EventLog(engine)
        self.shutdown = Shutdown(settings.config.server.shutdown_grace_seconds)


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    demo_base_url: str | None = None,
    demo_key: str | None = None,
    upstream_transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Runtime]:
    database = settings.config.database
    engine = create_engine(database.url, pool_size=database.pool_size)
    upstream = UpstreamClient(
        settings,
        demo_base_url=demo_base_url,
        demo_key=demo_key,
        transport=upstream_transport,
        backend=settings.config.server.upstream_client,
    )
    try:
        await prepare(engine, migrate=database.migrates_on_start)
        counter = await TokenCounter.load(("o200k_base", "cl100k_base"))
        metrics = Metrics()
        ledger = Ledger(engine, on_commit=metrics.ledger_commit)
        timing = settings.config.ledger
        recovery = Recovery(
            engine,
            ledger,
            heartbeat=timing.heartbeat_seconds,
            dead_after=timing.dead_after_seconds,
            interval=timing.reap_interval_seconds,
        )
        try:
            await recovery.register()
        except (SQLAlchemyError, OSError) as exc:
            raise unavailable(database.url, exc) from exc
        task = asyncio.create_task(recovery.run(), name="tollway-recovery")
        runtime = Runtime(settings, engine, counter, upstream, recovery, ledger, metrics)
        # Webhook deliveries, in the background of every server process (see events/delivery.py).
        deliverer = Deliverer(engine, settings.config.webhooks, settings.webhook_secrets)
        deliverer.start(runtime.outbox)
        # What start-up loaded (modules, token encodings, the app) lives as long as the process:
        # keep it out of the collector's full passes, which would walk all of it each time
        # (~4 ms for the encodings alone) in the middle of some request.
        gc.collect()
        gc.freeze()
        runtime.shutdown.install()
        try:
            yield runtime
        finally:
            runtime.shutdown.uninstall()
            gc.unfreeze()
            await deliverer.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await recovery.stopped()
            ledger.close()
    finally:
        await upstream.aclose()
        await engine.dispose()
