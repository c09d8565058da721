"""Cut pathologically long runs of text so that counting tokens costs linear CPU.

tiktoken pre-tokenises with a regex, then BPE-merges each piece: a piece of L characters costs
O(L log L) (measured: ~80 ns per character at 1 KB, ~300 at 2 MB, ~500 for random letters),
and fancy-regex panics on a whitespace piece of a million characters (o200k_base's
``\\s+(?!\\S)``; the PanicException is a BaseException, not an Exception). Reading both
encodings' split patterns, a piece can only be long where the text has a long *run* of one of
these classes:

* non-space: neither whitespace nor an ASCII digit. A letter piece is one optional prefix
  character plus letters, a symbol piece an optional space plus symbols; digits come at most
  three to a piece and never join another one, so a digit ends the run. (Other scripts'
  digits are counted in the run: fewer breaks is always safe, and faster to scan for.)
* space: whitespace (Unicode White_Space, which is what ``\\s`` means to the Rust regex crate).
* line-tail: ``\\r``, ``\\n`` and ``/``, which o200k_base lets follow a symbol piece
  (``[\\r\\n/]*``): "/\\n/\\n/\\n..." is a single piece though it alternates between classes.

`plan_cuts` puts cuts strictly inside every run longer than ``max_run`` characters, at most
``max_run`` apart, so once each segment is encoded on its own no piece is longer than
``2 * max_run + 1`` characters. A text without such a run gets no cut at all and is encoded
exactly as tiktoken would encode it; the text around a long run stays in the segments of the
run's first and last slices, so tokens can only change inside long runs.

Inside a non-space run a cut is placed, when the slice's second half has one, just after a
letter or digit that is followed by punctuation (`NATURAL_BREAKS`): every piece of either
encoding ends there, so such a cut changes no token (CJK prose, JSON, URLs are cut this way).
Any other cut is *forced*; it may change the count by a few tokens either way (see
`tollway.tokens.counter.FORCED_CUT_ALLOWANCE`). A forced cut never separates a surrogate pair
(tiktoken joins a pair written as two code points into one character) and, when it can within
`MAX_BACKOFF` characters, steps back to the start of a combining sequence: it does not go
before a combining mark, a zero-width joiner, a tag or an emoji modifier, nor after a
zero-width joiner, nor between "\\r" and "\\n".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

__all__ = ["MAX_BACKOFF", "MAX_RUN_CHARS", "NATURAL_BREAKS", "WHITESPACE", "Cuts", "plan_cuts"]

# Chosen by measurement (scripts/bench_counting.py --sweep, 2 MB per shape): cut at 1,024,
# every shape measured encodes at 65-145 ns per character (the worse encoding), 5-30 % above
# the floor reached at 128 and 8-26 % below 4,096, against 250-500 ns for the same 2 MB in one
# piece. Smaller buys little CPU for more cuts. It is a power of two because so are the
# longest tokens of one repeated character (8 'a', 16 '!', ...): cuts 1,024 apart from the
# start of such a run fall between tokens, and the segments' tokens are tiktoken's.
MAX_RUN_CHARS: Final = 1024

MAX_BACKOFF: Final = 16

# Unicode's White_Space property, which is ``\s`` to tiktoken's Rust regex. Not Python's
# ``\s``: that also matches U+001C..U+001F, which tiktoken reads as symbols, so "\x1c!" * n is
# one long symbol piece.
WHITESPACE: Final = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)

# Punctuation that both encodings read as a symbol (not a letter, number, mark or space) and
# that is not the apostrophe of o200k_base's "'s" suffix: a letter or digit followed by one of
# these always ends its piece. ASCII and long-assigned CJK only, whose category no Unicode
# version disputes.
NATURAL_BREAKS: Final = (
    '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'
    "\u00b7\u2014\u2026\u3001\u3002\u3008\u3009\u300a\u300b\u300c\u300d\u300e\u300f\u3010\u3011"
    "\uff01\uff08\uff09\uff0c\uff0e\uff1a\uff1b\uff1f"
)

_WS: Final = re.escape(WHITESPACE)
# Per class, the characters that end one of its runs.
_BREAKERS: Final = (f"[{_WS}0-9]", f"[^{_WS}]", r"[^\r\n/]")
_NON_SPACE: Final = 0  # index of the non-space class in _BREAKERS
_NEXT_BREAKER: Final = tuple(re.compile(b) for b in _BREAKERS)
# Matched on a window, these end just after the window's last breaker.
_LAST_BREAKER: Final = tuple(re.compile(f"(?s:.*){b}") for b in _BREAKERS)
# Matched on a window, this ends at its last letter-or-digit-then-punctuation boundary; the
# quick search first tells whether the window has any such punctuation at all.
_ANY_NATURAL: Final = re.compile(f"[{re.escape(NATURAL_BREAKS)}]")
_LAST_NATURAL: Final = re.compile(f"(?s:.*)[^\\W_](?=[{re.escape(NATURAL_BREAKS)}])")

# The end of a long run is searched for in steps of this many characters: each step is one C
# call that holds the GIL, and between steps the event loop's thread can run.
_SCAN_STEP: Final = 65_536

_ZWJ: Final = "\u200d"


@dataclass(frozen=True, slots=True)
class Cuts:
    """Where to cut a text: sorted positions, and how many of them are forced (not natural)."""

    points: tuple[int, ...] = ()
    forced: int = 0

    def segments(self, text: str) -> Iterator[str]:
        start = 0
        for point in self.points:
            yield text[start:point]
            start = point
        yield text[start:]


_NO_CUTS: Final = Cuts()


def plan_cuts(text: str, max_run: int = MAX_RUN_CHARS) -> Cuts:
    """Where to cut ``text`` so that no run is longer than ``max_run`` characters.

    No cut when the text has no run longer than ``max_run`` (always when it is that short).
    Linear time; a 2 MB text takes ~1.5 ms of CPU without a long run, up to ~30 ms with.
    """
    if max_run < 2 * MAX_BACKOFF:
        raise ValueError(f"max_run must be >= {2 * MAX_BACKOFF}")
    if len(text) <= max_run:
        return _NO_CUTS
    natural: set[int] = set()
    forced: set[int] = set()
    for kind, (next_breaker, last_breaker) in enumerate(zip(_NEXT_BREAKER, _LAST_BREAKER, strict=True)):
        for start, end in _long_runs(text, max_run, next_breaker, last_breaker):
            prev = start
            while end - prev > max_run:
                m = None
                lo, hi = prev + max_run // 2, prev + max_run + 1
                if kind == _NON_SPACE and _ANY_NATURAL.search(text, lo + 1, hi):
                    m = _LAST_NATURAL.match(text, lo, hi)
                if m is not None:
                    prev = m.end()
                    natural.add(prev)
                else:
                    prev = _forced_cut(text, prev + max_run, prev)
                    forced.add(prev)
    if not forced and not natural:
        return _NO_CUTS
    # A natural cut sits between a letter or digit and punctuation, a forced one inside a run
    # of space or line-tail characters or between two characters of neither kind: never both.
    return Cuts(tuple(sorted(natural | forced)), len(forced))


def _long_runs(
    text: str, max_run: int, next_breaker: re.Pattern[str], last_breaker: re.Pattern[str]
) -> Iterator[tuple[int, int]]:
    """(start, end) of each maximal run longer than ``max_run``, in linear time.

    ``start`` is always the start of a run (the text's start or just after a breaker). A step
    looks at the next ``max_run + 1`` characters: without a breaker they begin a long run;
    otherwise the next start is just after the window's last breaker. A step costs
    O(max_run), and two steps in a row advance by more than ``max_run``.
    """
    n = len(text)
    start = 0
    while n - start > max_run:
        window_end = start + max_run + 1
        m = last_breaker.match(text, start, window_end)
        if m is not None:
            start = m.end()
            continue
        end = window_end
        while end < n:
            after = next_breaker.search(text, end, end + _SCAN_STEP)
            if after is not None:
                end = after.start()
                break
            end = min(n, end + _SCAN_STEP)
        yield start, end
        start = end + 1


def _forced_cut(text: str, pos: int, floor: int) -> int:
    """A cut at ``pos`` or a little before it, always above ``floor``."""
    for back in range(min(MAX_BACKOFF, pos - floor - 1) + 1):
        if _cut_ok(text, pos - back):
            return pos - back
    # Nothing but combining marks, say: cut anyway, but keep a surrogate pair whole.
    return pos - 1 if _splits_pair(text, pos) else pos


def _cut_ok(text: str, pos: int) -> bool:
    before, after = text[pos - 1], text[pos]
    if before == _ZWJ or (before == "\r" and after == "\n") or _splits_pair(text, pos):
        return False
    return not _is_extender(after)


def _splits_pair(text: str, pos: int) -> bool:
    return "\ud800" <= text[pos - 1] <= "\udbff" and "\udc00" <= text[pos] <= "\udfff"


def _is_extender(ch: str) -> bool:
    """A character that belongs with the one before it."""
    if ch == _ZWJ or "\U000e0020" <= ch <= "\U000e007f" or "\U0001f3fb" <= ch <= "\U0001f3ff":
        return True
    return unicodedata.category(ch) in ("Mn", "Mc", "Me")
