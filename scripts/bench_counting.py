"""CPU of counting tokens, plain tiktoken against tollway's long-run cutting, per input shape.

    python scripts/bench_counting.py [--mb 2] [--old-mb MB] [--seed N]
    python scripts/bench_counting.py --sweep        # cost and count change by cut length K
    python scripts/bench_counting.py --search 300   # hunt for the worst count change per cut

Default: for each shape (about ``--mb`` MB of UTF-8) and encoding, one count the old way
(``len(enc.encode_ordinary(text))``) and one the new way (`TokenCounter.count_text`), each
timed with ``time.process_time``: CPU seconds, MB/s of UTF-8, the token counts and their
difference, and the forced cuts (each adds `FORCED_CUT_ALLOWANCE`). ``--old-mb`` measures the
old way on a smaller prefix and scales its time up linearly (an under-estimate: the old cost
per character grows with the length of a run); the table says so. Takes ~30 s at 2 MB.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import os
import random
import sys
import time
from collections.abc import Callable, Iterator

import tiktoken

from tollway.tokens import ENCODING_NAMES, TokenCounter, load_encoding
from tollway.tokens.counter import FORCED_CUT_ALLOWANCE, MAX_RUN_CHARS
from tollway.tokens.runs import plan_cuts

PROSE = (
    "It was a bright cold day in April, and the clocks were striking thirteen. The committee met "
    "on Tuesday to review the budget; nobody agreed on the numbers, so they adjourned until the "
    "following week. Meanwhile, the engineers rewrote the parser (again) and measured it twice.\n"
)


def shapes(mb: float, rng: random.Random) -> dict[str, str]:
    """Name -> text of about ``mb`` MB of UTF-8."""
    n = int(mb * 1_000_000)
    lower = "abcdefghijklmnopqrstuvwxyz"
    return {
        "letter a": "a" * n,
        "punct !": "!" * n,
        "digit 7": "7" * n,
        "cjk 中": "中" * (n // 3),
        "emoji 🙂": "\U0001f642" * (n // 4),
        "base64": base64.b64encode(rng.randbytes(n * 3 // 4)).decode(),
        "latin-1 bytes": rng.randbytes(n).decode("latin-1"),
        "english prose": (PROSE * (n // len(PROSE) + 1))[:n],
        # Beyond the brief: the other shapes that make one long piece.
        "spaces": " " * n,
        "newlines": "\n" * n,
        "'/\\n' pairs": "/\n" * (n // 2),
        "random a-z": "".join(rng.choices(lower, k=n)),
        "random cjk": "".join(map(chr, rng.choices(range(0x4E00, 0xA000), k=n // 3))),
        # The worst the new way leaves uncut: runs of exactly MAX_RUN_CHARS characters.
        f"a-z words of {MAX_RUN_CHARS}": " ".join(
            "".join(rng.choices(lower, k=MAX_RUN_CHARS)) for _ in range(n // (MAX_RUN_CHARS + 1))
        ),
    }


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2: a Rust panic prints its message there."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def plain_count(enc: tiktoken.Encoding, texts: list[str]) -> int:
    return sum(len(enc.encode_ordinary(text)) for text in texts)


def cpu(fn: Callable[[], int]) -> tuple[float, int | str]:
    """(CPU seconds, result), the result being "PANIC" when tiktoken panicked."""
    start = time.process_time()
    try:
        with quiet_stderr():
            result: int | str = fn()
    except BaseException as exc:  # pyo3's PanicException is a BaseException
        if type(exc).__name__ != "PanicException":
            raise
        result = "PANIC"
    return time.process_time() - start, result


def table(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    print(f"seed {args.seed}; about {args.mb} MB per shape; K = MAX_RUN_CHARS = {MAX_RUN_CHARS}")
    texts = shapes(args.mb, rng)
    encodings = {name: load_encoding(name) for name in ENCODING_NAMES}
    counter = TokenCounter(encodings.values())
    old_mb = args.old_mb or args.mb
    if old_mb < args.mb:
        print(f"old way timed on the first {old_mb} MB and scaled x{args.mb / old_mb:g} (marked ~)")
    head = (
        f"{'shape':<18} {'encoding':<12} {'old s':>8} {'old MB/s':>9} {'new s':>7} {'new MB/s':>9} "
        f"{'x':>5} {'old tokens':>11} {'new tokens':>11} {'diff':>6} {'forced':>6} {'diff-allow':>10}"
    )
    print(head)
    print("-" * len(head))
    worst_old = worst_new = 0.0
    for shape, text in texts.items():
        mb = len(text.encode()) / 1e6
        cuts = plan_cuts(text)
        for name, enc in encodings.items():
            old_text = text[: int(len(text) * old_mb / args.mb)] if old_mb < args.mb else text
            old_s, old_n = cpu(functools.partial(plain_count, enc, [old_text]))
            scaled = old_mb < args.mb
            old_s *= args.mb / old_mb
            new_s, new_n = cpu(functools.partial(counter.count_text, name, text))
            worst_old, worst_new = max(worst_old, old_s), max(worst_new, new_s)
            mark = "~" if scaled else " "
            if isinstance(old_n, int) and isinstance(new_n, int) and not scaled:
                diff = new_n - old_n
                diff_s, raw_s = f"{diff:+d}", f"{diff - cuts.forced * FORCED_CUT_ALLOWANCE:+d}"
            else:
                diff_s = raw_s = "n/a"
            old_rate = f"{mb / old_s:9.1f}" if isinstance(old_n, int) else f"{'PANIC':>9}"
            print(
                f"{shape:<18} {name:<12} {mark}{old_s:7.3f} {old_rate} {new_s:7.3f} {mb / new_s:9.1f} "
                f"{old_s / new_s:5.1f} {old_n!s:>11} {new_n!s:>11} {diff_s:>6} {cuts.forced:>6} {raw_s:>10}"
            )
    print(f"\nworst CPU per call: old {worst_old:.3f} s, new {worst_new:.3f} s")
    print(
        f"diff = new - old tokens; diff-allow = the same without the {FORCED_CUT_ALLOWANCE} tokens "
        "added per forced cut, i.e. what cutting alone changed"
    )


def sweep(args: argparse.Namespace) -> None:
    """CPU per character and count change, by cut length K, on the shapes that get cut."""
    rng = random.Random(args.seed)
    print(f"seed {args.seed}; {args.mb} MB per shape; ns per character (worse of the two encodings)")
    n = int(args.mb * 1_000_000)
    lower = "abcdefghijklmnopqrstuvwxyz"
    texts = {
        "a": "a" * n,
        "!": "!" * n,
        "中": "中" * (n // 3),
        "spaces": " " * n,
        "newlines": "\n" * n,
        "random a-z": "".join(rng.choices(lower, k=n)),
        "random punct": "".join(rng.choices("!#$%&()*+,-.:;<=>?@[]^_{|}~", k=n)),
        "random cjk": "".join(map(chr, rng.choices(range(0x4E00, 0xA000), k=n // 3))),
    }
    encodings = [load_encoding(name) for name in ENCODING_NAMES]
    o200k = encodings[ENCODING_NAMES.index("o200k_base")]
    measured = ("random a-z", "random punct")
    whole = {shape: plain_count(o200k, [texts[shape]]) for shape in measured}
    print(f"{'K':>6} " + " ".join(f"{s:>12}" for s in texts) + "  o200k tokens added per cut (a-z, punct)")
    for k in (128, 256, 512, 1024, 2048, 4096, 8192, 16384):
        cells, added = [], []
        for shape, text in texts.items():
            cuts = plan_cuts(text, k)
            segments = list(cuts.segments(text))
            worst = 0.0
            for enc in encodings:
                seconds, got = cpu(functools.partial(plain_count, enc, segments))
                worst = max(worst, seconds)
                if shape in measured and enc is o200k and isinstance(got, int):
                    added.append(f"{(got - whole[shape]) / max(1, cuts.forced):+.2f}")
            cells.append(f"{worst * 1e9 / len(text):12.0f}")
        print(f"{k:>6} " + " ".join(cells) + "  " + ", ".join(added))


ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyz",
    "ab",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "!?.,;:-_=+*/\\|()[]{}<>'\"`~@#$%^&",
    "=-",
    "*#",
    "中文字国人的一是不了",
    "\u0301\u0300",
    "\U0001f642\U0001f600\U0001f44d\U0001f3fd\u200d",
    " \t\n",
    "\n\r/",
    "αβγδε",
    "абвгд",
    "ـَُِّ",
    "กิขีคึ",
    "'sdtmlvre",
    "àáâãäå",
    "0123456789",
]


def search(args: argparse.Namespace) -> None:
    """Random texts with one forced cut (K = 32), hill-climbed towards the extremes of
    (tokens of the two segments) - (tiktoken's tokens of the whole)."""
    rng = random.Random(args.seed)
    k = 32
    encodings = [load_encoding(name) for name in ENCODING_NAMES]
    print(f"seed {args.seed}; {args.search:g} s; one forced cut per text, K = {k}")

    def change(enc: tiktoken.Encoding, text: str) -> int | None:
        cuts = plan_cuts(text, k)
        if cuts.forced != 1 or len(cuts.points) != 1:
            return None
        (p,) = cuts.points
        whole = len(enc.encode_ordinary(text))
        return len(enc.encode_ordinary(text[:p])) + len(enc.encode_ordinary(text[p:])) - whole

    def mutate(text: str) -> str:
        chars = list(text)
        i = rng.randrange(len(chars))
        op = rng.random()
        if op < 0.5:
            chars[i] = rng.choice(rng.choice(ALPHABETS))
        elif op < 0.75:
            chars.insert(i, rng.choice(rng.choice(ALPHABETS)))
        elif op < 0.9 and len(chars) > k + 2:
            del chars[i]
        else:
            j = rng.randrange(len(chars))
            chars[i:i] = chars[j : j + rng.randint(1, 6)]
        return "".join(chars)

    extremes: dict[tuple[str, int], tuple[int, str]] = {}
    deadline = time.monotonic() + args.search
    tried = 0
    while time.monotonic() < deadline:
        enc = rng.choice(encodings)
        alphabet = rng.choice(ALPHABETS)
        length = rng.randint(k + 1, 2 * k - 4)
        unit = "".join(rng.choices(alphabet, k=rng.randint(1, 8)))
        start = (unit * length)[:length] if rng.random() < 0.5 else "".join(rng.choices(alphabet, k=length))
        for sign in (1, -1):
            text, value = start, change(enc, start)
            if value is None:
                break
            for _ in range(200):
                candidate = mutate(text)
                got = change(enc, candidate)
                tried += 1
                if got is not None and sign * got >= sign * value:
                    text, value = candidate, got
            key = (enc.name, sign)
            if key not in extremes or sign * value > sign * extremes[key][0]:
                extremes[key] = (value, text)
    print(f"{tried} texts tried")
    for (name, sign), (value, text) in sorted(extremes.items()):
        print(f"{name:<12} {'max' if sign > 0 else 'min'} {value:+d}  {text!r}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=float, default=2.0, help="MB of UTF-8 per shape (default 2)")
    parser.add_argument("--old-mb", type=float, default=None, help="time the old way on this many MB")
    parser.add_argument("--seed", type=int, default=20_240_611)
    parser.add_argument("--sweep", action="store_true", help="cost and count change by cut length")
    parser.add_argument("--search", type=float, default=0.0, metavar="SECONDS", help="hunt for extremes")
    args = parser.parse_args()
    if args.search:
        search(args)
    elif args.sweep:
        sweep(args)
    else:
        table(args)


if __name__ == "__main__":
    main()
