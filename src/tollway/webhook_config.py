"""The `[[webhooks]]` entries of the configuration (SPEC §7): their shape, checks and secrets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated
from urllib.parse import urlsplit

from msgspec import Meta, Struct

from tollway.errors import ConfigError
from tollway.events import EVENT_TYPES

__all__ = ["WebhookConfig", "validate_webhooks", "webhook_secrets"]


class WebhookConfig(Struct, forbid_unknown_fields=True, kw_only=True):
    """A receiver of events (SPEC §7); its URL names it, in the database too."""

    url: str
    # The environment variable holding the signing secret; the secret itself is never in the file.
    secret_env: str
    # Event types it receives (tollway.events.EVENT_TYPES); "*" stands for all of them.
    events: list[str]
    # One attempt's whole budget: connecting, sending and the response's status line.
    timeout_seconds: Annotated[float, Meta(gt=0, le=300)] = 10.0
    # Attempts before a delivery is given up (state "failed").
    max_attempts: Annotated[int, Meta(ge=1, le=1000)] = 20
    # The n-th retry waits retry_base_seconds * 2**(n-1), at most retry_max_seconds, less up to a
    # quarter at random.  Tests lower the base; receivers are better served by the defaults.
    retry_base_seconds: Annotated[float, Meta(gt=0, le=3600)] = 1.0
    retry_max_seconds: Annotated[float, Meta(gt=0, le=86_400)] = 600.0

    @property
    def event_types(self) -> frozenset[str]:
        return frozenset(EVENT_TYPES) if "*" in self.events else frozenset(self.events)


def validate_webhooks(webhooks: Sequence[WebhookConfig], source: str) -> None:
    """Each entry's URL, events and retry bounds; a ConfigError naming the entry otherwise."""
    urls: set[str] = set()
    for i, hook in enumerate(webhooks):
        entry = f"{source}: [[webhooks]] #{i + 1}"  # the url is named once known to hold no password
        try:
            parts = urlsplit(hook.url)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:  # a port out of range, an unbalanced [
            valid = False
        if not valid or parts.fragment or any(c.isspace() for c in hook.url):
            raise ConfigError(f"{entry}: url must be an http:// or https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ConfigError(f"{entry}: url must not carry credentials; receivers check the signature")
        entry += f" ({hook.url!r})"
        if hook.url in urls:
            raise ConfigError(f"{entry}: duplicate webhook url")
        urls.add(hook.url)
        if not hook.secret_env:
            raise ConfigError(f"{entry}: secret_env must name an environment variable")
        if not hook.events:
            raise ConfigError(f'{entry}: events must name at least one event type (or "*")')
        for name in hook.events:
            if name != "*" and name not in EVENT_TYPES:
                raise ConfigError(
                    f"{entry}: events: {name!r} is not an event type; "
                    f'known: {", ".join(EVENT_TYPES)} (or "*" for all)'
                )
        if hook.retry_max_seconds < hook.retry_base_seconds:
            raise ConfigError(f"{entry}: retry_max_seconds must be at least retry_base_seconds")


def webhook_secrets(webhooks: Sequence[WebhookConfig], source: str, env: Mapping[str, str]) -> dict[str, str]:
    """The signing secret of each webhook, by URL, from the variable its `secret_env` names."""
    secrets: dict[str, str] = {}
    for i, hook in enumerate(webhooks):
        value = env.get(hook.secret_env)
        if not value:
            raise ConfigError(
                f"{source}: [[webhooks]] #{i + 1} ({hook.url!r}): "
                f"environment variable {hook.secret_env} (secret_env) is not set"
            )
        secrets[hook.url] = value
    return secrets
