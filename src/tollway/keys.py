"""API key material: generation and hashing.  Only the hash is ever stored."""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["KEY_PREFIX", "display_prefix", "generate_key", "hash_key", "new_id"]

KEY_PREFIX = "tw-"


def generate_key() -> str:
    """`tw-` + 32 random bytes, URL-safe base64 (43 characters)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    # The key carries 256 bits of entropy, so a fast hash is enough: there is
    # nothing to brute-force, and authentication stays cheap.
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    """Enough of the key for a person to recognise it, far too little to use it."""
    return key[:10]


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"
