"""uvicorn's logging for tollway: the same handlers, minus the noise of a failure already explained.

Given to uvicorn as a dictConfig, so worker processes (started with spawn) get it too.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from uvicorn.config import LOGGING_CONFIG

__all__ = ["QuietStartup", "log_config"]

# uvicorn's own lines that follow tollway's one message about a failed start-up.
_REPEATS = (
    "Application startup failed. Exiting.",
    "failed to start, stopping the parent process.",
)


class QuietStartup(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(repeat in message for repeat in _REPEATS)


def log_config() -> dict[str, Any]:
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"quiet_startup": {"()": "tollway.serving.logs.QuietStartup"}}
    config["handlers"]["default"]["filters"] = ["quiet_startup"]
    return config
