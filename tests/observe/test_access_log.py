"""The access line's two formats, and the queued handler that writes them on its own thread."""

from __future__ import annotations

import io
import json
import logging
import threading

from tollway.observe.access_log import (
    ACCESS_LOGGER,
    AccessEntry,
    JsonFormatter,
    QueuedHandler,
    TextFormatter,
    queued_handler,
)
from tollway.serving.logs import log_config


def entry(**changes: object) -> AccessEntry:
    fields: dict[str, object] = {
        "request_id": "req_1",
        "workspace_id": "ws_1",
        "key_id": "key_1",
        "surface": "chat.completions",
        "model": "gpt-4o-mini",
        "upstream": "openai",
        "stream": True,
        "status": 200,
        "end_state": "completed",
        "error": None,
        "prompt_tokens": 12,
        "completion_tokens": 8,
        "total_tokens": 20,
        "cost_usd": "0.000028000",
        "duration_ms": 812.5,
        "ttfb_ms": 95.25,
    }
    return AccessEntry(**{**fields, **changes})  # type: ignore[arg-type]


def record(message: object) -> logging.LogRecord:
    made = logging.LogRecord(ACCESS_LOGGER, logging.INFO, "", 0, message, (), None)
    made.created, made.msecs = 1_700_000_000.25, 250.0
    return made


def test_json_lines_hold_every_field() -> None:
    line = JsonFormatter().format(record(entry()))
    assert json.loads(line) == {
        "time": "2023-11-14T22:13:20.250Z",
        "level": "info",
        "logger": "tollway.access",
        "request_id": "req_1",
        "workspace_id": "ws_1",
        "key_id": "key_1",
        "surface": "chat.completions",
        "model": "gpt-4o-mini",
        "upstream": "openai",
        "stream": True,
        "status": 200,
        "end_state": "completed",
        "error": None,
        "prompt_tokens": 12,
        "completion_tokens": 8,
        "total_tokens": 20,
        "cost_usd": "0.000028000",
        "duration_ms": 812.5,
        "ttfb_ms": 95.25,
    }


def test_other_records_in_json_are_a_message() -> None:
    line = JsonFormatter().format(
        logging.LogRecord("uvicorn.error", logging.WARNING, "", 0, "a %s", ("b",), None)
    )
    assert {k: v for k, v in json.loads(line).items() if k != "time"} == {
        "level": "warning",
        "logger": "uvicorn.error",
        "message": "a b",
    }


def test_text_lines_are_field_value_pairs_quoted_where_needed() -> None:
    line = TextFormatter().format(record(entry(model='odd "model"\nname', error=None, workspace_id=None)))
    assert line.startswith("2023-11-14T22:13:20.250Z INFO tollway.access request_id=req_1 workspace_id=- ")
    assert ' model="odd \\"model\\"\\nname" ' in line
    assert "\n" not in line  # a client's text cannot forge a second line
    assert " stream=true status=200 end_state=completed error=- prompt_tokens=12 " in line
    assert line.endswith(" cost_usd=0.000028000 duration_ms=812.5 ttfb_ms=95.25")
    assert str(entry()) == entry().logfmt()  # what any other handler's %(message)s shows


def test_the_queued_handler_writes_on_its_own_thread_and_flushes_on_close() -> None:
    writers: list[str] = []

    class Recording(io.StringIO):
        def write(self, text: str) -> int:
            writers.append(threading.current_thread().name)
            return super().write(text)

    stream = Recording()
    handler = queued_handler("json", stream)
    assert isinstance(handler, QueuedHandler)
    logger = logging.Logger("test.access")
    logger.addHandler(handler)
    made = record(entry())
    assert handler.prepare(made) is made  # nothing formatted on the caller's thread
    for _ in range(3):
        logger.handle(record(entry()))
    handler.close()
    handler.close()  # harmless twice (logging.shutdown closes it again at exit)
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == ["req_1"] * 3
    assert threading.current_thread().name not in writers


def test_serve_logs_access_lines_through_the_queue_in_the_chosen_format() -> None:
    for log_format in ("text", "json"):
        config = log_config(log_format)  # type: ignore[arg-type]
        assert config["loggers"][ACCESS_LOGGER] == {
            "handlers": ["tollway_access"],
            "level": "INFO",
            "propagate": False,
        }
        handler = config["handlers"]["tollway_access"]
        assert handler["()"] == "tollway.observe.access_log.queued_handler"
        assert handler["log_format"] == log_format
        json_default = config["formatters"]["default"] == {"()": "tollway.observe.access_log.JsonFormatter"}
        assert json_default is (log_format == "json")
