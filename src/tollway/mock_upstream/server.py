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


class _HideScriptedCuts(logging.Filter):
    """Drops uvicorn's traceback for a `cut_after` abort, which is the mock doing its job."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionCut))


def run(host: str = "127.0.0.1", port: int = 8001, api_key: str | None = None) -> None:
    """Serve a fresh mock upstream until interrupted. `api_key` falls back to $MOCK_UPSTREAM_API_KEY."""
    import uvicorn

    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV) or None
    logging.getLogger("uvicorn.error").addFilter(_HideScriptedCuts())
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
