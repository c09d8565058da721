"""Build tiktoken encodings without the network, and pick the encoding a model bills with.

tiktoken downloads its rank files on first use and caches them on disk; tollway runs where
there is no network and must not write outside its data directory. The bpe-openai wheel ships
the same files (gzipped, byte-identical after decompression), so we read them as package data,
check tiktoken's own SHA-256, and build the ``tiktoken.Encoding`` ourselves.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import importlib.util
import re
import zlib
from importlib import resources
from importlib.resources.abc import Traversable

import tiktoken
from tiktoken.load import check_hash

from tollway.errors import TollwayError
from tollway.tokens._specs import EXPECTED_SHA256, PAT_STR, SPECIAL_TOKENS

__all__ = [
    "ENCODING_NAMES",
    "EXPECTED_SHA256",
    "EncodingError",
    "encoding_for_model",
    "load_encoding",
]

ENCODING_NAMES: tuple[str, ...] = ("o200k_base", "cl100k_base")

_DATA_PACKAGE = "bpe_openai"


class EncodingError(TollwayError, ValueError):
    """An encoding is unknown, or its bundled rank file is missing or corrupt."""


def load_encoding(name: str) -> tiktoken.Encoding:
    """Build the named encoding from the rank file bundled in bpe-openai.

    Reads and checks everything in memory; nothing is fetched or written. Takes 0.2-0.4 s of
    CPU (parsing 100-200k base64 lines), so call it once at start-up, off the event loop.
    """
    if name not in EXPECTED_SHA256:
        raise EncodingError(f"unknown encoding {name!r}; available: {', '.join(ENCODING_NAMES)}")
    data = _read_bundled(name)
    if not check_hash(data, EXPECTED_SHA256[name]):
        raise EncodingError(
            f"SHA-256 hash mismatch for {name}: the rank file bundled in bpe-openai is not the one "
            f"tiktoken expects (expected {EXPECTED_SHA256[name]}); reinstall bpe-openai"
        )
    return tiktoken.Encoding(
        name=name,
        pat_str=PAT_STR[name],
        mergeable_ranks=_parse_ranks(name, data),
        special_tokens=dict(SPECIAL_TOKENS[name]),
    )


def _bundled_resource(name: str) -> Traversable:
    # Not resources.files("bpe_openai.data"): importing bpe_openai runs its __init__, which
    # parses every rank file it ships in pure Python (~0.5 s, ~70 MB held for the life of the
    # process) and emits a DeprecationWarning. An unexecuted module object is all that
    # importlib.resources needs to locate the package's files.
    spec = importlib.util.find_spec(_DATA_PACKAGE)
    if spec is None:
        raise EncodingError("bpe-openai is not installed; it ships the encodings' rank files")
    return resources.files(importlib.util.module_from_spec(spec)) / "data" / f"{name}.tiktoken.gz"


def _read_bundled(name: str) -> bytes:
    try:
        return gzip.decompress(_bundled_resource(name).read_bytes())
    except (OSError, EOFError, zlib.error) as exc:
        # OSError covers both a missing file and gzip.BadGzipFile.
        raise EncodingError(f"cannot read {_DATA_PACKAGE}/data/{name}.tiktoken.gz: {exc}") from exc


def _parse_ranks(name: str, data: bytes) -> dict[bytes, int]:
    # Same format and parse as tiktoken.load.load_tiktoken_bpe: "<base64 token> <rank>" per line.
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
        except (ValueError, binascii.Error) as exc:
            raise EncodingError(f"cannot parse line {line[:80]!r} of {name}") from exc
    return ranks


# Checked in order: the o200k families first, because "gpt-4" is a prefix of "gpt-4o".
# A family matches the whole name or the name followed by a separator, so "o1" does not
# match "o100" and "gpt-4" does not claim "gpt-4.2" (an unknown model is estimated instead).
_MODEL_FAMILIES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?:chatgpt-4o|gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o[1-9][0-9]*)(?:$|[-.:@_])"), "o200k_base"),
    (
        re.compile(
            r"(?:gpt-4|gpt-3\.5|gpt-35|text-embedding-3-small|text-embedding-3-large"
            r"|text-embedding-ada-002|davinci-002|babbage-002)(?:$|[-:@_])"
        ),
        "cl100k_base",
    ),
)


def encoding_for_model(model: str) -> tuple[str, bool]:
    """Return (encoding name, estimated) for a model name as a client sends it.

    A provider prefix ("openai/gpt-4o") and a fine-tune prefix ("ft:gpt-4o-mini:org::id") are
    ignored. ``estimated`` is True when the model is not a known OpenAI family; its count then
    uses o200k_base, the encoding of every current OpenAI model, and is only an estimate.
    """
    bare = model.strip().lower().rpartition("/")[2].removeprefix("ft:")
    for pattern, encoding in _MODEL_FAMILIES:
        if pattern.match(bare):
            return encoding, False
    return "o200k_base", True
