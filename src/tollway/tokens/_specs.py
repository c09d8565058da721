"""The two OpenAI encodings tollway counts with, as tiktoken defines them.

Copied from tiktoken 0.14, ``tiktoken_ext/openai_public.py`` (functions ``cl100k_base`` and
``o200k_base``): the split regex, the special tokens and the SHA-256 that ``load_tiktoken_bpe``
checks the downloaded rank file against. They must stay byte-for-byte identical, or counts
drift from what OpenAI bills; tests/tokens compare them with tiktoken's own constructors.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["EXPECTED_SHA256", "PAT_STR", "SPECIAL_TOKENS"]

ENDOFTEXT: Final = "<|endoftext|>"
FIM_PREFIX: Final = "<|fim_prefix|>"
FIM_MIDDLE: Final = "<|fim_middle|>"
FIM_SUFFIX: Final = "<|fim_suffix|>"
ENDOFPROMPT: Final = "<|endofprompt|>"

# Kept on one line, verbatim, so it can be diffed against upstream.
_CL100K_PAT_STR: Final = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""  # noqa: E501

_O200K_PAT_STR: Final = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

# Read-only views: these are shared by every encoding the process builds.
PAT_STR: Final[Mapping[str, str]] = MappingProxyType(
    {"cl100k_base": _CL100K_PAT_STR, "o200k_base": _O200K_PAT_STR}
)

SPECIAL_TOKENS: Final[Mapping[str, Mapping[str, int]]] = MappingProxyType(
    {
        "cl100k_base": MappingProxyType(
            {
                ENDOFTEXT: 100257,
                FIM_PREFIX: 100258,
                FIM_MIDDLE: 100259,
                FIM_SUFFIX: 100260,
                ENDOFPROMPT: 100276,
            }
        ),
        "o200k_base": MappingProxyType({ENDOFTEXT: 199999, ENDOFPROMPT: 200018}),
    }
)

EXPECTED_SHA256: Final[Mapping[str, str]] = MappingProxyType(
    {
        "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    }
)
