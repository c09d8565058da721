"""Real processes on loopback: `tollway mock-upstream` and `tollway serve`, shared per session.

Tests stay independent of each other: each uses its own workspace or key
where state matters, and reads the mock's counters as differences.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.dbs import Reader, drop_database, new_database_url

if TYPE_CHECKING:
    from tests.e2e.observed import Observed

ADMIN_TOKEN = "test-admin-token"
UPSTREAM_KEY = "sk-upstream-SECRET-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(
    args: list[str], *, env: dict[str, str], ready_url: str, log: Path, cwd: Path
) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "tollway", *args],
            env=env,
            cwd=cwd,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{args[0]} exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(ready_url, timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{args[0]} did not become ready:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass(frozen=True)
class Mock:
    url: str

    def stats(self) -> dict[str, int]:
        stats: dict[str, int] = httpx.get(f"{self.url}/mock/stats").json()
        return stats

    def last_request(self) -> dict[str, object]:
        last: dict[str, object] = httpx.get(f"{self.url}/mock/requests/last").json()
        return last


@dataclass(frozen=True)
class Tollway:
    url: str
    config: Path
    workdir: Path
    env: dict[str, str]
    database_url: str
    db: Reader

    def admin(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]

    def new_account(
        self,
        name: str = "test",
        credit_usd: str | None = "10.00",
        spend_limit_usd: str | None = None,
        period: str = "total",
    ) -> Account:
        workspace = self.admin("POST", "/admin/workspaces", json={"name": name}).json()
        if credit_usd is not None:
            credited = self.admin(
                "POST", f"/admin/workspaces/{workspace['id']}/credits", json={"amount_usd": credit_usd}
            )
            assert credited.status_code == 201, credited.text
        created = self.admin(
            "POST",
            f"/admin/workspaces/{workspace['id']}/keys",
            json={"name": name, "spend_limit_usd": spend_limit_usd, "spend_limit_period": period},
        ).json()
        return Account(workspace["id"], created["id"], created["key"])

    def new_key(self, name: str = "test") -> str:
        return self.new_account(name).key

    def balance(self, account: Account) -> dict[str, str]:
        balance: dict[str, str] = self.admin("GET", f"/admin/workspaces/{account.workspace_id}").json()[
            "balance"
        ]
        return balance

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tollway", *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@dataclass(frozen=True)
class Account:
    workspace_id: str
    key_id: str
    key: str


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLWAY_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(name="mock", scope="session")
def fixture_mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mock]:
    workdir = tmp_path_factory.mktemp("mock")
    port = free_port()
    env = {**base_env(), "MOCK_UPSTREAM_API_KEY": UPSTREAM_KEY}
    process = start(
        ["mock-upstream", "--port", str(port)],
        env=env,
        ready_url=f"http://127.0.0.1:{port}/mock/stats",
        log=workdir / "mock.log",
        cwd=workdir,
    )
    yield Mock(f"http://127.0.0.1:{port}")
    stop(process)


def config_text(mock_url: str, dead_port: int, database_url: str) -> str:
    return f"""
[database]
url = "{database_url}"
migrate_on_start = true

[server]
max_request_bytes = 65536
cors_origins = ["https://app.example"]

[pricing]
dir = "prices"

[ledger]
heartbeat_seconds = 0.5
dead_after_seconds = 2.0
reap_interval_seconds = 0.5

[[upstreams]]
name = "mock"
base_url = "{mock_url}/v1"
api_key_env = "MOCK_KEY"

[[upstreams]]
name = "mock-no-options"
base_url = "{mock_url}/v1"
api_key_env = "MOCK_KEY"
include_usage = false

[[upstreams]]
name = "mock-impatient"
base_url = "{mock_url}/v1"
api_key_env = "MOCK_KEY"
first_byte_timeout = 0.5
idle_timeout = 0.5

[[upstreams]]
name = "mock-anthropic"
base_url = "{mock_url}/v1"
api_key_env = "MOCK_KEY"
protocol = "anthropic"

[[upstreams]]
name = "dead"
base_url = "http://127.0.0.1:{dead_port}/v1"
connect_timeout = 1.0

[[models]]
name = "gpt-4o-mini"
upstream = "mock"
upstream_model = "demo"

[[models]]
name = "counted"
upstream = "mock"
upstream_model = "demo:usage=absent"

[[models]]
name = "gpt-4-counted"
upstream = "mock"
upstream_model = "demo:usage=absent"
encoding = "cl100k_base"

[[models]]
name = "mystery-model"
upstream = "mock"
upstream_model = "mystery:usage=absent"

[[models]]
name = "no-stream-options"
upstream = "mock-no-options"
upstream_model = "demo"

[[models]]
name = "impatient"
upstream = "mock-impatient"
upstream_model = "demo"

