"""`[[webhooks]]` in the configuration: validated, secrets from the environment, subscriptions built."""

from __future__ import annotations

from pathlib import Path

import pytest

from tollway.config import Settings, load_settings
from tollway.errors import ConfigError
from tollway.events import EVENT_TYPES
from tollway.events.delivery import subscriptions

BASE = """
[[upstreams]]
name = "up"
base_url = "https://api.example/v1"

[[models]]
name = "gpt-4o-mini"
upstream = "up"
"""

HOOKS = """
[[webhooks]]
url = "https://hooks.example/tollway"
secret_env = "HOOK_SECRET"
events = ["credit.added", "key.revoked"]

[[webhooks]]
url = "http://127.0.0.1:9000/all"
secret_env = "OTHER_SECRET"
events = ["*"]
timeout_seconds = 2.5
max_attempts = 5
retry_base_seconds = 0.1
retry_max_seconds = 1
"""


def load(tmp_path: Path, hooks: str, env: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "tollway.toml"
    path.write_text(BASE + hooks)
    return load_settings(
        str(path), environ={"HOOK_SECRET": "s1", "OTHER_SECRET": "s2"} if env is None else env
    )


def test_webhooks_load_with_their_secrets_and_subscriptions(tmp_path: Path) -> None:
    path = tmp_path / "tollway.toml"
    path.write_text(BASE + HOOKS)
    settings = load_settings(str(path), environ={"HOOK_SECRET": "s1", "OTHER_SECRET": "s2"})
    first, second = settings.config.webhooks
    assert (first.timeout_seconds, first.max_attempts, first.retry_base_seconds) == (10.0, 20, 1.0)
    assert (second.timeout_seconds, second.max_attempts, second.retry_max_seconds) == (2.5, 5, 1.0)
    assert settings.webhook_secrets == {first.url: "s1", second.url: "s2"}
    assert "s1" not in repr(settings)
    a, b = subscriptions(settings.config.webhooks)
    assert (a.webhook, a.events) == (first.url, frozenset({"credit.added", "key.revoked"}))
    assert b.events == frozenset(EVENT_TYPES)


def test_no_webhooks_by_default(tmp_path: Path) -> None:
    path = tmp_path / "tollway.toml"
    path.write_text(BASE)
    assert load_settings(str(path), environ={}).config.webhooks == []


def hook(**fields: str) -> str:
    values = {"url": '"https://h.example/x"', "secret_env": '"HOOK_SECRET"', "events": '["*"]', **fields}
    return "\n[[webhooks]]\n" + "\n".join(f"{k} = {v}" for k, v in values.items()) + "\n"


@pytest.mark.parametrize(
    ("hooks", "message"),
    [
        (hook(url='"ftp://h.example/x"'), "#1: url must be an http:// or https:// URL with a host"),
        (hook(url='"https:///x"'), "url must be an http:// or https:// URL"),
        (hook(url='"https://h.example:99999/x"'), "url must be an http:// or https:// URL"),
        (hook(url='"https://h.example/x#frag"'), "url must be an http:// or https:// URL"),
        (hook(url='"https://user:pw@h.example/x"'), "url must not carry credentials"),
        (hook() + hook(), "[[webhooks]] #2 ('https://h.example/x'): duplicate webhook url"),
        (hook(events="[]"), "events must name at least one event type"),
        (hook(events='["credit.added", "credit.removed"]'), "'credit.removed' is not an event type; known:"),
        (hook(secret_env='""'), "secret_env must name an environment variable"),
        (hook(secret='"inline"'), "unknown field `secret`"),
        (hook(timeout_seconds="0"), "timeout_seconds"),
        (hook(max_attempts="0"), "max_attempts"),
        (hook(retry_base_seconds="5", retry_max_seconds="1"), "retry_max_seconds must be at least"),
    ],
)
def test_bad_entries_are_named(tmp_path: Path, hooks: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, hooks)
    assert message in str(caught.value)
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize("value", [None, ""])
def test_a_missing_secret_fails_start_up_naming_the_entry(tmp_path: Path, value: str | None) -> None:
    env = {"OTHER_SECRET": "s2"} if value is None else {"HOOK_SECRET": value, "OTHER_SECRET": "s2"}
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, HOOKS, env)
    assert "[[webhooks]] #1 ('https://hooks.example/tollway')" in str(caught.value)
    assert "environment variable HOOK_SECRET (secret_env) is not set" in str(caught.value)
