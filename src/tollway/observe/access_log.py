"""The access log: one line per proxied request, on logger `tollway.access`, written off the event loop.

A request's line is an `AccessEntry` carried as the log record's message: the
request path builds it (a few attribute writes) and hands the record to a
`QueueHandler`; a writer thread wakes every 0.1 s, formats what is queued
(text or JSON) and writes it in one write, so a slow stdout never stalls the
event loop and the thread does not contend for the GIL on every request.  An entry holds identifiers,
counts and the cost, never a prompt, a completion or a key.

When that handler is all a record would reach (`direct_sink`: how `serve` sets
the logger up), the request path skips `logging` and queues the entry with its
time (`AccessLine`); the line written is the same.  Making the record and
passing it through the logger and the handler was 2-2.5 % of a billed
request's instructions (`scripts/bench_instructions.py`).

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
from typing import IO, Any, ClassVar, Literal

import msgspec
from msgspec import Struct

__all__ = [
    "ACCESS_LOGGER",
    "AccessEntry",
    "AccessLine",
    "JsonFormatter",
    "LogFormat",
    "QueuedHandler",
    "TextFormatter",
    "direct_sink",
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
        # The usual line: every text is bare (ids, names, codes), which one match over all of them
        # shows; any other goes the general way, field by field, quoting where needed.
        texts = (
            self.request_id,
            "-" if self.workspace_id is None else self.workspace_id,
            "-" if self.key_id is None else self.key_id,
            self.surface,
            "-" if self.model is None else self.model,
            "-" if self.upstream is None else self.upstream,
            self.end_state,
            "-" if self.error is None else self.error,
            "-" if self.cost_usd is None else self.cost_usd,
        )
        if not _ALL_BARE.fullmatch(" ".join(texts)):
            return self._logfmt_quoting()
        request, workspace, key, surface, model, upstream, end_state, error, cost = texts
        return (
            f"request_id={request} workspace_id={workspace} key_id={key} surface={surface} "
            f"model={model} upstream={upstream} stream={'true' if self.stream else 'false'} "
            f"status={self.status} end_state={end_state} error={error} "
            f"prompt_tokens={_number(self.prompt_tokens)} "
            f"completion_tokens={_number(self.completion_tokens)} "
            f"total_tokens={_number(self.total_tokens)} cost_usd={cost} "
            f"duration_ms={self.duration_ms} ttfb_ms={_number(self.ttfb_ms)}"
        )

    def _logfmt_quoting(self) -> str:
        return " ".join(
            f"{name}={_logfmt_value(value)}"
            for name, value in zip(self.__struct_fields__, msgspec.structs.astuple(self), strict=True)
        )

    def __str__(self) -> str:  # what `record.getMessage()` gives any other handler
        return self.logfmt()


_BARE = re.compile(r"[A-Za-z0-9_.:/@+\-]+")
_ALL_BARE = re.compile(r"[A-Za-z0-9_.:/@+\-]+(?: [A-Za-z0-9_.:/@+\-]+)*")  # bare texts joined by spaces


def _number(value: float | None) -> str:
    return "-" if value is None else str(value)


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
    return _stamp(record.created, record.msecs)


# The second last stamped and its text (one tuple, swapped whole: formatters run on any thread).
_stamped: tuple[int, str] = (-1, "")


def _stamp(created: float, msecs: float) -> str:
    global _stamped
    second = int(created)
    last, whole = _stamped
    if second != last:  # gmtime and strftime once a second, not once a line
        whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _stamped = (second, whole)
    return f"{whole}.{int(msecs):03d}Z"


class AccessLine(Struct, frozen=True):
    """An access entry queued without a log record: when it was made and the logger's name."""

    created: float
    name: str
    entry: AccessEntry
    levelno: ClassVar[int] = logging.INFO

    @property
    def msecs(self) -> float:
        return (self.created - int(self.created)) * 1000  # as a LogRecord's

    def record(self) -> logging.LogRecord:
        """The log record `logger.info(entry)` would have made, for handlers that need one."""
        made = logging.LogRecord(self.name, logging.INFO, "", 0, self.entry, (), None)
        made.created, made.msecs = self.created, self.msecs
        return made


