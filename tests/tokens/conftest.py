"""Shared fixtures: each encoding is loaded once per test session (0.2-0.4 s apiece)."""

from __future__ import annotations

import pytest
import tiktoken

from tollway.tokens import ENCODING_NAMES, TokenCounter, load_encoding


@pytest.fixture(scope="session")
def encodings() -> dict[str, tiktoken.Encoding]:
    return {name: load_encoding(name) for name in ENCODING_NAMES}


@pytest.fixture(scope="session")
def counter(encodings: dict[str, tiktoken.Encoding]) -> TokenCounter:
    return TokenCounter(encodings.values())
