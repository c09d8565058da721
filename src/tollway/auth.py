"""Client authentication with a key cache that respects revocation.

A warm key costs no database round trip.  A cached entry is trusted for
`ttl` seconds and then checked again, which bounds how long a key revoked by
another process keeps working; a revocation made through this process drops
the entry at once.
"""

from __future__ import annotations

import time

from msgspec import Struct

from tollway.accounts import AccountStore, ApiKey
from tollway.errors import AuthenticationFailed
from tollway.keys import KEY_PREFIX, hash_key

__all__ = ["Authenticator", "Principal"]

_MAX_ENTRIES = 100_000


class Principal(Struct, frozen=True):
    """Who is calling: a live key and the workspace it belongs to."""

    key_id: str
    key_name: str
    workspace_id: str
    spend_limit_nano: int | None
    spend_limit_period: str


def _principal(key: ApiKey) -> Principal:
    return Principal(
        key_id=key.id,
        key_name=key.name,
        workspace_id=key.workspace_id,
        spend_limit_nano=key.spend_limit_nano,
        spend_limit_period=key.spend_limit_period,
    )


class Authenticator:
    def __init__(self, store: AccountStore, ttl: float) -> None:
        self._store = store
        self._ttl = ttl
        self._cache: dict[str, tuple[Principal, float]] = {}

    async def authenticate(self, authorization: str | None, api_key: str | None = None) -> Principal:
        """The caller of `Authorization: Bearer tw-…`, or of `x-api-key: tw-…` (Anthropic's clients)."""
        token = _bearer(authorization) if authorization or not api_key else _api_key(api_key)
        digest = hash_key(token)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        key = await self._store.find_by_secret_hash(digest)
        if key is None or key.revoked_at is not None:
            self._cache.pop(digest, None)
            raise AuthenticationFailed("Invalid API key: it is unknown or has been revoked.")
        if len(self._cache) >= _MAX_ENTRIES:
            self._cache.clear()
        principal = _principal(key)
        self._cache[digest] = (principal, now + self._ttl)
        return principal

    def forget(self, key_id: str) -> None:
        """Drop a key from the cache at once (it was revoked through this process)."""
        for digest, (principal, _) in list(self._cache.items()):
            if principal.key_id == key_id:
                del self._cache[digest]


def _api_key(value: str) -> str:
    token = value.strip()
    if not token.startswith(KEY_PREFIX):
        raise AuthenticationFailed("Invalid API key: tollway keys start with 'tw-'.")
    if len(token) > 200:
        raise AuthenticationFailed("Invalid API key: it is longer than any tollway key.")
    return token


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationFailed("You didn't provide an API key. Send it as 'Authorization: Bearer tw-…'.")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed("Malformed Authorization header: expected 'Bearer tw-…'.")
    if not token.startswith(KEY_PREFIX):
        raise AuthenticationFailed("Invalid API key: tollway keys start with 'tw-'.")
    if len(token) > 200:
        raise AuthenticationFailed("Invalid API key: it is longer than any tollway key.")
    return token
