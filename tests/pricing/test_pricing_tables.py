"""Loading price tables: the shipped folder, and one clear error per kind of mistake."""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest

from tollway.errors import ConfigError
from tollway.pricing import bundled_pricing_dir, load_price_book, load_price_file
from tollway.pricing.price import format_us

ENTRY = """
[[prices]]
model = "{model}"
effective_from = {when}
input = {input}
output = "2.00"
{extra}
"""


def entry(
    model: str = "m", when: str = "2024-01-01T00:00:00Z", input: str = '"1.00"', extra: str = ""
) -> str:
    return ENTRY.format(model=model, when=when, input=input, extra=extra)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_folder_is_the_checkout_pricing_folder() -> None:
    folder = bundled_pricing_dir()
    assert folder.is_dir()
    assert (folder / "demo.toml").is_file()


def test_shipped_tables_load_and_say_where_their_numbers_come_from() -> None:
    folder = bundled_pricing_dir()
    book = load_price_book(folder)
    assert {"demo", "demo-no-usage", "gpt-4o-mini", "gpt-4o"} <= set(book.models())
    for path in sorted(folder.glob("*.toml")):
        source = tomllib.loads(path.read_text(encoding="utf-8")).get("source")
        assert isinstance(source, dict), f"{path.name} has no [source] table"
        assert source.get("url") or source.get("note"), f"{path.name}: [source] says nothing"


def test_shipped_demo_prices_are_exact() -> None:
    book = load_price_book(bundled_pricing_dir())
    for model in ("demo", "demo-no-usage"):
        (price,) = book.entries(model)
        assert price.id == f"{model}@2024-01-01T00:00:00Z"
        assert price.source == "demo.toml"
        assert (price.input, price.cached_input, price.cache_write) == (
            Decimal("1.00"),
            Decimal("0.50"),
            Decimal("1.25"),
        )
        assert (price.output, price.reasoning, price.request) == (
            Decimal("2.00"),
            Decimal("3.00"),
            Decimal("0.0001"),
        )
        assert price.input_atto == 10**12
        assert price.cache_write_atto == 1_250_000_000_000
        assert price.request_nanos == 100_000


def test_shipped_openai_caching_rule() -> None:
    # OpenAI does not charge cache writes, and bills reasoning as output.
    book = load_price_book(bundled_pricing_dir())
    for price in book.entries("gpt-4o-mini") + book.entries("o3") + book.entries("gpt-4.1"):
        assert price.source == "openai.toml"
        assert price.cache_write == price.input
        assert price.reasoning == price.output
        assert price.cached_input <= price.input


