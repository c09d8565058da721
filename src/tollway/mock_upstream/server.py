"""Serving the mock upstream with uvicorn."""

from __future__ import annotations

import importlib.util
import logging
import os

from tollway.mock_upstream.app import create_app
from tollway.mock_upstream.stream import ConnectionCut

API_KEY_ENV = "MOCK_UPSTREAM_API_KEY"


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# Where uvicorn reports an exception that escaped the ASGI app ("Exception in ASGI application").
UVICORN_ERROR_LOGGER = "uvicorn.error"


def is_scripted_cut(exc: BaseException | None) -> bool:
    """Whether `exc` is a `cut_after` abort: a ConnectionCut, or raised from one, or a group of only those.

    A host framework may wrap the cut on its way out: Litestar, once the response has started,
    raises `LitestarException("Exception caught after response started") from <the cut>`. Only the
    explicit `raise ... from` chain is followed, not the implicit context, so a new error raised
    while a cut was being handled still counts as an error.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ConnectionCut):
            return True
        if isinstance(exc, BaseExceptionGroup):
            return all(is_scripted_cut(inner) for inner in exc.exceptions)
        seen.add(id(exc))
        exc = exc.__cause__
    return False


class HideScriptedCuts(logging.Filter):
    """Drops the server's traceback for a `cut_after` abort, which is the mock doing its job.

    `quiet_scripted_cuts()` installs it; a logging dictConfig can name it instead:
    `{"()": "tollway.mock_upstream.HideScriptedCuts"}` on the `uvicorn.error` logger.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and is_scripted_cut(record.exc_info[1]))


def quiet_scripted_cuts(*loggers: str | logging.Logger) -> None:
    """Keep `cut_after` aborts out of the log, in every process that serves the mock.

    Installs a filter (once; calling again is harmless) on uvicorn's error logger, or on the loggers
    given, that drops records whose exception is a scripted cut, whether the mock is served on its
    own or mounted in a Litestar app. Every other record, and every other exception's traceback,
    goes through. uvicorn's own logging setup keeps filters already on its loggers, so this may be
    called before or after `uvicorn.run` / `uvicorn.Config` is created.
    """
    for target in loggers or (UVICORN_ERROR_LOGGER,):
        logger = logging.getLogger(target) if isinstance(target, str) else target
        if not any(isinstance(f, HideScriptedCuts) for f in logger.filters):
            logger.addFilter(HideScriptedCuts())


def run(host: str = "127.0.0.1", port: int = 8001, api_key: str | None = None) -> None:
    """Serve a fresh mock upstream until interrupted. `api_key` falls back to $MOCK_UPSTREAM_API_KEY."""
    import uvicorn

    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV) or None
    quiet_scripted_cuts()
    uvicorn.run(
        create_app(api_key=api_key),
        host=host,
        port=port,
        # The fast implementations when installed (uvicorn[standard]); plain uvicorn still works without them.
        http="httptools" if _available("httptools") else "h11",
        loop="uvloop" if _available("uvloop") else "asyncio",
        access_log=False,
        log_level="warning",
        lifespan="off",
        proxy_headers=False,
    )
