"""Server-sent-event framing, including the odd-but-valid variants a proxy's parser must survive."""

from __future__ import annotations

import itertools

_QUOTE, _BACKSLASH, _COMMA, _CR = 0x22, 0x5C, 0x2C, 0x0D

# The "garbage" style's events, one before each of the second, third and fourth real events: a proxy
# must skip (or reject) them without losing the real chunks around them.
GARBAGE: tuple[bytes, ...] = (b"not json", b'{"broken"', b"<html>")


def _structural_comma(payload: bytes) -> int:
    """Index of the first comma outside a JSON string, or -1."""
    in_string = escaped = False
    for i, byte in enumerate(payload):
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte == _COMMA:
            return i
    return -1


def split_pieces(data: bytes) -> list[bytes]:
    """Cut bytes at awkward places: after the first byte, mid-payload, before the last byte, after every CR.

    Cutting after CR separates CRLF pairs across reads, which naive line splitters get wrong.
    """
    cuts = {1, len(data) // 2, len(data) - 1}
    cuts.update(i + 1 for i, byte in enumerate(data) if byte == _CR)
    edges = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


class Framer:
    """Turns JSON payloads into SSE bytes for one stream, in the styles asked for."""

    __slots__ = ("_comments", "_eol", "_events", "_garbage", "_multiline", "_split", "_trim_last")

    def __init__(self, styles: frozenset[str]) -> None:
        self._eol = b"\r\n" if "crlf" in styles else b"\n"
        self._multiline = "multiline" in styles
        self._comments = "comments" in styles
        self._trim_last = "no_trailing_blank" in styles
        self._split = "split" in styles
        self._garbage = "garbage" in styles
        self._events = 0

    def opening(self) -> bytes:
        """Bytes to send before the first event (a comment, as some gateways do while they wait)."""
        return b": ok" + self._eol + self._eol if self._comments else b""

    def event(self, payload: bytes, last: bool = False) -> bytes:
        eol = self._eol
        comma = _structural_comma(payload) if self._multiline else -1
        if comma >= 0:
            # Per the SSE spec the two data lines rejoin with "\n", which JSON accepts as whitespace.
            out = b"data: " + payload[: comma + 1] + eol + b"data: " + payload[comma + 1 :] + eol
        else:
            out = b"data: " + payload + eol
        if not (last and self._trim_last):
            out += eol
        if self._comments and self._events:
            out = b": keep-alive" + eol + eol + out
        if self._garbage and 0 < self._events <= len(GARBAGE):
            out = b"data: " + GARBAGE[self._events - 1] + eol + eol + out
        self._events += 1
        return out

    def pieces(self, data: bytes) -> list[bytes]:
        return split_pieces(data) if self._split else [data]
