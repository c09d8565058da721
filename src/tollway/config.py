"""The TOML configuration (SPEC §1), decoded and validated with msgspec.

Secrets never live in the file: it names environment variables and the values
are read from the environment once, at load time.  Every problem becomes one
`ConfigError` naming the file, the entry and what is wrong.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct, field

from tollway.clock import now_us
from tollway.errors import ConfigError
from tollway.pricing import PriceBook, bundled_pricing_dir, check_served, load_price_book
from tollway.webhook_config import WebhookConfig, validate_webhooks, webhook_secrets

__all__ = [
    "BUILTIN_DEMO",
    "Config",
    "DatabaseConfig",
    "MetricsConfig",
    "ModelConfig",
    "ServerConfig",
    "Settings",
    "UpstreamConfig",
    "WebhookConfig",
    "load_settings",
]

BUILTIN_DEMO = "builtin:demo"
KNOWN_ENCODINGS = ("o200k_base", "cl100k_base")

_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")

Seconds = Annotated[float, Meta(gt=0, le=86_400)]


class DatabaseConfig(Struct, forbid_unknown_fields=True, kw_only=True):
    url: str = "sqlite+aiosqlite:///./tollway.db"
    # Unset: yes on SQLite (one machine, nothing to coordinate); no on PostgreSQL, where
    # `tollway db upgrade` is run once for all hosts and `serve` refuses an old schema.
    migrate_on_start: bool | None = None
    # Connections per process (each worker has its own pool), plus as many again on bursts.
    pool_size: Annotated[int, Meta(ge=1, le=500)] = 20

    @property
    def migrates_on_start(self) -> bool:
        if self.migrate_on_start is not None:
            return self.migrate_on_start
        return self.url.startswith("sqlite")


class PricingConfig(Struct, forbid_unknown_fields=True, kw_only=True):
    # Relative to the configuration file; unset: the tables shipped with tollway.
    dir: str | None = None


class LedgerConfig(Struct, forbid_unknown_fields=True, kw_only=True):
    heartbeat_seconds: Annotated[float, Meta(gt=0, le=60)] = 5.0
    # A process silent this long is dead and its open reservations are released.
    dead_after_seconds: Annotated[float, Meta(gt=0, le=300)] = 30.0
    reap_interval_seconds: Annotated[float, Meta(gt=0, le=60)] = 10.0


class ReportsConfig(Struct, forbid_unknown_fields=True, kw_only=True):
    # The longest period a usage report may span, in days.
    max_range_days: Annotated[int, Meta(ge=1, le=3660)] = 366


class ServerConfig(Struct, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8000
    workers: Annotated[int, Meta(ge=1, le=64)] = 1
    max_request_bytes: Annotated[int, Meta(ge=1024)] = 10 * 1024 * 1024
    # How long a cached API key is trusted before it is checked against the
    # database again: the bound on how late another process's revocation bites.
    auth_cache_seconds: Annotated[float, Meta(ge=0, le=300)] = 5.0
    # The HTTP client tollway forwards with: its own lean one (measured fastest), aiohttp or httpx.
    upstream_client: Literal["lean", "aiohttp", "httpx"] = "lean"
    # Browser origins allowed to call tollway (CORS); "*" allows any.  Empty: no CORS headers at all.
    cors_origins: list[str] = field(default_factory=list)
    # Slow clients: the longest a connection may take to send a whole request head, and the
    # longest a request body may stall between two reads.
    header_timeout: Seconds = 10.0
    body_timeout: Seconds = 30.0
    # On SIGTERM: stop accepting, let requests in flight finish this long, then end the rest.
    shutdown_grace_seconds: Annotated[float, Meta(ge=0, le=3600)] = 30.0
    # The closing usage chunk of a stream whose client did not ask for usage: OpenAI's own
    # shape (`"choices": []`), or with one empty choice for clients that read choices[0].
    stream_usage_chunk: Literal["empty_choices", "with_choice"] = "empty_choices"
    # The access log's lines (one per proxied request) and tollway's other log lines: logfmt-like
    # text or one JSON object a line.  `tollway serve --log-format` overrides it.
    log_format: Literal["text", "json"] = "text"
    # On SQLite, each worker's threads on one CPU (see tollway.serving.affinity): the event loop
    # and the ledger thread hand the GIL to each other far more cheaply there.
    pin_cpu: bool = True


class MetricsConfig(Struct, forbid_unknown_fields=True, kw_only=True):
    # `GET /metrics` without the admin token (for a scraper on a trusted network).
    public: bool = False


class AdminConfig(Struct, forbid_unknown_fields=True, kw_only=True):
    token_env: str = "TOLLWAY_ADMIN_TOKEN"


Protocol = Literal["openai", "anthropic"]


class UpstreamConfig(Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    base_url: str
    api_key_env: str | None = None
    # Which API family it speaks (SPEC §6): its models are served on that family's surfaces only.
    protocol: Protocol = "openai"
    # Some OpenAI-compatible providers reject `stream_options`; turn injection off for them.
    include_usage: bool = True
    connect_timeout: Seconds = 10.0
    # Streams: until the upstream's response headers.  Non-streams: the whole response.
    first_byte_timeout: Seconds = 120.0
    # Streams: the longest silence allowed between two reads.
    idle_timeout: Seconds = 120.0
    max_connections: Annotated[int, Meta(ge=1, le=100_000)] = 1000
    headers: dict[str, str] = field(default_factory=dict)


class ModelConfig(Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    upstream: str | list[str]
    upstream_model: str | None = None
    encoding: str | None = None
    max_output_tokens: Annotated[int, Meta(ge=1)] | None = None

    @property
    def upstreams(self) -> list[str]:
        return [self.upstream] if isinstance(self.upstream, str) else list(self.upstream)

    @property
    def target(self) -> str:
        return self.upstream_model or self.name


def _demo_upstreams() -> list[UpstreamConfig]:
    return [
        UpstreamConfig(name="demo", base_url=BUILTIN_DEMO),
        UpstreamConfig(name="demo-anthropic", base_url=BUILTIN_DEMO, protocol="anthropic"),
    ]


def _demo_models() -> list[ModelConfig]:
    # The demo upstream reads behaviour from the model name (see tollway.mock_upstream).
    return [
        ModelConfig(name="demo", upstream="demo", encoding="o200k_base", max_output_tokens=4096),
        ModelConfig(
            name="demo-no-usage",
            upstream="demo",
            upstream_model="demo:usage=absent",
            encoding="o200k_base",
            max_output_tokens=4096,
        ),
        # For /v1/embeddings (the demo answers every surface for every model; this one is priced for it).
        ModelConfig(name="demo-embedding", upstream="demo", encoding="cl100k_base"),
        # For /v1/messages (Anthropic's protocol; the demo answers it too).
        ModelConfig(
            name="demo-claude", upstream="demo-anthropic", encoding="o200k_base", max_output_tokens=4096
        ),
    ]


class Config(Struct, forbid_unknown_fields=True, kw_only=True):
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    pricing: PricingConfig = field(default_factory=PricingConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    reports: ReportsConfig = field(default_factory=ReportsConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    upstreams: list[UpstreamConfig] = field(default_factory=_demo_upstreams)
    models: list[ModelConfig] = field(default_factory=_demo_models)
    webhooks: list[WebhookConfig] = field(default_factory=list)


class Settings(Struct, frozen=True, kw_only=True):
    """A validated configuration plus the secrets its variables named."""

    config: Config
    source: str
    prices: PriceBook
    admin_token: str | None = field(default=None)
    upstream_keys: dict[str, str] = field(default_factory=dict)
    # Signing secrets by webhook URL.
    webhook_secrets: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # never print secrets
        return f"Settings(source={self.source!r})"

    def model(self, name: str) -> ModelConfig | None:
        for model in self.config.models:
            if model.name == name:
                return model
        return None

    def upstream(self, name: str) -> UpstreamConfig:
        for upstream in self.config.upstreams:
            if upstream.name == name:
                return upstream
        raise KeyError(name)


def load_settings(path: str | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, validate and resolve the configuration; raise `ConfigError` on any problem."""
    env = os.environ if environ is None else environ
    path = path or env.get("TOLLWAY_CONFIG") or None
    if path is None:
        config, source = Config(), "<built-in defaults>"
    else:
        config, source = _decode(Path(path)), path
    if url := env.get("TOLLWAY_DATABASE_URL"):
        config.database.url = url
    _validate(config, source)
    return Settings(
        config=config,
        source=source,
        prices=_prices(config, path),
        admin_token=env.get("TOLLWAY_ADMIN_TOKEN") or env.get(config.admin.token_env) or None,
        upstream_keys=_resolve_keys(config, source, env),
        webhook_secrets=webhook_secrets(config.webhooks, source, env),
    )


