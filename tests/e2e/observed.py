"""A two-worker `tollway serve` with JSON logs and public metrics, its stdout (the access log) apart.

Shared by the metrics and access-log suites (the `observed` fixture in conftest.py); each suite
uses its own models, so its counts and lines are its own.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.dbs import Reader, drop_database, new_database_url
from tests.e2e.conftest import (
    ADMIN_TOKEN,
    MODELS,
    UPSTREAM_KEY,
    Mock,
    Tollway,
    base_env,
    config_text,
    free_port,
    price_text,
)

# Served only by this server, each used by one suite: label values nobody else touches.
METERED = "metered"
LOGGED = "logged"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True)
class Observed:
    server: Tollway
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def scrape(self, token: str | None = None) -> Samples:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        response = httpx.get(f"{self.server.url}/metrics", headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        return parse(response.text)


def parse(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def extra_models(*names: str) -> str:
    return "".join(f'\n[[models]]\nname = "{n}"\nupstream = "mock"\nupstream_model = "demo"\n' for n in names)


@contextmanager
def observed_server(
    mock: Mock, workdir: Path, *, workers: int = 2, env: dict[str, str] | None = None
) -> Iterator[Observed]:
    database_url = new_database_url(workdir)
    config = workdir / "tollway.toml"
    config.write_text(
        config_text(mock.url, free_port(), database_url)
        + extra_models(METERED, LOGGED)
        + "\n[metrics]\npublic = true\n"
    )
    (workdir / "prices").mkdir()
    (workdir / "prices" / "test.toml").write_text(price_text((*MODELS, METERED, LOGGED)))
    environ = {**base_env(), "MOCK_KEY": UPSTREAM_KEY, "TOLLWAY_ADMIN_TOKEN": ADMIN_TOKEN, **(env or {})}
    port = free_port()
    stdout, stderr = workdir / "stdout.log", workdir / "stderr.log"
    command = ["serve", "--config", str(config), "--port", str(port), "--workers", str(workers)]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "tollway", *command, "--log-format", "json"],
            env=environ,
            cwd=workdir,
            stdout=out,
            stderr=err,
        )
    server = Tollway(f"http://127.0.0.1:{port}", config, workdir, environ, database_url, Reader(database_url))
    try:
        _wait_ready(process, f"{server.url}/health", stderr)
        yield Observed(server, process, stdout, stderr)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        server.db.close()
        drop_database(database_url)


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited with {process.returncode}:\n{log.read_text()}")
        # "serving" is printed once every worker accepts requests.
        if "tollway: serving" in log.read_text():
            assert httpx.get(url, timeout=5).status_code == 200
            return
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"serve did not become ready:\n{log.read_text()}")


def wait_until(check: Callable[[], bool], what: str, seconds: float = 20) -> None:
    """Poll `check()` until it is true (what another process does soon, such as writing a log line)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)
