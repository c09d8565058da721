"""Fixtures shared by every suite."""

from __future__ import annotations

import pytest

from tollway.tokens import TokenCounter


@pytest.fixture(name="counter", scope="session")
def fixture_counter() -> TokenCounter:
    # Loading an encoding takes about half a second: once per session.
    return TokenCounter(("o200k_base", "cl100k_base"))
