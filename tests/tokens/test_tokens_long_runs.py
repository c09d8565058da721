"""Long runs are cut before BPE: ordinary text counts exactly as tiktoken, long runs nearly so.

No timing here: scripts/bench_counting.py measures the CPU. Random inputs come from
``random.Random(SEED)`` (printed) or from Hypothesis (which prints its own reproduction seed
on failure).
"""

from __future__ import annotations

import base64
import itertools
import random
import sys
from collections.abc import Callable
from typing import Any

import anyio
import pytest
import regex
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from tollway.tokens import ENCODING_NAMES, TokenCounter
from tollway.tokens.counter import FORCED_CUT_ALLOWANCE, MAX_RUN_CHARS
from tollway.tokens.runs import MAX_BACKOFF, NATURAL_BREAKS, WHITESPACE, Cuts, plan_cuts

K = MAX_RUN_CHARS
SEED = 20_240_611
# The most a forced cut was seen to add to the count before the allowance (see counter.py).
MAX_CUT_EXCESS = 5
MB2 = 2_000_000

LINE_TAIL = "\r\n/"
DIGITS = "0123456789"


def _rng(name: str) -> random.Random:
    print(f"{name}: random.Random({SEED})")
    return random.Random(SEED)


def _plain(counter: TokenCounter, encoding: str, text: str) -> int:
    return len(counter.encoding(encoding).encode_ordinary(text))


def _reference_runs(text: str, max_run: int) -> list[tuple[int, int]]:
    """Maximal runs longer than ``max_run`` of each class, one character at a time."""
    classes: list[Callable[[str], bool]] = [
        lambda c: c not in WHITESPACE and c not in DIGITS,
        lambda c: c in WHITESPACE,
        lambda c: c in LINE_TAIL,
    ]
    runs = []
    for member in classes:
        start = None
        for i, c in enumerate([*text, None]):
            if c is not None and member(c):
                if start is None:
                    start = i
            elif start is not None:
                if i - start > max_run:
                    runs.append((start, i))
                start = None
    return runs


def _is_natural(text: str, point: int) -> bool:
    return text[point - 1].isalnum() and text[point] in NATURAL_BREAKS


def _check_plan(text: str, cuts: Cuts, max_run: int) -> None:
    runs = _reference_runs(text, max_run)
    points = cuts.points
    assert list(points) == sorted(set(points))
    for p in points:
        assert any(start < p < end for start, end in runs), f"cut {p} outside every long run"
        assert not ("\ud800" <= text[p - 1] <= "\udbff" and "\udc00" <= text[p] <= "\udfff")
    for start, end in runs:
        inside = [start, *(p for p in points if start < p < end), end]
        assert max(b - a for a, b in itertools.pairwise(inside)) <= max_run
    assert cuts.forced == sum(not _is_natural(text, p) for p in points)
    assert "".join(cuts.segments(text)) == text


# --- the classes match what tiktoken's regex means --------------------------------------------


ALL_CHARS = "".join(map(chr, range(sys.maxunicode + 1)))


def test_whitespace_is_unicode_white_space() -> None:
    # tiktoken's Rust regex reads \s as White_Space; Python's \s adds U+001C..U+001F.
    assert set(WHITESPACE) == set(regex.findall(r"\p{White_Space}", ALL_CHARS))


def test_natural_breaks_are_symbols_to_both_encodings() -> None:
    assert not regex.findall(r"[\p{L}\p{N}\p{M}\s']", NATURAL_BREAKS)


def test_python_separators_are_cut_as_symbols() -> None:
    # "\x1c" is whitespace to Python but a symbol to tiktoken: "\x1c!" * n is a single piece.
    text = "\x1c!" * 5000
    assert plan_cuts(text).points
    assert plan_cuts(" !" * 5000).points == ()


# --- text without a long run is untouched -----------------------------------------------------


non_space_char = st.characters(exclude_characters=WHITESPACE + DIGITS)
word = st.text(non_space_char, min_size=1, max_size=K) | st.sampled_from(["a" * K, "!" * K, "中" * K])
separator = st.sampled_from([*WHITESPACE, "0", "7", " \n", "  "])


