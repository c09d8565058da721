"""Fixtures shared by every suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dbs import drop_database, new_database_url
from tollway.tokens import TokenCounter


@pytest.fixture(name="counter", scope="session")
def fixture_counter() -> TokenCounter:
    # Loading an encoding takes about half a second: once per session.
    return TokenCounter(("o200k_base", "cl100k_base"))


@pytest.fixture(name="database_url")
def fixture_database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on the engine under test (see tests/dbs.py)."""
    url = new_database_url(tmp_path)
    yield url
    drop_database(url)