def _decode(path: Path) -> Config:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror}") from exc
    try:
        return msgspec.toml.decode(raw, type=Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {_explain(str(exc))}") from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _explain(message: str) -> str:
    """Turn msgspec's `... - at `$.models[0].name`` into `models[0].name: ...`."""
    text, sep, where = message.rpartition(" - at `$")
    if not sep:
        return message
    entry = where.rstrip("`").lstrip(".")
    if "unknown field `api_key`" in text or "unknown field `token`" in text:
        text += " (secrets are never read from the file: name an environment variable with api_key_env)"
    return f"[{entry}] {text}" if entry else text


def _validate(config: Config, source: str) -> None:
    def fail(entry: str, problem: str) -> ConfigError:
        return ConfigError(f"{source}: {entry}: {problem}")

    upstream_names: set[str] = set()
    for i, up in enumerate(config.upstreams):
        entry = f"[[upstreams]] #{i + 1} ({up.name!r})"
        if not up.name:
            raise fail(entry, "name must not be empty")
        if up.name in upstream_names:
            raise fail(entry, "duplicate upstream name")
        upstream_names.add(up.name)
        if up.base_url != BUILTIN_DEMO and not up.base_url.startswith(("http://", "https://")):
            raise fail(entry, f"base_url must start with http:// or https:// (or be {BUILTIN_DEMO!r})")
        for header in up.headers:
            if header.lower() == "authorization":
                raise fail(entry, "headers must not carry Authorization; use api_key_env")
    for origin in config.server.cors_origins:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ConfigError(
                f"{source}: [server] cors_origins: {origin!r} is not an origin "
                '(scheme://host[:port], no path or trailing slash; or "*")'
            )
    if not config.models:
        raise ConfigError(f"{source}: [[models]]: no model is served")
    model_names: set[str] = set()
    for i, model in enumerate(config.models):
        entry = f"[[models]] #{i + 1} ({model.name!r})"
        if not model.name:
            raise fail(entry, "name must not be empty")
        if model.name in model_names:
            raise fail(entry, "duplicate model name")
        model_names.add(model.name)
        if not model.upstreams:
            raise fail(entry, "upstream must name at least one upstream")
        for name in model.upstreams:
            if name not in upstream_names:
                raise fail(entry, f"upstream {name!r} is not defined in [[upstreams]]")
        protocols = {up.protocol for up in config.upstreams if up.name in model.upstreams}
        if len(protocols) > 1:
            raise fail(entry, "its upstreams speak different protocols; a fallback must speak the same one")
        if model.encoding is not None and model.encoding not in KNOWN_ENCODINGS:
            raise fail(entry, f"encoding must be one of {', '.join(KNOWN_ENCODINGS)}")
    if config.ledger.dead_after_seconds < 2 * config.ledger.heartbeat_seconds:
        raise ConfigError(f"{source}: [ledger] dead_after_seconds must be at least twice heartbeat_seconds")
    validate_webhooks(config.webhooks, source)
    if not config.database.url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ConfigError(
            f"{source}: [database] url: must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
        )


def _prices(config: Config, path: str | None) -> PriceBook:
    if config.pricing.dir is None:
        folder = bundled_pricing_dir()
    else:
        folder = Path(config.pricing.dir)
        if not folder.is_absolute() and path is not None:
            folder = Path(path).resolve().parent / folder
    book = load_price_book(folder)
    check_served(book, (m.name for m in config.models), now_us(), str(folder))
    return book


def _resolve_keys(config: Config, source: str, env: Mapping[str, str]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for i, up in enumerate(config.upstreams):
        if up.api_key_env is None:
            continue
        value = env.get(up.api_key_env)
        if not value:
            raise ConfigError(
                f"{source}: [[upstreams]] #{i + 1} ({up.name!r}): "
                f"environment variable {up.api_key_env} (api_key_env) is not set"
            )
        keys[up.name] = value
    return keys