@st.composite
def text_without_long_runs(draw: st.DrawFn) -> str:
    words = draw(st.lists(word, min_size=1, max_size=6))
    seps = draw(st.lists(separator, min_size=len(words), max_size=len(words)))
    return "".join(w + s for w, s in zip(words, seps, strict=True))


@settings(max_examples=150, deadline=None)
@given(encoding=st.sampled_from(ENCODING_NAMES), text=text_without_long_runs())
@example(encoding="o200k_base", text="a" * K)
@example(encoding="cl100k_base", text=" " * K + "x" + "\n" * K + "y" + "/" * (K - 1))
def test_text_without_long_runs_counts_exactly(counter: TokenCounter, encoding: str, text: str) -> None:
    assume(not _reference_runs(text, K))
    assert plan_cuts(text) == Cuts()
    assert counter.count_text(encoding, text) == _plain(counter, encoding, text)


@pytest.mark.parametrize("encoding", ENCODING_NAMES)
def test_ordinary_large_texts_are_not_cut(counter: TokenCounter, encoding: str) -> None:
    rng = _rng("ordinary_large_texts")
    prose = "The quick brown fox jumps over the lazy dog; 3 boxes, 12 jugs. " * 20_000
    b64 = base64.b64encode(rng.randbytes(300_000)).decode()
    hexed = rng.randbytes(200_000).hex()
    latin1 = rng.randbytes(300_000).decode("latin-1")
    code = "def f(x):\n    return {'a': [x, x ** 2]}\n\n" * 5000
    for text in (prose, b64, hexed, latin1, code):
        assert plan_cuts(text) == Cuts()
        assert counter.count_text(encoding, text) == _plain(counter, encoding, text)


# --- the cut plan ------------------------------------------------------------------------------


run_alphabets = st.sampled_from(
    [
        "a",
        "aA",
        "abcdefghijklmnopqrstuvwxyz",
        "!=-_*#/",
        "中文字\uff0c\u3002",
        "e\u0301\u0300",
        "\U0001f468\u200d\U0001f469\U0001f3fd",
        "\ud83d\ude42\ud800",
        " \t\u3000",
        "\n\r/",
        "a!\n",
        "\x1c!",
        "x's",
    ]
)


