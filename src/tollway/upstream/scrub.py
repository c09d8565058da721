"""Keeping upstream secrets out of everything a client or a log sees."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["Scrubber"]

_REDACTED = b"[redacted]"
# Providers echo keys whole or partly masked ("sk-abc***********wxyz");
# any run of 8+ key-like characters that is part of a secret is removed.
_CANDIDATE = re.compile(rb"[A-Za-z0-9_\-]{8,}")


class Scrubber:
    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = [s.encode() for s in secrets if s]

    def __call__(self, data: bytes) -> bytes:
        if not self._secrets:
            return data
        for secret in self._secrets:
            data = data.replace(secret, _REDACTED)
        return _CANDIDATE.sub(self._mask_piece, data)

    def _mask_piece(self, match: re.Match[bytes]) -> bytes:
        piece = match.group(0)
        return _REDACTED if any(piece in secret for secret in self._secrets) else piece
