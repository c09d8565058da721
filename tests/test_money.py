import pytest

from tollway.money import MoneyError, format_usd, parse_usd


@pytest.mark.parametrize(
    ("text", "nanos"),
    [("25.00", 25_000_000_000), ("0.000000001", 1), ("1", 1_000_000_000), (" 3.5 ", 3_500_000_000)],
)
def test_parse_exact(text: str, nanos: int) -> None:
    assert parse_usd(text) == nanos


@pytest.mark.parametrize("bad", ["", "abc", "1e3", "NaN", "Infinity", "0.0000000001", "1" * 41, "--1"])
def test_parse_rejects(bad: str) -> None:
    with pytest.raises(MoneyError):
        parse_usd(bad)


def test_parse_rejects_numbers_and_negatives() -> None:
    with pytest.raises(MoneyError, match="decimal string"):
        parse_usd(25.0)
    with pytest.raises(MoneyError, match="negative"):
        parse_usd("-1")
    assert parse_usd("-1.5", allow_negative=True) == -1_500_000_000


def test_format() -> None:
    assert format_usd(1_500_000) == "0.001500000"
    assert format_usd(-25_000_000_001) == "-25.000000001"
    assert format_usd(0) == "0.000000000"
