"""Webhook signatures: HMAC-SHA256 over `"<t>.<raw body>"`, sent as `t=<unix>,v1=<hex>`.

The timestamp is inside the signed text, so a receiver that rejects old
timestamps also rejects a captured request replayed later.  `v1` names the
scheme; a receiver ignores parts it does not know, so a second scheme (or a
second signature while a secret is being rotated) can be added beside it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

__all__ = ["SIGNATURE_HEADER", "TOLERANCE_SECONDS", "sign", "signature", "verify"]

SIGNATURE_HEADER: Final = "tollway-signature"
# How old a signed timestamp a receiver should accept by default (and `verify` does).
TOLERANCE_SECONDS: Final = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `tollway-signature` header value for `body` sent at `timestamp` (Unix seconds)."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(
    secret: str, header: str, body: bytes, *, now: float, tolerance: float = TOLERANCE_SECONDS
) -> bool:
    """Does `header` sign exactly `body` with `secret`, at a time within `tolerance` of `now`?"""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    # Bytes: compare_digest refuses str with non-ASCII characters, which a header may carry.
    return any(hmac.compare_digest(expected.encode(), candidate.encode()) for candidate in candidates)
