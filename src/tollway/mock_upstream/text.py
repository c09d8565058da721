"""Deterministic filler words for generated content."""

from __future__ import annotations

# Each word, with its leading space, is exactly one token in both cl100k_base and o200k_base, so a
# proxy that tokenizes the streamed text counts exactly one token per chunk.
WORDS: tuple[str, ...] = (
    " the",
    " of",
    " and",
    " to",
    " in",
    " is",
    " it",
    " for",
    " on",
    " that",
    " with",
    " as",
    " was",
    " at",
    " by",
    " this",
)

# Reasoning text starts elsewhere in the cycle so tests can tell it apart from the answer.
REASONING_OFFSET = 8


def words(count: int, offset: int = 0) -> list[str]:
    """The first `count` words of the cycle starting at `offset`, each with its leading space."""
    size = len(WORDS)
    return [WORDS[(offset + i) % size] for i in range(count)]
