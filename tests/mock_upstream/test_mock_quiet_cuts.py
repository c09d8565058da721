"""A `cut_after` abort leaves no traceback in the log, served alone or mounted in Litestar; other errors do.

Served by a real uvicorn in this process, because the traceback is uvicorn's: it logs
"Exception in ASGI application" on `uvicorn.error` for whatever escapes the app. Alone, that is the
ConnectionCut itself; mounted in Litestar it is `LitestarException("Exception caught after response
started")` raised from the cut (Litestar's exception middleware cannot answer once the response has
started, so it wraps and re-raises; with logging_config=None it logs nothing itself).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

import tollway
from tollway.mock_upstream import create_app, quiet_scripted_cuts
from tollway.mock_upstream.server import UVICORN_ERROR_LOGGER, HideScriptedCuts, is_scripted_cut
from tollway.mock_upstream.stream import ConnectionCut

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def errors(self) -> list[logging.LogRecord]:
        return [r for r in self.records if r.levelno >= logging.ERROR]


@pytest.fixture
def uvicorn_log() -> Iterator[Records]:
    """uvicorn's error log, seen directly (not through the root logger, which uvicorn may cut off),
    with the logger's filters as they were before the test put back afterwards."""
    logger = logging.getLogger(UVICORN_ERROR_LOGGER)
    filters, level = list(logger.filters), logger.level
    for existing in filters:
        logger.removeFilter(existing)
    logger.setLevel(logging.INFO)
    handler = Records()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        for current in list(logger.filters):
            logger.removeFilter(current)
        for existing in filters:
            logger.addFilter(existing)
        logger.setLevel(level)


@asynccontextmanager
async def served(app: ASGIApp, http: str) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, http=http, ws="none", lifespan="off", log_config=None, access_log=False, proxy_headers=False
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def litestar_host(mock: ASGIApp, extra: list[Any] | None = None) -> Any:
    """A Litestar app mounting the mock the way tollway's app.py `create_demo_mount` does."""
    from litestar import Litestar, asgi
    from litestar.types import Receive, Scope, Send

    @asgi("/_demo", is_mount=True, copy_scope=True)
    async def demo_upstream(scope: Scope, receive: Receive, send: Send) -> None:
        await mock(scope, receive, send)

    return Litestar([demo_upstream, *(extra or [])], logging_config=None, debug=False, openapi_config=None)


async def cut_stream(url: str) -> list[str]:
    """Stream `cut_after=2` and return the data lines received before the connection dropped."""
    body = {"model": "demo:cut_after=2", "messages": [], "stream": True}
    lines: list[str] = []

    async def read(client: httpx.AsyncClient) -> None:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    lines.append(line)

    async with httpx.AsyncClient(base_url=url) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await read(client)
    return lines


SETUPS = ["alone", "litestar"]
HTTP = ["h11", "httptools"]


def setup_app(setup: str) -> tuple[ASGIApp, str]:
    mock = create_app(inspection=False)
    if setup == "alone":
        return mock, ""
    return litestar_host(mock), "/_demo"


@pytest.mark.parametrize("http", HTTP)
@pytest.mark.parametrize("setup", SETUPS)
async def test_without_the_filter_a_cut_is_an_error_traceback(
    uvicorn_log: Records, setup: str, http: str
) -> None:
    app, prefix = setup_app(setup)
    async with served(app, http) as url:
        assert len(await cut_stream(url + prefix)) == 3
    (record,) = uvicorn_log.errors
    assert record.getMessage().startswith("Exception in ASGI application")
    assert record.exc_info is not None
    exc = record.exc_info[1]
    if setup == "alone":
        assert isinstance(exc, ConnectionCut)
    else:
        from litestar.exceptions import LitestarException

        assert isinstance(exc, LitestarException)
        assert isinstance(exc.__cause__, ConnectionCut)


@pytest.mark.parametrize("http", HTTP)
@pytest.mark.parametrize("setup", SETUPS)
async def test_quiet_scripted_cuts_silences_the_cut(uvicorn_log: Records, setup: str, http: str) -> None:
    quiet_scripted_cuts()
    app, prefix = setup_app(setup)
    async with served(app, http) as url:
        assert len(await cut_stream(url + prefix)) == 3
        # The server goes on serving.
        async with httpx.AsyncClient(base_url=url + prefix) as client:
            assert (await client.post("/v1/chat/completions", json={"model": "m", "messages": []})).is_success
    assert uvicorn_log.errors == []


