"""`tollway serve`: start-up checks, the listening socket, uvicorn with one worker or several.

Start-up fails with one message and a non-zero exit in every mode (SPEC §1):
the configuration, the price tables and the database are checked in this
process before any worker starts, the socket is bound here, and with
`--workers` the supervisor exits non-zero when a worker fails to start.
"serving …" is printed once every worker accepts requests.

With `--workers`, the workers share a metrics directory (`tollway.observe.workers`) made
before they start and removed at exit; a worker gone stops counting in the live gauges.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import sys
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess

from tollway.config import Settings
from tollway.db import create_engine, prepare
from tollway.errors import StartupError
from tollway.observe import LogFormat
from tollway.observe.workers import forget_dead, shared_metrics_dir
from tollway.serving import affinity
from tollway.serving.logs import log_config
from tollway.serving.shutdown import UVICORN_MARGIN
from tollway.serving.timeouts import protocol_class

__all__ = ["DEMO_KEY_ENV", "serve"]

# How the built-in demo upstream's key reaches worker processes (it never leaves the machine).
DEMO_KEY_ENV = "TOLLWAY_DEMO_KEY"
_READY_SECONDS = 120.0


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    access_log: bool,
    log_format: LogFormat | None = None,
) -> int:
    """Run the server; `log_format` overrides `[server] log_format`."""
    asyncio.run(_check_database(settings))
    sock = _bind(host, port)
    port = sock.getsockname()[1]
    public_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    public_url = (
        f"http://{public_host}:{port}" if ":" not in public_host else f"http://[{public_host}]:{port}"
    )
    os.environ.setdefault(DEMO_KEY_ENV, "demo-" + secrets.token_urlsafe(24))
    banner = (
        f"tollway: serving {len(settings.config.models)} model(s) on {public_url} "
        f"({workers} worker(s), config: {settings.source})"
    )
    server = settings.config.server
    options: dict[str, Any] = {
        "http": protocol_class(server.header_timeout),
        "loop": "uvloop" if _has("uvloop") else "asyncio",
        "access_log": access_log,
        "log_level": "info" if access_log else "warning",
        "log_config": log_config(log_format or settings.config.server.log_format),
        "timeout_graceful_shutdown": server.shutdown_grace_seconds + UVICORN_MARGIN,
        "proxy_headers": False,
        "server_header": False,
    }
    if workers == 1:
        from tollway.app import create_app

        config = uvicorn.Config(create_app(settings, public_url=public_url), **options)
        if affinity.wanted(settings):
            affinity.pin()
        single = _Server(config, banner)
        # uvicorn re-raises the signal that stopped it once it is done; after a graceful
        # shutdown on SIGTERM the process should exit 0, not die of the signal.
        signal.signal(signal.SIGTERM, lambda *_: None)
        try:
            single.run(sockets=[sock])
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) and exc.code else 1
        return 0 if single.started else 1
    if settings.source != "<built-in defaults>":
        os.environ["TOLLWAY_CONFIG"] = os.path.abspath(settings.source)
    os.environ["TOLLWAY_PUBLIC_URL"] = public_url
    with shared_metrics_dir() as metrics_dir:  # before the workers start: they inherit it
        config = uvicorn.Config("tollway.app:app_from_env", factory=True, workers=workers, **options)
        supervisor = _Supervisor(config, [sock], banner, metrics_dir=metrics_dir)
        supervisor.run()
    return 1 if supervisor.failed else 0


async def _check_database(settings: Settings) -> None:
    """Open the database and bring or check its schema, before anything listens (the rule: `db.prepare`)."""
    database = settings.config.database
    engine = create_engine(database.url, pool_size=1)
    try:
        await prepare(engine, migrate=database.migrates_on_start)
    finally:
        await engine.dispose()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


class _Server(uvicorn.Server):
    """One worker in this process: says "serving" once it accepts requests."""

    def __init__(self, config: uvicorn.Config, banner: str) -> None:
        super().__init__(config)
        self._banner = banner

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit:
            print(self._banner, file=sys.stderr, flush=True)


class _Supervisor(Multiprocess):
    """uvicorn's supervisor, but a worker that fails to start makes it exit non-zero."""

    def __init__(
        self,
        config: uvicorn.Config,
        sockets: list[socket.socket],
        banner: str,
        *,
        metrics_dir: str | None = None,
    ) -> None:
        super().__init__(config, sockets)
        self._banner = banner
        self.failed = False
        self._metrics_dir = metrics_dir

    def run(self) -> None:
        self.init_processes()
        ready = all(p.wait_until_ready(_READY_SECONDS, self.should_exit) for p in self.processes)
        if ready:
            print(self._banner, file=sys.stderr, flush=True)
        elif not self.should_exit.is_set():
            self.failed = True
            self.should_exit.set()
        while not self.should_exit.wait(0.5):
            self.handle_signals()
            self.keep_subprocess_alive()
            self.forget_dead_workers()
        self.terminate_all()
        self.join_all()
        if any(p.exitcode == STARTUP_FAILURE for p in self.processes):
            self.failed = True

    def forget_dead_workers(self) -> None:
        """Workers that died, were restarted or retired no longer count in the live gauges."""
        if self._metrics_dir is None:
            return
        forget_dead(self._metrics_dir, {p.pid for p in self.processes if p.pid and p.exitcode is None})
