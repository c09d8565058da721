"""Offline loading of the bundled encodings, and which encoding a model bills with."""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NoReturn

import pytest
import tiktoken
import tiktoken.load
import tiktoken_ext.openai_public

import tollway
from tollway.tokens import ENCODING_NAMES, EXPECTED_SHA256, EncodingError, encoding_for_model, load_encoding
from tollway.tokens import encodings as encodings_module

_TIKTOKEN_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"


def _refuse(*args: Any, **kwargs: Any) -> NoReturn:
    raise AssertionError(f"network or tiktoken cache used: {args!r}")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point tiktoken at an empty cache dir and make every network path fail; return the dir."""
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    monkeypatch.setattr(tiktoken.load, "read_file", _refuse)
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    return cache


def test_loads_offline_without_tiktoken_cache(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tiktoken.load, "read_file_cached", _refuse)
    for name in ENCODING_NAMES:
        enc = load_encoding(name)
        assert enc.name == name
        assert len(enc.encode_ordinary("hello world")) == 2
    assert list(offline.iterdir()) == []


def test_corrupted_rank_file_fails_the_hash_check(monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytearray(encodings_module._read_bundled("cl100k_base"))
    data[1000] ^= 0x01
    monkeypatch.setattr(encodings_module, "_read_bundled", lambda name: bytes(data))
    with pytest.raises(EncodingError, match="hash mismatch") as excinfo:
        load_encoding("cl100k_base")
    assert isinstance(excinfo.value, ValueError)
    assert EXPECTED_SHA256["cl100k_base"] in str(excinfo.value)


@pytest.mark.parametrize("blob", [b"not gzip at all", gzip.compress(b"truncated")[:-6]])
def test_unreadable_resource_is_an_encoding_error(monkeypatch: pytest.MonkeyPatch, blob: bytes) -> None:
    monkeypatch.setattr(
        encodings_module, "_bundled_resource", lambda name: SimpleNamespace(read_bytes=lambda: blob)
    )
    with pytest.raises(EncodingError, match="cannot read"):
        load_encoding("o200k_base")


def test_missing_resource_is_an_encoding_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(encodings_module, "_bundled_resource", lambda name: tmp_path / "absent.gz")
    with pytest.raises(EncodingError, match="cannot read"):
        load_encoding("o200k_base")


def test_loading_does_not_import_bpe_openai() -> None:
    # Importing bpe_openai parses all its rank files eagerly and warns; loading must avoid it.
    # A fresh interpreter, since other tests here do import it.
    code = (
        "import sys; from tollway.tokens import load_encoding; "
        "[load_encoding(n) for n in ('o200k_base', 'cl100k_base')]; "
        "assert 'bpe_openai' not in sys.modules, sorted(m for m in sys.modules if 'bpe' in m)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(tollway.__file__).parents[1])}
    subprocess.run([sys.executable, "-W", "error", "-c", code], env=env, check=True, timeout=60)


def test_unknown_encoding_name() -> None:
    with pytest.raises(EncodingError, match="unknown encoding 'p50k_base'"):
        load_encoding("p50k_base")


@pytest.mark.parametrize("name", ENCODING_NAMES)
def test_same_encoding_as_tiktokens_own_constructor(
    name: str, encodings: dict[str, tiktoken.Encoding], offline: Path
) -> None:
    # Seed tiktoken's cache with the bundled file so its own constructor (which re-checks the
    # hash) runs offline; then every constant we copied must equal what it builds.
    key = hashlib.sha1(_TIKTOKEN_URL.format(name).encode()).hexdigest()
    (offline / key).write_bytes(encodings_module._read_bundled(name))

    upstream = getattr(tiktoken_ext.openai_public, name)()
    ours = encodings[name]
    assert ours._pat_str == upstream["pat_str"]
    assert ours._special_tokens == upstream["special_tokens"]
    assert ours._mergeable_ranks == upstream["mergeable_ranks"]
    assert "explicit_n_vocab" not in upstream


# Token ids printed in the OpenAI cookbook, "How to count tokens with tiktoken", section 5.
COOKBOOK_IDS = [
    ("cl100k_base", "tiktoken is great!", [83, 1609, 5963, 374, 2294, 0]),
    ("cl100k_base", "antidisestablishmentarianism", [519, 85342, 34500, 479, 8997, 2191]),
    ("cl100k_base", "2 + 2 = 4", [17, 489, 220, 17, 284, 220, 19]),
    ("cl100k_base", "お誕生日おめでとう", [33334, 45918, 243, 21990, 9080, 33334, 62004, 16556, 78699]),
    ("o200k_base", "antidisestablishmentarianism", [493, 129901, 376, 160388, 21203, 2367]),
    ("o200k_base", "2 + 2 = 4", [17, 659, 220, 17, 314, 220, 19]),
    ("o200k_base", "お誕生日おめでとう", [8930, 9697, 243, 128225, 8930, 17693, 4344, 48669]),
    # tiktoken's README / test_simple for cl100k_base.
    ("cl100k_base", "hello world", [15339, 1917]),
]


@pytest.mark.parametrize(("name", "text", "ids"), COOKBOOK_IDS)
def test_documented_token_ids(
    encodings: dict[str, tiktoken.Encoding], name: str, text: str, ids: list[int]
) -> None:
    assert encodings[name].encode_ordinary(text) == ids


CROSS_CHECK_TEXTS = [
    "hello world",
    "tiktoken is great!",
    "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    "def f(x: int) -> int:\n    return x ** 2  # squares\n\n\n",
    "Ünïcödé — naïve café, 東京タワー, Здравствуйте, مرحبا, 🙂🚀 emoji",
    "numbers 1234567890 3.14159 -42 1e10 0xdeadbeef",
    '{"role": "user", "content": "<|endoftext|> is just text here"}',
    "   leading and trailing whitespace \t\r\n  ",
    "I'm sure they'll say we've done it; you'd THINK SO'S IT'S",
]


@pytest.fixture(scope="module")
def rust_bpe() -> Any:
    # bpe-openai's Rust tokenizer (GitHub's `bpe` crate) is an implementation independent of
    # tiktoken. Its package __init__ uses the deprecated importlib.resources.open_binary.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from bpe_openai import _bindings

    return _bindings


@pytest.mark.parametrize("name", ENCODING_NAMES)
def test_agrees_with_independent_rust_tokenizer(
    encodings: dict[str, tiktoken.Encoding], rust_bpe: Any, name: str
) -> None:
    rust = rust_bpe.tokenizer_for_encoding(name)
    for text in CROSS_CHECK_TEXTS:
        assert encodings[name].encode_ordinary(text) == rust.encode(text), text


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-4.5-preview", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-5-mini", "o200k_base"),
        ("gpt-5.1", "o200k_base"),
        ("o1", "o200k_base"),
        ("o1-preview", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini-2025-04-16", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("azure/openai/o3", "o200k_base"),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "o200k_base"),
        ("GPT-4O", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-4-32k", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("gpt-35-turbo", "cl100k_base"),
        ("openai/gpt-3.5-turbo", "cl100k_base"),
        ("ft:gpt-3.5-turbo-0613:acme::xyz", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("text-embedding-3-large", "cl100k_base"),
        ("text-embedding-ada-002", "cl100k_base"),
    ],
)
def test_encoding_for_known_models(model: str, expected: str) -> None:
    assert encoding_for_model(model) == (expected, False)


@pytest.mark.parametrize(
    "model",
    [
        "claude-3-5-sonnet",
        "meta-llama/llama-3-70b",
        "mistral-large",
        "gpt-4.2",
        "o",
        "o100k",
        "gpt-40",
        "text-embedding-3",
        "",
        "/",
    ],
)
def test_unknown_models_are_estimated_with_o200k(model: str) -> None:
    assert encoding_for_model(model) == ("o200k_base", True)