async def test_other_errors_keep_their_traceback(uvicorn_log: Records) -> None:
    from litestar import get

    @get("/boom")
    async def boom() -> None:
        raise RuntimeError("a real bug")

    async def breaks_mid_stream(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        try:
            raise ConnectionCut("scripted")
        except ConnectionCut:
            raise RuntimeError("a bug while handling a cut")  # noqa: B904  # implicit context only, on purpose

    from litestar import asgi

    @asgi("/breaks", is_mount=True, copy_scope=True)
    async def breaks(scope: Any, receive: Any, send: Any) -> None:
        await breaks_mid_stream(scope, receive, send)

    quiet_scripted_cuts()
    quiet_scripted_cuts()  # a second call adds nothing
    assert sum(isinstance(f, HideScriptedCuts) for f in logging.getLogger(UVICORN_ERROR_LOGGER).filters) == 1
    host = litestar_host(create_app(inspection=False), [boom, breaks])
    async with served(host, "httptools") as url:
        async with httpx.AsyncClient(base_url=url) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get("/breaks/x")
            # Litestar answers this one itself, and logs nothing with logging_config=None.
            assert (await client.get("/boom")).status_code == 500
        assert len(await cut_stream(url + "/_demo")) == 3
    (record,) = uvicorn_log.errors
    assert record.exc_info is not None
    cause = record.exc_info[1].__cause__ if record.exc_info[1] else None
    assert isinstance(cause, RuntimeError)
    assert str(cause) == "a bug while handling a cut"


def _cut() -> ConnectionCut:
    return ConnectionCut("mock cut_after=1")


def _raised_from(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


def _with_context(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__context__ = inner
    return outer


@pytest.mark.parametrize(
    ("exc", "scripted"),
    [
        (_cut(), True),
        (_raised_from(RuntimeError("wrapper"), _cut()), True),
        (_raised_from(RuntimeError("outer"), _raised_from(RuntimeError("wrapper"), _cut())), True),
        (BaseExceptionGroup("g", [_cut(), _raised_from(RuntimeError("w"), _cut())]), True),
        (ExceptionGroup("g", [_cut(), ValueError("bug")]), False),
        (_with_context(RuntimeError("bug while handling"), _cut()), False),
        (RuntimeError("bug"), False),
        (asyncio.CancelledError(), False),
        (None, False),
    ],
)
def test_is_scripted_cut(exc: BaseException | None, scripted: bool) -> None:
    assert is_scripted_cut(exc) is scripted
    record = logging.LogRecord(
        "uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application", None, None
    )
    if exc is not None:
        record.exc_info = (type(exc), exc, None)
    assert HideScriptedCuts().filter(record) is not scripted


def test_a_cause_cycle_ends() -> None:
    a, b = RuntimeError("a"), RuntimeError("b")
    a.__cause__, b.__cause__ = b, a
    assert is_scripted_cut(a) is False


def test_quiet_scripted_cuts_takes_other_loggers() -> None:
    logger = logging.getLogger("tollway.test.quiet")
    try:
        quiet_scripted_cuts("tollway.test.quiet", logging.getLogger("tollway.test.quiet"))
        assert sum(isinstance(f, HideScriptedCuts) for f in logger.filters) == 1
    finally:
        for existing in list(logger.filters):
            logger.removeFilter(existing)


def test_the_filter_survives_uvicorns_logging_setup() -> None:
    """`serve` builds the app (and so can call quiet_scripted_cuts) before uvicorn configures logging.

    In a child process: uvicorn's default logging setup (a dictConfig) would rewire this one's loggers.
    """
    code = (
        "import logging, uvicorn\n"
        "from tollway.mock_upstream import create_app, quiet_scripted_cuts\n"
        "from tollway.mock_upstream.server import HideScriptedCuts\n"
        "quiet_scripted_cuts()\n"
        "uvicorn.Config(create_app(), log_level='warning')\n"
        "filters = logging.getLogger('uvicorn.error').filters\n"
        "print(sum(isinstance(f, HideScriptedCuts) for f in filters))\n"
    )
    src = str(Path(tollway.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "1"


def test_the_filter_can_be_named_in_a_dict_config() -> None:
    import logging.config

    # How dictConfig builds a filter from {"()": ...}, without reconfiguring this process's logging.
    configurator = logging.config.DictConfigurator({"version": 1})
    built = configurator.configure_filter({"()": "tollway.mock_upstream.HideScriptedCuts"})
    assert isinstance(built, HideScriptedCuts)
