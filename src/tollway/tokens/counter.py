"""Token counting for prompts and relayed completions, safe to call from the event loop.

Counting costs CPU linear in the input: a run of more than `MAX_RUN_CHARS` characters with no
whitespace or digit in it (or of whitespace only, or of "\r", "\n" and "/") is cut into
slices before it reaches tiktoken (see `tollway.tokens.runs`). Text without such a run is
counted exactly as tiktoken counts it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Self

import tiktoken
from anyio import to_thread

from tollway.tokens.chat import PromptTexts, prompt_texts
from tollway.tokens.encodings import ENCODING_NAMES, EncodingError, load_encoding
from tollway.tokens.runs import MAX_RUN_CHARS, plan_cuts

__all__ = ["DEFAULT_OFFLOAD_CHARS", "FORCED_CUT_ALLOWANCE", "MAX_RUN_CHARS", "TokenCounter"]

# Below this many characters encoding takes under half a millisecond (tiktoken measured ~20 MB/s
# here), which is not worth a hop to a worker thread and back.
DEFAULT_OFFLOAD_CHARS = 8192

# Tokens added per forced cut (one inside a long run, not at a piece boundary), so that a
# count is not below plain tiktoken's. BPE is not monotonic: cutting a piece can undo an
# unlucky early merge, so a forced cut alone changes the count by -4..+5 tokens (the extremes
# a hill-climbing search found, scripts/bench_counting.py --search; over 244,000 random
# texts with forced cuts at K = 1,024 it was -2..+5). With the allowance a count is 0..+9
# tokens per forced cut above tiktoken's in every case measured. That is an observed bound,
# not a proven one; 0 here would make runs of one repeated character exact instead.
FORCED_CUT_ALLOWANCE = 4


class TokenCounter:
    """Counts tokens with a fixed set of encodings, loaded once when the app starts.

    Counts are tiktoken's ``encode_ordinary`` lengths, except that a run longer than
    `MAX_RUN_CHARS` characters is encoded in slices (see `tollway.tokens.runs`) and each
    forced cut among them adds `FORCED_CUT_ALLOWANCE` tokens, which keeps the count at or
    above tiktoken's in every case measured.

    Sync methods encode on the calling thread. The ``acount_*`` methods give the same
    numbers but move inputs longer than ``offload_chars`` characters to a worker thread:
    tiktoken releases the GIL while encoding, so a megabyte prompt does not stall the loop.
    Instances are immutable after construction and safe to share between threads.
    """

    __slots__ = ("_encodings", "_offload_chars")

    def __init__(
        self,
        encodings: Iterable[str | tiktoken.Encoding] = ENCODING_NAMES,
        *,
        offload_chars: int = DEFAULT_OFFLOAD_CHARS,
    ) -> None:
        """Load the named encodings (0.2-0.4 s each, blocking; see `load`).

        Already built ``tiktoken.Encoding`` objects are taken as they are, so several
        counters (or tests) can share one set of encodings.
        """
        if offload_chars < 0:
            raise ValueError("offload_chars must be >= 0")
        loaded: dict[str, tiktoken.Encoding] = {}
        for item in encodings:
            if isinstance(item, tiktoken.Encoding):
                loaded.setdefault(item.name, item)
            elif item not in loaded:
                loaded[item] = load_encoding(item)
        self._encodings = loaded
        self._offload_chars = offload_chars

    @classmethod
    async def load(
        cls,
        names: Iterable[str] = ENCODING_NAMES,
        *,
        offload_chars: int = DEFAULT_OFFLOAD_CHARS,
    ) -> Self:
        """Build a counter in a worker thread, so start-up never blocks the event loop."""
        build = functools.partial(cls, tuple(names), offload_chars=offload_chars)
        return await to_thread.run_sync(build)

    @property
    def encoding_names(self) -> tuple[str, ...]:
        return tuple(self._encodings)

    @property
    def offload_chars(self) -> int:
        return self._offload_chars

    def encoding(self, name: str) -> tiktoken.Encoding:
        try:
            return self._encodings[name]
        except KeyError:
            loaded = ", ".join(self._encodings) or "none"
            raise EncodingError(f"encoding {name!r} is not loaded (loaded: {loaded})") from None

    def count_text(self, encoding: str, text: str) -> int:
        """Tokens in ``text``. Special-token text such as "<|endoftext|>" counts as ordinary text."""
        return _count_text(self.encoding(encoding), text)

    def count_pieces(self, encoding: str, pieces: Iterable[str]) -> int:
        """Tokens in the concatenation of ``pieces``, e.g. the deltas of a streamed completion.

        Pieces are joined before encoding: a token can span two deltas, so summing
        per-piece counts would over-count.
        """
        return self.count_text(encoding, "".join(pieces))

    def count_prompt(
        self,
        encoding: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Any] | None = None,
    ) -> int:
        """Prompt tokens of a chat-completions request, by OpenAI's published rule.

        Each message costs 3 tokens plus the tokens of each string field (role, content,
        name, tool_call_id, ...); a ``name`` costs 1 more; the reply is primed with 3. Of a
        list ``content`` only the text of "text" (and "refusal") parts is counted: image,
        audio and file parts are not counted at all. Assistant ``tool_calls`` count their
        function name and arguments strings.

        ``tools`` are counted as the tokens of each tool's compact JSON. This is an
        estimate: OpenAI's internal formatting of tool definitions is unpublished.

        Values of an unexpected shape are ignored, never raised on.
        """
        return _count_prompt(self.encoding(encoding), prompt_texts(messages, tools))

    async def acount_text(self, encoding: str, text: str) -> int:
        """`count_text`, off the event loop when ``text`` is long."""
        enc = self.encoding(encoding)
        if len(text) <= self._offload_chars:
            return _count_text(enc, text)
        return await to_thread.run_sync(_count_text, enc, text)

    async def acount_pieces(self, encoding: str, pieces: Iterable[str]) -> int:
        """`count_pieces`, off the event loop when the joined text is long."""
        return await self.acount_text(encoding, "".join(pieces))

    async def acount_prompt(
        self,
        encoding: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Any] | None = None,
    ) -> int:
        """`count_prompt`, off the event loop when the prompt's text is long."""
        enc = self.encoding(encoding)
        # Walking the request is cheap Python; only the encoding is worth moving.
        prompt = prompt_texts(messages, tools)
        if prompt.chars <= self._offload_chars:
            return _count_prompt(enc, prompt)
        return await to_thread.run_sync(_count_prompt, enc, prompt)


def _count_text(enc: tiktoken.Encoding, text: str) -> int:
    cuts = plan_cuts(text)
    if not cuts.points:
        return len(enc.encode_ordinary(text))
    encoded = sum(len(enc.encode_ordinary(segment)) for segment in cuts.segments(text))
    return encoded + cuts.forced * FORCED_CUT_ALLOWANCE


def _count_prompt(enc: tiktoken.Encoding, prompt: PromptTexts) -> int:
    return prompt.overhead + sum(_count_text(enc, text) for text in prompt.texts)
