"""Prices: versioned per-model rates from TOML tables, and the exact cost of a request (SPEC §2)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from tollway.pricing.book import PriceBook
from tollway.pricing.cost import cost_nanos, cost_usd, worst_case_nanos
from tollway.pricing.price import Price, format_us, make_price, rates_text
from tollway.pricing.rates import PriceError
from tollway.pricing.table import check_served, load_price_book, load_price_file

__all__ = [
    "Price",
    "PriceBook",
    "PriceError",
    "bundled_pricing_dir",
    "check_served",
    "cost_nanos",
    "cost_usd",
    "format_us",
    "load_price_book",
    "load_price_file",
    "make_price",
    "rates_text",
    "worst_case_nanos",
]


def bundled_pricing_dir() -> Path:
    """The folder of the price tables shipped with tollway.

    A wheel carries them inside the package as ``tollway/pricing_tables`` (mapped at build
    time); a source checkout or editable install reads the top-level ``pricing/`` folder,
    three levels above this file (src/tollway/pricing/__init__.py).
    """
    packaged = resources.files("tollway") / "pricing_tables"
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "pricing"
