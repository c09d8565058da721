"""Which entry is in force when, and refusing to serve a model without a price."""

from __future__ import annotations

from pathlib import Path

import pytest

from tollway.errors import ConfigError
from tollway.pricing import Price, PriceBook, bundled_pricing_dir, check_served, load_price_book, make_price

JAN = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z in microseconds
FEB = 1_706_745_600_000_000  # 2024-02-01T00:00:00Z
MAR = 1_709_251_200_000_000  # 2024-03-01T00:00:00Z


def price(model: str, at_us: int, input: str = "1") -> Price:
    return make_price(model, at_us, input=input, output="2", source="t.toml")


@pytest.fixture(name="book")
def fixture_book() -> PriceBook:
    # Deliberately out of order: the book sorts each model's entries itself.
    return PriceBook(
        [
            price("a", MAR, "3"),
            price("a", JAN, "1"),
            price("b", FEB),
            price("a", FEB, "2"),
            price("future", MAR),
        ],
        folder="prices/",
    )


def test_newest_effective_entry_wins(book: PriceBook) -> None:
    assert [p.input for p in book.entries("a")] == [1, 2, 3]

    def current_input(at_us: int) -> object:
        found = book.current("a", at_us)
        return None if found is None else found.input

    assert current_input(JAN - 1) is None
    assert current_input(JAN) == 1  # an entry is in force from its effective_from, inclusive
    assert current_input(FEB - 1) == 1
    assert current_input(FEB) == 2
    assert current_input(MAR + 10**12) == 3


def test_future_entry_is_not_yet_in_force(book: PriceBook) -> None:
    assert book.current("future", FEB) is None
    assert [p.model for p in book.in_force(FEB)] == ["a", "b"]
    in_march = book.in_force(MAR)
    assert [p.id for p in in_march] == [
        "a@2024-03-01T00:00:00Z",
        "b@2024-02-01T00:00:00Z",
        "future@2024-03-01T00:00:00Z",
    ]


def test_lookups(book: PriceBook) -> None:
    assert book.models() == ["a", "b", "future"]
    assert book.entries("unknown") == []
    assert book.current("unknown", MAR) is None
    assert len(book) == 5
    found = book.by_id("a@2024-02-01T00:00:00Z")
    assert found is not None
    assert found.input == 2
    assert book.by_id("a@2024-02-02T00:00:00Z") is None


def test_book_refuses_two_entries_for_one_moment() -> None:
    with pytest.raises(ValueError, match="same id 'a@2024-01-01T00:00:00Z'"):
        PriceBook([price("a", JAN), price("a", JAN, "5")])


def test_check_served_accepts_priced_models(book: PriceBook) -> None:
    check_served(book, ["a", "b"], FEB, "tollway.toml")
    check_served(book, [], FEB, "tollway.toml")


def test_check_served_refuses_an_unpriced_model(book: PriceBook) -> None:
    with pytest.raises(ConfigError) as caught:
        check_served(book, ["a", "gpt-x"], FEB, "tollway.toml")
    assert str(caught.value) == (
        "tollway.toml: [[models]] 'gpt-x': no price in force in prices/"
        " — tollway never serves a model for free by accident"
    )


def test_check_served_refuses_a_future_only_model(book: PriceBook) -> None:
    with pytest.raises(
        ConfigError, match=r"\[\[models\]\] 'future': no price in force in prices/ \(its first price"
    ):
        check_served(book, ["future"], FEB, "tollway.toml")
    check_served(book, ["future"], MAR, "tollway.toml")


def test_price_change_in_a_loaded_folder(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(
        '[[prices]]\nmodel = "m"\neffective_from = 2024-01-01T00:00:00Z\ninput = "1"\noutput = "1"\n'
        '[[prices]]\nmodel = "m"\neffective_from = 2024-03-01T00:00:00Z\ninput = "0.5"\noutput = "1"\n',
        encoding="utf-8",
    )
    book = load_price_book(tmp_path)
    assert book.folder == str(tmp_path)
    jan, mar = book.current("m", FEB), book.current("m", MAR)
    assert jan is not None
    assert mar is not None
    assert (str(jan.input), str(mar.input)) == ("1", "0.5")


def test_shipped_o3_price_cut() -> None:
    book = load_price_book(bundled_pricing_dir())
    launch, cut = book.entries("o3")
    assert launch.effective_from == "2025-04-16T00:00:00Z"
    assert cut.effective_from == "2025-06-10T00:00:00Z"
    assert book.current("o3", cut.effective_from_us - 1) == launch
    assert book.current("o3", cut.effective_from_us) == cut


def test_shipped_book_serves_the_demo_models_now() -> None:
    book = load_price_book(bundled_pricing_dir())
    check_served(book, ["demo", "demo-no-usage"], FEB, "<built-in defaults>")