[[models]]
name = "dead-model"
upstream = "dead"

[[models]]
name = "fallback-model"
upstream = ["dead", "mock"]
upstream_model = "demo"

[[models]]
name = "demo"
upstream = "mock"

[[models]]
name = "text-embedding-3-small"
upstream = "mock"
upstream_model = "demo-embed"
encoding = "cl100k_base"

[[models]]
name = "claude-test"
upstream = "mock-anthropic"
upstream_model = "claude-mock"

[[models]]
name = "claude-counted"
upstream = "mock-anthropic"
upstream_model = "claude-mock:usage=absent"
"""


MODELS = (
    "gpt-4o-mini",
    "counted",
    "gpt-4-counted",
    "mystery-model",
    "no-stream-options",
    "impatient",
    "dead-model",
    "fallback-model",
    "demo",
    "text-embedding-3-small",
    "claude-test",
    "claude-counted",
)
# USD per million tokens: input, cached input, cache write, output, reasoning; and a request fee.
# The Anthropic models (claude-*) also price 1-hour cache writes, at 2.00.
RATES = {
    "input": "1.00",
    "cached_input": "0.50",
    "cache_write": "1.25",
    "output": "2.00",
    "reasoning": "3.00",
    "request": "0.0001",
}


def price_text(models: tuple[str, ...]) -> str:
    def rates(model: str) -> str:
        table = {**RATES, "cache_write_1h": "2.00"} if model.startswith("claude-") else RATES
        return "\n".join(f'{name} = "{value}"' for name, value in table.items())

    return "\n".join(
        f'[[prices]]\nmodel = "{model}"\neffective_from = 2024-01-01T00:00:00Z\n{rates(model)}\n'
        for model in models
    )


def nanos(
    prompt: int,
    completion: int,
    cached: int = 0,
    cache_write: int = 0,
    reasoning: int = 0,
    cache_write_1h: int = 0,
) -> int:
    """The expected cost at RATES in nano-USD, worked out independently of tollway's pricing code.

    1.00 USD per million tokens is 1,000 nano-USD per token, so every rate here is a whole
    number of nano-USD per token and no rounding is involved.
    """
    uncached = prompt - cached - cache_write
    return (
        uncached * 1_000
        + cached * 500
        + (cache_write - cache_write_1h) * 1_250
        + cache_write_1h * 2_000
        + (completion - reasoning) * 2_000
        + reasoning * 3_000
        + 100_000
    )


def launch(
    mock: Mock, workdir: Path, port: int | None = None, extra: tuple[str, ...] = ()
) -> tuple[Tollway, subprocess.Popen[bytes]]:
    """Start `tollway serve` in `workdir` (its database lives there), configured against `mock`."""
    config = workdir / "tollway.toml"
    if not config.exists():
        (workdir / "database_url").write_text(new_database_url(workdir))
        config.write_text(config_text(mock.url, free_port(), (workdir / "database_url").read_text()))
        (workdir / "prices").mkdir()
        (workdir / "prices" / "test.toml").write_text(price_text(MODELS))
    database_url = (workdir / "database_url").read_text()
    port = port or free_port()
    env = {**base_env(), "MOCK_KEY": UPSTREAM_KEY, "TOLLWAY_ADMIN_TOKEN": ADMIN_TOKEN}
    process = start(
        ["serve", "--config", str(config), "--port", str(port), *extra],
        env=env,
        ready_url=f"http://127.0.0.1:{port}/health",
        log=workdir / f"serve-{port}.log",
        cwd=workdir,
    )
    return Tollway(
        f"http://127.0.0.1:{port}", config, workdir, env, database_url, Reader(database_url)
    ), process


def shut(tollway: Tollway, process: subprocess.Popen[bytes]) -> None:
    """Stop the server; the caller drops the database when no other server uses it."""
    stop(process)
    tollway.db.close()


@pytest.fixture(name="tollway", scope="session")
def fixture_tollway(mock: Mock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    workdir = tmp_path_factory.mktemp("tollway")
    tollway, process = launch(mock, workdir)
    yield tollway
    shut(tollway, process)
    drop_database(tollway.database_url)
    for log in workdir.glob("serve-*.log"):
        text = log.read_text()
        assert UPSTREAM_KEY not in text
        assert "Traceback" not in text, text


@pytest.fixture(name="key", scope="session")
def fixture_key(tollway: Tollway) -> str:
    return tollway.new_key("e2e")


@pytest.fixture(name="observed", scope="session")
def fixture_observed(mock: Mock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    """Two workers, JSON logs, `[metrics] public = true`: see tests/e2e/observed.py."""
    from tests.e2e.observed import observed_server

    with observed_server(mock, tmp_path_factory.mktemp("observed")) as observed:
        yield observed
