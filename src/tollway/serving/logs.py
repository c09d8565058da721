"""uvicorn's logging for tollway: the same handlers, minus the noise of a failure already explained,
plus the access log (`tollway.access`: one line per proxied request on stdout, written by a thread).

Given to uvicorn as a dictConfig, so worker processes (started with spawn) get it too.  With
`log_format="json"` every line tollway and uvicorn log is one JSON object (`tollway.observe.access_log`).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from uvicorn.config import LOGGING_CONFIG

from tollway.observe.access_log import ACCESS_LOGGER, LogFormat

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


def log_config(log_format: LogFormat = "text") -> dict[str, Any]:
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"quiet_startup": {"()": "tollway.serving.logs.QuietStartup"}}
    config["handlers"]["default"]["filters"] = ["quiet_startup"]
    if log_format == "json":
        for name in ("default", "access"):
            config["formatters"][name] = {"()": "tollway.observe.access_log.JsonFormatter"}
    config["handlers"]["tollway_access"] = {
        "()": "tollway.observe.access_log.queued_handler",
        "log_format": log_format,
        "stream": "ext://sys.stdout",
    }
    config["loggers"][ACCESS_LOGGER] = {"handlers": ["tollway_access"], "level": "INFO", "propagate": False}
    # tollway's other loggers (billing, recovery, unexpected errors) in the same format as uvicorn's.
    config["loggers"]["tollway"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config