class TextFormatter(logging.Formatter):
    """`<time> <LEVEL> <logger> <message>`; an access line's message is `field=value` pairs."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line

    def access_line(self, line: AccessLine) -> str:
        """What `format` gives for `line.record()`."""
        return f"{_stamp(line.created, line.msecs)} INFO {line.name} {line.entry.logfmt()}"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, then an access entry's fields or `message`."""

    def format(self, record: logging.LogRecord) -> str:
        head: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if isinstance(record.msg, AccessEntry):
            return _entry_json(head, record.msg)
        head["message"] = record.getMessage()
        if record.exc_info:
            head["exception"] = self.formatException(record.exc_info)
        return _encode(head).decode()

    def access_line(self, line: AccessLine) -> str:
        """What `format` gives for `line.record()`."""
        head = {"time": _stamp(line.created, line.msecs), "level": "info", "logger": line.name}
        return _entry_json(head, line.entry)


def _entry_json(head: dict[str, Any], entry: AccessEntry) -> str:
    return _encode({**head, **msgspec.structs.asdict(entry)}).decode()


Queued = logging.LogRecord | AccessLine


def _record(item: Queued) -> logging.LogRecord:
    return item.record() if isinstance(item, AccessLine) else item


# How often the writer thread wakes to write what is queued.  Waking per record instead made the
# thread contend for the GIL with the event loop on every request: ~100 µs of CPU per request
# under load, against ~9 µs to format and write a line.
FLUSH_SECONDS = 0.1


class _BatchWriter(threading.Thread):
    """Every `FLUSH_SECONDS`, formats what is queued and writes it to the target in one write."""

    def __init__(self, records: queue.SimpleQueue[Queued], target: logging.Handler) -> None:
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
        batch: list[Queued] = []
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
            for item in batch:
                target.handle(_record(item))
            return
        formatter = target.formatter
        direct: TextFormatter | JsonFormatter | None = None
        if type(formatter) is TextFormatter or type(formatter) is JsonFormatter:  # not a subclass
            direct = formatter
        lines = []
        for item in batch:
            try:
                if isinstance(item, AccessLine):
                    line = direct.access_line(item) if direct is not None else target.format(item.record())
                else:
                    line = target.format(item)
                lines.append(line + target.terminator)
            except Exception:
                target.handleError(_record(item))
        target.acquire()
        try:
            target.stream.write("".join(lines))
            target.flush()
        except Exception:
            target.handleError(_record(batch[-1]))
        finally:
            target.release()


class QueuedHandler(logging.handlers.QueueHandler):
    """Hands records to its own writer thread, which formats and writes them in batches."""

    def __init__(self, target: logging.Handler) -> None:
        records: queue.SimpleQueue[Queued] = queue.SimpleQueue()
        super().__init__(records)
        self._writer = _BatchWriter(records, target)
        self._target = target
        self._writer.start()
        self._running = True

    def put_access(self, name: str, entry: AccessEntry) -> None:
        """Queue `entry` as logger `name`'s INFO line, stamped now, without a log record."""
        self.queue.put_nowait(AccessLine(time.time(), name, entry))

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


def direct_sink(log: logging.Logger) -> QueuedHandler | None:
    """The logger's queued handler, if an INFO record of `log` would reach it and nothing else."""
    handlers = log.handlers
    if len(handlers) != 1 or log.propagate or log.filters or log.disabled:
        return None
    handler = handlers[0]
    if type(handler) is not QueuedHandler or handler.filters or handler.level > logging.INFO:
        return None
    return handler


def queued_handler(log_format: LogFormat = "text", stream: IO[str] | None = None) -> QueuedHandler:
    """A dictConfig factory: a queued handler writing `log_format` lines to `stream` (stdout)."""
    target = logging.StreamHandler(stream if stream is not None else sys.stdout)
    target.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    return QueuedHandler(target)
