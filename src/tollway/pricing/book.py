"""All loaded price entries, indexed for "which price applies to this model at this moment"."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from itertools import pairwise

from tollway.pricing.price import Price

__all__ = ["PriceBook"]


class PriceBook:
    """Immutable after construction: each model's entries sorted by `effective_from_us`.

    An entry is in force from its `effective_from_us` until the next entry for the same model
    takes over; older entries stay for history (and for records billed under them).
    """

    __slots__ = ("_by_id", "_entries", "_starts", "folder")

    def __init__(self, prices: Iterable[Price], folder: str = "") -> None:
        grouped: dict[str, list[Price]] = {}
        for price in prices:
            grouped.setdefault(price.model, []).append(price)
        for entries in grouped.values():
            entries.sort(key=lambda p: p.effective_from_us)
            for older, newer in pairwise(entries):
                if older.effective_from_us == newer.effective_from_us:
                    # Two prices for one moment would make billing depend on file order.
                    raise ValueError(f"two price entries with the same id {newer.id!r}")
        self.folder = folder
        self._entries: dict[str, tuple[Price, ...]] = {m: tuple(grouped[m]) for m in sorted(grouped)}
        self._starts: dict[str, tuple[int, ...]] = {
            m: tuple(p.effective_from_us for p in entries) for m, entries in self._entries.items()
        }
        self._by_id: dict[str, Price] = {p.id: p for entries in self._entries.values() for p in entries}

    def current(self, model: str, at_us: int) -> Price | None:
        """The entry with the greatest effective_from <= at_us, or None if none is in force yet."""
        starts = self._starts.get(model)
        if not starts:
            return None
        index = bisect_right(starts, at_us) - 1
        return self._entries[model][index] if index >= 0 else None

    def models(self) -> list[str]:
        """Every model with at least one entry (in force or not), sorted."""
        return list(self._entries)

    def entries(self, model: str) -> list[Price]:
        """A model's entries, oldest first; empty for an unknown model."""
        return list(self._entries.get(model, ()))

    def in_force(self, at_us: int) -> list[Price]:
        """The entry in force at `at_us` for each model, by model name; models not yet priced are left out."""
        found = (self.current(model, at_us) for model in self._entries)
        return [price for price in found if price is not None]

    def by_id(self, price_id: str) -> Price | None:
        """The entry with this stable id (``model@effective_from``), e.g. to explain a past bill."""
        return self._by_id.get(price_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __repr__(self) -> str:
        return f"PriceBook(folder={self.folder!r}, models={len(self._entries)}, entries={len(self)})"