def test_defaults_are_resolved(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", entry())
    (price,) = load_price_book(tmp_path).entries("m")
    assert price.cached_input == price.cache_write == price.cache_write_1h == price.input == Decimal("1.00")
    assert price.cache_write_1h_atto == price.input_atto
    assert price.reasoning == price.output == Decimal("2.00")
    assert price.request == 0
    assert price.request_nanos == 0


def test_cache_write_1h_defaults_to_cache_write(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", entry(model="a", extra='cache_write = "1.25"'))
    write(tmp_path, "b.toml", entry(model="b", extra='cache_write = "1.25"\ncache_write_1h = "2.000"'))
    write(tmp_path, "c.toml", entry(model="c", extra='cache_write_1h = "0.000000000001"'))
    book = load_price_book(tmp_path)
    (a,), (b,), (c,) = book.entries("a"), book.entries("b"), book.entries("c")
    assert (a.cache_write_1h, a.cache_write_1h_atto) == (Decimal("1.25"), 1_250_000_000_000)
    assert (b.cache_write, b.cache_write_1h, b.cache_write_1h_atto) == (
        Decimal("1.25"),
        Decimal("2.000"),
        2_000_000_000_000,
    )
    assert (c.cache_write, c.cache_write_1h_atto) == (Decimal("1.00"), 1)


def test_effective_from_with_offset_and_fraction(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", entry(when="2024-07-18T02:00:00.5+02:00"))
    (price,) = load_price_book(tmp_path).entries("m")
    assert price.effective_from_us == 1_721_260_800_500_000
    assert price.id == "m@2024-07-18T00:00:00.500000Z"


def test_format_us() -> None:
    assert format_us(0) == "1970-01-01T00:00:00Z"
    assert format_us(1_721_260_800_000_000) == "2024-07-18T00:00:00Z"
    assert format_us(-1) == "1969-12-31T23:59:59.999999Z"


def test_files_are_read_in_sorted_order_and_other_files_ignored(tmp_path: Path) -> None:
    write(tmp_path, "b.toml", entry(model="x"))
    write(tmp_path, "a.toml", entry(model="y"))
    write(tmp_path, "notes.txt", "not a table")
    book = load_price_book(tmp_path)
    assert book.models() == ["x", "y"]
    assert [p.source for p in book.in_force(10**18)] == ["b.toml", "a.toml"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (entry(input="1.5"), r"input: must be a quoted decimal string, e\.g\. \"1\.5\", not a TOML number"),
        (entry(input="2"), r"input: must be a quoted decimal string.*not a TOML number"),
        (
            entry(input="1e-5"),
            r"input: must be a quoted decimal string, e\.g\. \"0\.00001\", not a TOML number",
        ),
        (entry(input="inf"), r"input: must be a quoted decimal string such as \"0\.15\"$"),
        (entry(input='"-1.00"'), r"input: must not be negative"),
        (entry(input='"0.0000000000001"'), r"input: '0\.0000000000001' has more than 12 decimal places"),
        (entry(input='"10000.5"'), r"input: '10000\.5' is more than 10000 USD per million tokens"),
        (entry(input='"NaN"'), r"input: must be finite"),
        (entry(input='"1e3"'), r"input: '1e3' is not a plain decimal string"),
        (entry(input='" 1"'), r"input: ' 1' is not a plain decimal string"),
        (entry(extra='request = "100.01"'), r"request: '100\.01' is more than 100 USD per request"),
        (entry(extra='request = "0.0000000001"'), r"request: '0\.0000000001' has more than 9 decimal places"),
        (entry(extra="reasoning = 3.0"), r"reasoning: must be a quoted decimal string"),
        (
            entry(extra="cache_write_1h = 6.0"),
            r"cache_write_1h: must be a quoted decimal string, e\.g\. \"6\.0\"",
        ),
        (entry(extra='cache_write_1h = "-6"'), r"cache_write_1h: must not be negative"),
        (entry(extra='cache_write_1h = "1e3"'), r"cache_write_1h: '1e3' is not a plain decimal string"),
        (entry(extra='cache_write_1h = "10001"'), r"cache_write_1h: '10001' is more than 10000 USD"),
        (
            entry(extra='cache_write_1h = "0.0000000000001"'),
            r"cache_write_1h: '0\.0000000000001' has more than 12 decimal places",
        ),
        (entry(when="2024-01-01T00:00:00"), r"effective_from: 2024-01-01T00:00:00 has no timezone"),
        (entry(when="2024-01-01"), r"effective_from: needs a time and a timezone"),
        (entry(when='"2024-01-01T00:00:00Z"'), r"effective_from: write an unquoted TOML datetime"),
        (entry(extra='cache_read = "0.1"'), r"unknown field `cache_read` \(an entry may have: model, "),
        (entry(model=""), r"model: '' must be a non-empty name"),
    ],
)
def test_bad_entry_names_file_entry_and_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, "bad.toml", entry(model="ok") + text)
    with pytest.raises(ConfigError) as caught:
        load_price_book(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path}: [[prices]] #2 ")
    assert "\n" not in message
    assert re.search(problem, message), message


def test_entry_label_quotes_the_model(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.toml", entry(model="ok") + entry(model="gpt-4o") + entry(input="0.5"))
    with pytest.raises(ConfigError, match=r"#3 \('m'\): input: ") as caught:
        load_price_book(tmp_path)
    assert str(caught.value).startswith(f"{path}: [[prices]] #3 ('m'): ")


def test_missing_field_and_missing_model(tmp_path: Path) -> None:
    path = write(
        tmp_path, "a.toml", '[[prices]]\nmodel = "m"\neffective_from = 2024-01-01T00:00:00Z\ninput = "1"\n'
    )
    with pytest.raises(ConfigError, match=r"#1 \('m'\): missing required field `output`") as caught:
        load_price_file(path)
    assert str(caught.value).startswith(str(path))
    write(
        tmp_path, "a.toml", '[[prices]]\neffective_from = 2024-01-01T00:00:00Z\ninput = "1"\noutput = "1"\n'
    )
    with pytest.raises(ConfigError, match=r"a\.toml: \[\[prices\]\] #1: missing required field `model`"):
        load_price_file(path)
    write(
        tmp_path,
        "a.toml",
        '[[prices]]\nmodel = 4\neffective_from = 2024-01-01T00:00:00Z\ninput = "1"\noutput = "1"\n',
    )
    with pytest.raises(ConfigError, match=r"\[\[prices\]\] #1: model: Expected `str`, got `int`"):
        load_price_file(path)


def test_duplicate_in_one_file(tmp_path: Path) -> None:
    path = write(tmp_path, "a.toml", entry(model="gpt-4o") + entry(model="other") + entry(model="gpt-4o"))
    with pytest.raises(ConfigError) as caught:
        load_price_book(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path}: [[prices]] #3 ('gpt-4o'): another entry for 'gpt-4o'")
    assert f"({path}: [[prices]] #1 ('gpt-4o'))" in message
    assert "2024-01-01T00:00:00Z" in message


def test_duplicate_across_files_even_with_another_offset(tmp_path: Path) -> None:
    first = write(tmp_path, "a.toml", entry(when="2024-01-01T00:00:00Z"))
    second = write(tmp_path, "b.toml", entry(when="2024-01-01T01:00:00+01:00"))  # the same instant
    with pytest.raises(ConfigError) as caught:
        load_price_book(tmp_path)
    assert str(caught.value).startswith(f"{second}: [[prices]] #1 ('m'): another entry")
    assert str(first) in str(caught.value)


def test_malformed_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "a.toml", '[[prices]]\nmodel = "m\n')
    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        load_price_book(tmp_path)
    assert str(caught.value).startswith(f"{path}: ")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '[[price]]\nmodel = "m"\n',
            r"unknown field `price` \(a price table holds \[source\] and \[\[prices\]\]\)",
        ),
        ("prices = 3\n", r"prices: Expected `array`, got `int`"),
        ("prices = [3]\n", r"prices\[0\]: Expected `object`, got `int`"),
    ],
)
def test_bad_table_shape(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, "a.toml", text)
    with pytest.raises(ConfigError, match=problem) as caught:
        load_price_book(tmp_path)
    assert str(caught.value).startswith(f"{path}: ")


def test_source_is_free_form_and_optional(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", "[source]\nanything = [1, 2]\nwhen = 2025-01-01\n" + entry())
    write(tmp_path, "b.toml", entry(model="n"))
    assert load_price_book(tmp_path).models() == ["m", "n"]


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match="price folder not found") as caught:
        load_price_book(missing)
    assert str(caught.value).startswith(str(missing))


def test_folder_that_is_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, "a.toml", entry())
    with pytest.raises(ConfigError, match="not a folder"):
        load_price_book(path)
