from __future__ import annotations

from pathlib import Path

import pytest

from tollway.config import BUILTIN_DEMO, load_settings
from tollway.errors import ConfigError

GOOD = """
[database]
url = "sqlite+aiosqlite:///./t.db"

[[upstreams]]
name = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"

[[models]]
name = "gpt-4o-mini"
upstream = "openai"
max_output_tokens = 16384
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "tollway.toml"
    path.write_text(text)
    return str(path)


def test_defaults_serve_the_builtin_demo() -> None:
    settings = load_settings(None, environ={})
    assert settings.source == "<built-in defaults>"
    assert [u.base_url for u in settings.config.upstreams] == [BUILTIN_DEMO, BUILTIN_DEMO]
    assert [u.protocol for u in settings.config.upstreams] == ["openai", "anthropic"]
    assert [m.name for m in settings.config.models] == [
        "demo",
        "demo-no-usage",
        "demo-embedding",
        "demo-claude",
    ]
    assert settings.config.database.url == "sqlite+aiosqlite:///./tollway.db"


def test_good_file_and_env_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    env = {
        "OPENAI_API_KEY": "sk-secret",
        "TOLLWAY_DATABASE_URL": "sqlite+aiosqlite:///./other.db",
        "TOLLWAY_ADMIN_TOKEN": "adm",
    }
    settings = load_settings(path, environ=env)
    assert settings.upstream_keys == {"openai": "sk-secret"}
    assert settings.admin_token == "adm"
    assert settings.config.database.url == "sqlite+aiosqlite:///./other.db"
    assert settings.model("gpt-4o-mini") is not None
    assert "sk-secret" not in repr(settings)


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    settings = load_settings(None, environ={"TOLLWAY_CONFIG": path, "OPENAI_API_KEY": "k"})
    assert settings.source == path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            GOOD.replace('upstream = "openai"', 'upstream = "nowhere"'),
            "[[models]] #1 ('gpt-4o-mini'): upstream 'nowhere' is not defined in [[upstreams]]",
        ),
        (GOOD.replace('api_key_env = "OPENAI_API_KEY"', 'api_key = "sk-live"'), "unknown field `api_key`"),
        (
            GOOD.replace("max_output_tokens = 16384", "max_output_tokens = -5"),
            "[models[0].max_output_tokens] Expected `int` >= 1",
        ),
        (
            GOOD.replace('base_url = "https://api.openai.com/v1"', 'base_url = "api.openai.com"'),
            "base_url must start with http:// or https://",
        ),
        (GOOD + '\n[[models]]\nname = "gpt-4o-mini"\nupstream = "openai"\n', "duplicate model name"),
        (GOOD.replace("max_output_tokens = 16384", 'encoding = "p50k_base"'), "encoding must be one of"),
        (GOOD.replace('url = "sqlite+aiosqlite:///./t.db"', 'url = "mysql://x"'), "[database] url"),
        ("[[models]\n", "not valid TOML"),
    ],
)
def test_errors_name_file_entry_and_problem(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={"OPENAI_API_KEY": "k"})
    assert str(info.value).startswith(path)
    assert message in str(info.value)


def test_secret_in_file_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('api_key_env = "OPENAI_API_KEY"', 'api_key = "sk-live"'))
    with pytest.raises(ConfigError, match="secrets are never read from the file"):
        load_settings(path, environ={})


def test_missing_secret_variable(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    with pytest.raises(ConfigError, match=r"environment variable OPENAI_API_KEY \(api_key_env\) is not set"):
        load_settings(path, environ={})


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(str(tmp_path / "missing.toml"), environ={})


def test_a_model_cannot_fall_back_across_protocols(tmp_path: Path) -> None:
    config = tmp_path / "tollway.toml"
    config.write_text(
        '[[upstreams]]\nname = "a"\nbase_url = "http://a.test/v1"\n'
        '[[upstreams]]\nname = "b"\nbase_url = "http://b.test/v1"\nprotocol = "anthropic"\n'
        '[[models]]\nname = "m"\nupstream = ["a", "b"]\n'
    )
    with pytest.raises(
        ConfigError, match=r"\[\[models\]\] #1 \('m'\): its upstreams speak different protocols"
    ):
        load_settings(str(config), environ={})


def test_metrics_and_log_format(tmp_path: Path) -> None:
    settings = load_settings(None, environ={})
    assert (settings.config.metrics.public, settings.config.server.log_format) == (False, "text")
    path = write(tmp_path, GOOD + '\n[metrics]\npublic = true\n\n[server]\nlog_format = "json"\n')
    settings = load_settings(path, environ={"OPENAI_API_KEY": "sk"})
    assert (settings.config.metrics.public, settings.config.server.log_format) == (True, "json")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[metrics]\nopen = true\n", "unknown field `open`"),
        ('[server]\nlog_format = "xml"\n', "log_format"),
    ],
)
def test_metrics_and_log_format_mistakes(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, GOOD + "\n" + text), environ={"OPENAI_API_KEY": "sk"})
