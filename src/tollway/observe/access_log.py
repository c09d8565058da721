"""The access log: one line per proxied request, on logger `tollway.access`, written off the event loop.

A request's line is an `AccessEntry` carried as the log record's message: the
request path builds it (a few attribute writes) and hands the record to a
`QueueHandler`; a writer thread wakes every 0.1 s, formats what is queued
(text or JSON) and writes it in one write, so a slow stdout never stalls the
event loop and the thread does not contend for the GIL on every request.  An entry holds identifiers,
counts and the cost, never a prompt, a completion or a key.

`tollway serve` installs it through uvicorn's logging dictConfig
(`tollway.serving.logs.log_config`), so worker processes get it too.  An app
built without `serve` (tests) only logs to the logger: whoever listens decides.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import re
import sys
import threading
import time
from typing import IO, Any, Literal

import msgspec
from msgspec import Struct

__all__ = [
    "ACCESS_LOGGER",
    "AccessEntry",
    "JsonFormatter",
    "LogFormat",
    "QueuedHandler",
    "TextFormatter",
    "queued_handler",
]

ACCESS_LOGGER = "tollway.access"
LogFormat = Literal["text", "json"]

_encode = msgspec.json.Encoder().encode


class AccessEntry(Struct, kw_only=True):
    """What one proxied request did; `None` where a field does not apply (a refusal has no tokens)."""

    request_id: str
    workspace_id: str | None
    key_id: str | None
    surface: str
    model: str | None
    upstream: str | None
    stream: bool
    status: int
    # completed | client_disconnected | upstream_broke_off | upstream_timeout | server_shutdown
    # (how an answer ended), error (a refusal or failure: see `error`), cancelled (the server
    # cancelled a request in flight)
    end_state: str
    error: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    # USD as a decimal string with nine places (from the ledger's integer nano-dollars).
    cost_usd: str | None
    duration_ms: float
    # Streams: until the first bytes of the answer were relayed.
    ttfb_ms: float | None

    def logfmt(self) -> str:
        return " ".join(
            f"{name}={_logfmt_value(value)}"
            for name, value in zip(self.__struct_fields__, msgspec.structs.astuple(self), strict=True)
        )

    def __str__(self) -> str:  # what `record.getMessage()` gives any other handler
        return self.logfmt()


_BARE = re.compile(r"[A-Za-z0-9_.:/@+\-]+")


def _logfmt_value(value: object) -> str:
    if value is None:
        return "-"
    if value is True or value is False:
        return "true" if value else "false"
    if not isinstance(value, str):
        return str(value)  # a number
    if _BARE.fullmatch(value):
        return value
    return _encode(value).decode()  # quoted, with newlines and quotes escaped: one line, unambiguous


def _timestamp(record: logging.LogRecord) -> str:
    """UTC, ISO 8601, milliseconds."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{whole}.{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """`<time> <LEVEL> <logger> <message>`; an access line's message is `field=value` pairs."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, then an access entry's fields or `message`."""

    def format(self, record: logging.LogRecord) -> str:
        head: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if isinstance(record.msg, AccessEntry):
            fields = msgspec.structs.asdict(record.msg)
            return _encode({**head, **fields}).decode()
        head["message"] = record.getMessage()
        if record.exc_info:
            head["exception"] = self.formatException(record.exc_info)
        return _encode(head).decode()


# How often the writer thread wakes to write what is queued.  Waking per record instead made the
# thread contend for the GIL with the event loop on every request: ~100 µs of CPU per request
# under load, against ~9 µs to format and write a line.
FLUSH_SECONDS = 0.1


class _BatchWriter(threading.Thread):
    """Every `FLUSH_SECONDS`, formats what is queued and writes it to the target in one write."""

    def __init__(self, records: queue.SimpleQueue[logging.LogRecord], target: logging.Handler) -> None:
        super().__init__(name="tollway-access-log", daemon=True)
        self._records = records
        self._target = target
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(FLUSH_SECONDS):
            self.drain()
        self.drain()

    def stop(self) -> None:
        self._stopping.set()
        self.join()

    def drain(self) -> None:
        batch: list[logging.LogRecord] = []
        try:
            while True:
                batch.append(self._records.get_nowait())
        except queue.Empty:
            pass
        target = self._target
        batch = [record for record in batch if record.levelno >= target.level]
        if not batch:
            return
        if not isinstance(target, logging.StreamHandler):
            for record in batch:
                target.handle(record)
            return
        lines = []
        for record in batch:
            try:
                lines.append(target.format(record) + target.terminator)
            except Exception:
                target.handleError(record)
        target.acquire()
        try:
            target.stream.write("".join(lines))
            target.flush()
        except Exception:
            target.handleError(batch[-1])
        finally:
            target.release()


class QueuedHandler(logging.handlers.QueueHandler):
    """Hands records to its own writer thread, which formats and writes them in batches."""

    def __init__(self, target: logging.Handler) -> None:
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        super().__init__(records)
        self._writer = _BatchWriter(records, target)
        self._target = target
        self._writer.start()
        self._running = True

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # The stock handler formats here, on the caller's thread (to pickle for another process);
        # the writer is a thread of this process, so the record goes as it is.
        return record

    def close(self) -> None:
        """Write what is queued, then stop the thread (logging.shutdown calls this at exit)."""
        if self._running:
            self._running = False
            self._writer.stop()
        self._target.close()
        super().close()


def queued_handler(log_format: LogFormat = "text", stream: IO[str] | None = None) -> QueuedHandler:
    """A dictConfig factory: a queued handler writing `log_format` lines to `stream` (stdout)."""
    target = logging.StreamHandler(stream if stream is not None else sys.stdout)
    target.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    return QueuedHandler(target)
