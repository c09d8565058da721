"""The access line's two formats, and the queued handler that writes them on its own thread."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.observe import Metrics, Observer, access_log
from tollway.observe.access_log import (
    ACCESS_LOGGER,
    AccessEntry,
    JsonFormatter,
    QueuedHandler,
    TextFormatter,
    direct_sink,
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


_texts = st.one_of(
    st.none(), st.sampled_from(["", "-", "req_1", "a b", 'q"', "x\ny", "é", "gpt-4o:mini/v1"]), st.text()
)
_numbers = st.one_of(st.none(), st.integers(0, 10**12))


@settings(max_examples=300, print_blob=True)
@given(
    text=st.fixed_dictionaries(
        {name: _texts for name in ("workspace_id", "key_id", "model", "upstream", "error", "cost_usd")}
        | {name: st.text() for name in ("request_id", "surface", "end_state")}
    ),
    numbers=st.fixed_dictionaries(
        {name: _numbers for name in ("prompt_tokens", "completion_tokens", "total_tokens")}
    ),
    stream=st.booleans(),
    status=st.integers(100, 599),
    duration=st.floats(0, 1e9, allow_nan=False),
    ttfb=st.one_of(st.none(), st.floats(0, 1e9, allow_nan=False)),
)
def test_the_usual_line_is_what_the_field_by_field_line_would_be(
    text: dict[str, str | None],
    numbers: dict[str, int | None],
    stream: bool,
    status: int,
    duration: float,
    ttfb: float | None,
) -> None:
    made = entry(**text, **numbers, stream=stream, status=status, duration_ms=duration, ttfb_ms=ttfb)
    assert made.logfmt() == made._logfmt_quoting()


def test_the_usual_line_holds_every_field_in_order_without_the_field_by_field_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = entry(ttfb_ms=None, error="e")._logfmt_quoting()
    monkeypatch.setattr(AccessEntry, "_logfmt_quoting", lambda self: pytest.fail("not the usual way"))
    line = entry(ttfb_ms=None, error="e").logfmt()
    assert line == expected
    assert [pair.split("=", 1)[0] for pair in line.split(" ")] == list(AccessEntry.__struct_fields__)


def test_time_stamps_are_utc_milliseconds_across_second_boundaries() -> None:
    stamps = [
        access_log._stamp(created, msecs)
        for created, msecs in (
            (1_700_000_000.999, 999.0),
            (1_700_000_001.0, 0.0),
            (1_700_000_000.5, 500.0),
            (0.25, 250.0),
        )
    ]
    assert stamps == [
        "2023-11-14T22:13:20.999Z",
        "2023-11-14T22:13:21.000Z",
        "2023-11-14T22:13:20.500Z",
        "1970-01-01T00:00:00.250Z",
    ]


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


def serve_like_logger(handler: logging.Handler) -> logging.Logger:
    """A logger set up as `serve`'s dictConfig sets up `tollway.access`."""
    logger = logging.Logger("test.access", logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    return logger


def test_the_direct_sink_is_the_queued_handler_only_when_a_record_would_reach_it_alone() -> None:
    handler = queued_handler("text", io.StringIO())
    try:
        logger = serve_like_logger(handler)
        assert direct_sink(logger) is handler
        logger.propagate = True  # a parent's handlers would see the record too
        assert direct_sink(logger) is None
        logger.propagate = False
        logger.addFilter(lambda record: True)
        assert direct_sink(logger) is None
        logger.filters.clear()
        second = logging.NullHandler()
        logger.addHandler(second)
        assert direct_sink(logger) is None
        logger.removeHandler(second)
        handler.setLevel(logging.WARNING)
        assert direct_sink(logger) is None
        handler.setLevel(logging.NOTSET)
        logger.disabled = True
        assert direct_sink(logger) is None
        logger.disabled = False
        assert direct_sink(logger) is handler
        assert direct_sink(serve_like_logger(logging.NullHandler())) is None
    finally:
        handler.close()


def test_an_entry_queued_without_a_record_is_written_as_its_record_would_be(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(access_log.time, "time", lambda: 1_700_000_000.25)  # the `record()` helper's time
    for log_format in ("text", "json"):
        stream = io.StringIO()
        handler = queued_handler(log_format, stream)  # type: ignore[arg-type]
        logger = serve_like_logger(handler)
        logger.handle(record(entry(request_id="req_via_record")))
        handler.put_access(ACCESS_LOGGER, entry(request_id="req_via_record"))  # `record()`'s name
        handler.close()
        via_record, direct = stream.getvalue().splitlines()
        assert direct == via_record
        if log_format == "text":
            assert direct.startswith(
                "2023-11-14T22:13:20.250Z INFO tollway.access request_id=req_via_record "
            )


def test_a_request_behind_serves_logger_makes_no_log_record(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    handler = queued_handler("text", stream)
    logger = serve_like_logger(handler)

    def no_record(*args: object, **kwargs: object) -> logging.LogRecord:
        raise AssertionError("a LogRecord was made on the request path")

    monkeypatch.setattr(logger, "makeRecord", no_record)
    exchange = Observer(Metrics(), logger).begin("req_direct", "chat.completions")
    exchange.finish(404)
    handler.close()
    [line] = stream.getvalue().splitlines()
    assert " INFO test.access request_id=req_direct workspace_id=- " in line
    assert " status=404 end_state=error " in line


def test_other_handlers_still_get_a_record_of_their_own() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    queued = QueuedHandler(handler)
    queued.put_access("test.access", entry(request_id="req_plain"))
    queued.close()
    assert " INFO test.access request_id=req_plain " in stream.getvalue()
