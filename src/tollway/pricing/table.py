"""Price tables: every ``*.toml`` in a folder, decoded with msgspec and validated (SPEC §2).

Every problem is one `ConfigError` naming the file, the entry and what is wrong, because a
price table that loads wrongly bills wrongly.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import msgspec
from msgspec import Struct, field

from tollway.errors import ConfigError
from tollway.pricing.book import PriceBook
from tollway.pricing.price import Price, datetime_to_us, make_price
from tollway.pricing.rates import PriceError

__all__ = ["Price", "PriceBook", "check_served", "load_price_book", "load_price_file"]

_EXAMPLE_TIME = "2024-07-18T00:00:00Z"


class _File(Struct, forbid_unknown_fields=True):
    # Free-form: where the numbers come from and when.  Kept in the file, not interpreted.
    source: Any = None
    prices: list[dict[str, Any]] = field(default_factory=list)


class _Entry(Struct, forbid_unknown_fields=True):
    # Values are typed Any so that a TOML float or a local datetime gets a specific message
    # from our own checks instead of a generic type error.
    model: str
    effective_from: Any
    input: Any
    output: Any
    cached_input: Any = None
    cache_write: Any = None
    reasoning: Any = None
    request: Any = "0"
    cache_write_1h: Any = None


_FIELDS = ", ".join(_Entry.__struct_fields__)


def load_price_book(folder: Path) -> PriceBook:
    """Load every ``*.toml`` in `folder` (sorted by name) into one book; `ConfigError` on any problem."""
    if not folder.exists():
        raise ConfigError(f"{folder}: price folder not found (set [pricing] dir in the configuration)")
    if not folder.is_dir():
        raise ConfigError(f"{folder}: the price folder is not a folder")
    seen: dict[tuple[str, int], str] = {}
    prices: list[Price] = []
    for path in sorted(p for p in folder.glob("*.toml") if p.is_file()):
        for index, price in enumerate(load_price_file(path)):
            where = f"{path}: {_label(index, price.model)}"
            key = (price.model, price.effective_from_us)
            if key in seen:
                raise ConfigError(
                    f"{where}: another entry for {price.model!r} already takes effect at "
                    f"{price.effective_from} ({seen[key]}); give the new price a later effective_from"
                )
            seen[key] = where
            prices.append(price)
    return PriceBook(prices, folder=str(folder))


def load_price_file(path: Path) -> list[Price]:
    """One table's entries in file order; duplicates across files are `load_price_book`'s concern."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the price table: {exc.strerror}") from exc
    try:
        table = msgspec.toml.decode(raw, type=_File)
    except msgspec.ValidationError as exc:
        raise ConfigError(
            f"{path}: {_explain(str(exc))} (a price table holds [source] and [[prices]])"
        ) from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    prices: list[Price] = []
    for index, raw_entry in enumerate(table.prices):
        model = raw_entry.get("model")
        where = f"{path}: {_label(index, model if isinstance(model, str) else None)}"
        try:
            prices.append(_decode_entry(raw_entry, path.name))
        except msgspec.ValidationError as exc:
            problem = _explain(str(exc))
            if "unknown field" in problem:
                problem += f" (an entry may have: {_FIELDS})"
            raise ConfigError(f"{where}: {problem}") from exc
        except PriceError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    return prices


def check_served(book: PriceBook, served_models: Iterable[str], at_us: int, source: str) -> None:
    """Refuse to start when a served model has no price in force at `at_us` (a future-only one counts)."""
    for model in served_models:
        if book.current(model, at_us) is not None:
            continue
        entries = book.entries(model)
        later = f" (its first price takes effect at {entries[0].effective_from})" if entries else ""
        raise ConfigError(
            f"{source}: [[models]] {model!r}: no price in force in {book.folder}{later}"
            " — tollway never serves a model for free by accident"
        )


def _decode_entry(raw_entry: dict[str, Any], file_name: str) -> Price:
    entry = msgspec.convert(raw_entry, _Entry)
    return make_price(
        entry.model,
        _effective_from_us(entry.effective_from),
        input=entry.input,
        output=entry.output,
        cached_input=entry.cached_input,
        cache_write=entry.cache_write,
        reasoning=entry.reasoning,
        request=entry.request,
        cache_write_1h=entry.cache_write_1h,
        source=file_name,
    )


def _effective_from_us(value: object) -> int:
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            # A local time means a different instant on every server: the switch must be unambiguous.
            raise PriceError(
                f"effective_from: {value.isoformat()} has no timezone; write an offset datetime "
                f"such as {_EXAMPLE_TIME}"
            )
        return datetime_to_us(value)
    if isinstance(value, date):
        raise PriceError(f"effective_from: needs a time and a timezone, e.g. {_EXAMPLE_TIME}")
    if isinstance(value, str):
        raise PriceError(f"effective_from: write an unquoted TOML datetime such as {_EXAMPLE_TIME}")
    raise PriceError(f"effective_from: must be a TOML offset datetime such as {_EXAMPLE_TIME}")


def _label(index: int, model: str | None) -> str:
    return f"[[prices]] #{index + 1}" + (f" ({model!r})" if model is not None else "")


def _explain(message: str) -> str:
    """msgspec's ``Object contains unknown field `x` - at `$.y``` as ``y: unknown field `x` ...``."""
    text, sep, where = message.rpartition(" - at `$")
    if not sep:
        text, where = message, ""
    text = text.replace("Object contains ", "").replace("Object missing ", "missing ")
    where = where.rstrip("`").lstrip(".")
    return f"{where}: {text}" if where else text
