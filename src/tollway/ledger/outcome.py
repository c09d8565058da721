"""Telling a ledger job's caller how it went: SQLite's ledger thread and PostgreSQL's batches alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["deliver"]

T = TypeVar("T")


def deliver(future: asyncio.Future[T], abandoned: Callable[[T], None] | None, ok: bool, value: Any) -> None:
    """On the caller's event loop: answer the caller, or tell `abandoned` what landed without it."""
    if future.cancelled():
        if ok and abandoned is not None:
            abandoned(value)
    elif ok:
        future.set_result(value)
    else:
        future.set_exception(value)
