"""An incremental Server-Sent Events parser for real-world upstream streams.

Follows the WHATWG event-stream rules that matter in practice: `\\r\\n`, `\\n`
and lone `\\r` line endings (also when a `\\r\\n` pair is split across two
network reads), comment lines, several `data:` lines joined by `\\n`, one
optional space after the colon, and a final event that lacks its trailing
blank line (delivered by `close()`, as real upstreams do end that way).
"""

from __future__ import annotations

from msgspec import Struct

__all__ = ["SSEEvent", "SSEParser", "frame"]

# Bytes looked for as ints: `int in bytes` is a memchr, while `bytes in bytes` first tries its
# argument as an integer, and so formats and discards a TypeError on every call (CPython 3.11).
_LF = 0x0A
_CR = 0x0D
_NUL = 0x00


class SSEEvent(Struct, frozen=True):
    data: bytes
    event: bytes = b"message"
    id: bytes | None = None


class SSEParser:
    __slots__ = ("_buffer", "_data", "_event", "_first", "_id", "_skip_lf")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self._event = b""
        self._id: bytes | None = None
        self._skip_lf = False
        self._first = True

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume bytes; return the events they completed."""
        if (
            not self._buffer
            and not self._data
            and not self._event
            and not self._skip_lf
            and not self._first
            and chunk.startswith(b"data: ")
            and chunk.endswith(b"\n\n")
            and chunk.count(b"\n") == 2
            and _CR not in chunk
        ):
            # The usual read: exactly one whole event of one data line, nothing pending.
            return [SSEEvent(chunk[6:-2], b"message", self._id)]
        if self._first and chunk:
            self._first = False
            if chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
        if self._skip_lf and chunk:
            # the previous read ended in "\r": a leading "\n" completes that same line ending
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
            self._skip_lf = False
        buffer = self._buffer + chunk if self._buffer else chunk
        end = max(buffer.rfind(b"\n"), buffer.rfind(b"\r"))
        if end < 0:
            self._buffer = buffer
            return []
        complete, self._buffer = buffer[: end + 1], buffer[end + 1 :]
        self._skip_lf = complete[-1:] == b"\r"
        events: list[SSEEvent] = []
        for line in complete.splitlines():
            self._line(line, events)
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: an unterminated last line and event still count."""
        events: list[SSEEvent] = []
        if self._buffer:
            self._line(self._buffer, events)
            self._buffer = b""
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                events.append(SSEEvent(b"\n".join(self._data), self._event or b"message", self._id))
            self._data = []
            self._event = b""
            return
        if line[:1] == b":":
            return
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value
        elif name == b"id" and _NUL not in value:
            self._id = value


def frame(name: bytes, payload: bytes) -> bytes:
    """`payload` as one event to relay: its `data` field (a multi-line payload stays multi-line on
    the wire), after an `event:` line unless `name` is empty."""
    if _LF in payload:
        payload = payload.replace(b"\n", b"\ndata: ")
    if name:
        return b"event: " + name + b"\ndata: " + payload + b"\n\n"
    return b"data: " + payload + b"\n\n"