@st.composite
def text_with_runs(draw: st.DrawFn, max_run: int, max_len: int) -> str:
    alphabet = draw(run_alphabets)
    if draw(st.booleans()):
        unit = draw(st.text(st.sampled_from(alphabet), min_size=1, max_size=6))
        run = unit * (max_len // len(unit))
    else:
        run = draw(st.text(st.sampled_from(alphabet), min_size=max_run + 1, max_size=max_len))
    length = draw(st.integers(max_run + 1, max(max_run + 1, len(run))))
    head = draw(st.sampled_from(["", " ", "x", "!", "'", "\n", "hello ", "A"]))
    tail = draw(st.sampled_from(["", " ", "x", "!", "'s", "\n", "1", " world"]))
    return head + run[:length] + tail


@settings(max_examples=300, deadline=None)
@given(text=text_with_runs(max_run=64, max_len=600))
@example(text="\ud83d\ude42" * 200)
@example(text="e\u0301" * 300)
@example(text="\u0301" * 300)
@example(text="\U0001f468\u200d\U0001f469\u200d\U0001f467" * 100)
@example(text="\r\n" * 300)
def test_cut_plan_bounds_every_run(text: str) -> None:
    _check_plan(text, plan_cuts(text, 64), 64)


def test_cuts_keep_sequences_whole_when_they_can() -> None:
    for unit in ("e\u0301", "\U0001f44d\U0001f3fd", "\U0001f468\u200d\U0001f469", "\r\n", "\ud83d\ude42"):
        text = unit * 3000
        points = plan_cuts(text).points
        assert points
        assert all(p % len(unit) == 0 for p in points), unit


def test_cut_plan_rejects_tiny_runs() -> None:
    with pytest.raises(ValueError, match="max_run"):
        plan_cuts("x" * 100, 2 * MAX_BACKOFF - 1)


# --- counts on long runs -----------------------------------------------------------------------


@settings(max_examples=120, deadline=None)
@given(encoding=st.sampled_from(ENCODING_NAMES), text=text_with_runs(max_run=K, max_len=5 * K))
def test_long_runs_count_within_the_bound(counter: TokenCounter, encoding: str, text: str) -> None:
    cuts = plan_cuts(text)
    counted = counter.count_text(encoding, text)
    plain = _plain(counter, encoding, text)
    # Never below tiktoken; at most MAX_CUT_EXCESS + the allowance above it per forced cut.
    assert plain <= counted <= plain + cuts.forced * (MAX_CUT_EXCESS + FORCED_CUT_ALLOWANCE)
    # Natural cuts change nothing: the segments alone sum to tiktoken's count when all are.
    if cuts.forced == 0:
        assert counted == plain


PERIODIC_LETTERS = "".join(chr(97 + (i * i + 7 * i) % 26) for i in range(100_000))


@pytest.mark.parametrize(
    ("text", "forced", "plain", "segments"),
    [
        # One repeated character: the segments' tokens are exactly tiktoken's (1,024 is a
        # multiple of the longest such token), so only the allowance is added.
        ("a" * 100_000, 97, (12_500, 12_500), (12_500, 12_500)),
        (" " * 100_000, 97, (782, 782), (782, 782)),
        ("!" * 100_000, 97, (6_250, 12_500), (6_250, 12_500)),
        ("中" * 100_000, 97, (100_000, 100_000), (100_000, 100_000)),
        ("\U0001f642" * 50_000, 48, (50_000, 100_000), (50_000, 100_000)),
        ("/\n" * 50_000, 97, (50_000, 50_000), (50_000, 50_000)),
        # A periodic run of 26 letters: the forced cuts add 29 (o200k) and 37 (cl100k) tokens.
        (PERIODIC_LETTERS, 97, (38_461, 46_153), (38_490, 46_190)),
    ],
    ids=["a", "space", "bang", "cjk", "emoji", "slash-newline", "periodic-letters"],
)
def test_fixed_long_runs(
    counter: TokenCounter, text: str, forced: int, plain: tuple[int, int], segments: tuple[int, int]
) -> None:
    """(o200k_base, cl100k_base) counts: tiktoken's, and the sum over the cut segments."""
    cuts = plan_cuts(text)
    assert cuts.forced == len(cuts.points) == forced
    for encoding, whole, cut in zip(("o200k_base", "cl100k_base"), plain, segments, strict=True):
        assert _plain(counter, encoding, text) == whole
        assert sum(_plain(counter, encoding, s) for s in cuts.segments(text)) == cut
        assert counter.count_text(encoding, text) == cut + forced * FORCED_CUT_ALLOWANCE


@pytest.mark.parametrize(
    "text",
    [
        "中文的句子很长\uff0c但是有标点符号\u3002" * 2000,  # CJK prose with no space
        '{"key":"value","other":["thing","more"]},' * 3000,  # compact JSON
        "https://example.com/" + "path/segment/" * 5000,  # a long URL
    ],
    ids=["cjk-prose", "json", "url"],
)
@pytest.mark.parametrize("encoding", ENCODING_NAMES)
def test_natural_cuts_count_exactly(counter: TokenCounter, encoding: str, text: str) -> None:
    cuts = plan_cuts(text)
    assert cuts.points
    assert cuts.forced == 0
    assert counter.count_text(encoding, text) == _plain(counter, encoding, text)


def test_surrogate_pairs_count_as_the_characters_they_spell(counter: TokenCounter) -> None:
    # tiktoken joins a pair written as two code points; a cut must not separate them.
    pairs = "\ud83d\ude42" * 50_000
    for encoding in ENCODING_NAMES:
        assert counter.count_text(encoding, pairs) - plan_cuts(pairs).forced * FORCED_CUT_ALLOWANCE == (
            _plain(counter, encoding, "\U0001f642" * 50_000)
        )
        assert counter.count_text(encoding, "\ud800" * 5000) > 0  # lone surrogates: no error


# --- 2 MB of hostile input ---------------------------------------------------------------------


# (text, tokens of its segments with o200k_base and cl100k_base, forced cuts). For each but
# "space" those token counts are tiktoken's own for the whole text; on 2 MB of spaces
# tiktoken's o200k_base panics (a fancy-regex stack overflow), and its cl100k_base gives 15,625.
HOSTILE_2MB = [
    ("letter", "a" * MB2, 250_000, 250_000, 1953),
    ("punctuation", "!" * MB2, 125_000, 250_000, 1953),
    ("digit", "7" * MB2, 666_667, 666_667, 0),
    ("cjk", "中" * (MB2 // 3), 666_666, 666_666, 651),
    ("emoji", "\U0001f642" * (MB2 // 4), 500_000, 1_000_000, 488),
    ("space", " " * MB2, 15_625, 15_625, 1953),
    ("newline", "\n" * MB2, 125_000, 62_500, 1953),
    ("slash-newline", "/\n" * (MB2 // 2), 1_000_000, 1_000_000, 1953),
]


@pytest.mark.parametrize(
    ("text", "o200k", "cl100k", "forced"), [case[1:] for case in HOSTILE_2MB], ids=[c[0] for c in HOSTILE_2MB]
)
def test_2mb_repeated_inputs_are_counted(
    counter: TokenCounter, text: str, o200k: int, cl100k: int, forced: int
) -> None:
    cuts = plan_cuts(text)
    assert cuts.forced == len(cuts.points) == forced
    assert max(map(len, cuts.segments(text))) <= (K if forced else len(text))
    assert counter.count_text("o200k_base", text) == o200k + forced * FORCED_CUT_ALLOWANCE
    assert counter.count_text("cl100k_base", text) == cl100k + forced * FORCED_CUT_ALLOWANCE


@pytest.mark.parametrize("shape", ["random-letters", "random-punctuation", "random-cjk", "base64", "latin-1"])
def test_2mb_random_inputs_are_counted(counter: TokenCounter, shape: str) -> None:
    rng = _rng(shape)
    text = {
        "random-letters": lambda: "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=MB2)),
        "random-punctuation": lambda: "".join(rng.choices("!#$%&()*+,-.:;<=>?@[]^_{|}~", k=MB2)),
        "random-cjk": lambda: "".join(map(chr, rng.choices(range(0x4E00, 0xA000), k=MB2 // 3))),
        "base64": lambda: base64.b64encode(rng.randbytes(MB2 * 3 // 4)).decode(),
        "latin-1": lambda: rng.randbytes(MB2).decode("latin-1"),
    }[shape]()
    cuts = plan_cuts(text)
    if shape in ("base64", "latin-1"):
        assert cuts == Cuts()  # digits and spaces break their runs: counted whole
    else:
        assert cuts.forced >= len(text) // K
        assert max(map(len, cuts.segments(text))) <= K
    for encoding in ENCODING_NAMES:
        counted = counter.count_text(encoding, text)
        assert len(text) // 4 < counted <= len(text.encode()) + cuts.forced * FORCED_CUT_ALLOWANCE


async def test_async_counts_hostile_input_off_the_loop(
    counter: TokenCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    real = anyio.to_thread.run_sync

    async def spy(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        calls.append(func)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", spy)
    text = " " * MB2  # plain tiktoken's o200k_base panics on this
    expected = 15_625 + 1953 * FORCED_CUT_ALLOWANCE
    assert await counter.acount_text("o200k_base", text) == expected
    frame = counter.count_prompt("o200k_base", [{"role": "user", "content": ""}])
    assert await counter.acount_prompt("o200k_base", [{"role": "user", "content": text}]) == frame + expected
    assert await counter.acount_pieces("o200k_base", [text[:1000], text[1000:]]) == expected
    assert len(calls) == 3
