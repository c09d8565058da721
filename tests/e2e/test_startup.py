"""Operator traps (issue [1/6] §1, §5): start-up failures, the admin CLI's database, the built-in demo.

Each test runs the real `tollway` command in its own folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.dbs import drop_database, is_postgres, new_database_url
from tests.e2e.conftest import MODELS, Mock, base_env, config_text, free_port, launch, price_text, shut

HI = [{"role": "user", "content": "Say hi"}]


def tollway(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tollway", *args],
        cwd=cwd,
        env=env or base_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_clear_failure(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert "serving" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(name="bad_sqlite_env")
def fixture_bad_sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {**base_env(), "TOLLWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/missing-dir/x.db"}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_database_that_cannot_be_opened_is_one_message(
    tmp_path: Path, bad_sqlite_env: dict[str, str], workers: str
) -> None:
    result = tollway(
        "serve", "--port", str(free_port()), "--workers", workers, cwd=tmp_path, env=bad_sqlite_env
    )
    assert_one_clear_failure(result, "cannot open the database", "missing-dir/x.db", "does not exist")
    assert result.returncode == 1


def test_an_unreachable_postgresql_is_one_message_without_its_password(tmp_path: Path) -> None:
    env = {**base_env(), "TOLLWAY_DATABASE_URL": f"postgresql+asyncpg://u:hunter2@127.0.0.1:{free_port()}/db"}
    for workers in ("1", "2"):
        result = tollway("serve", "--port", str(free_port()), "--workers", workers, cwd=tmp_path, env=env)
        assert_one_clear_failure(result, "cannot open the database postgresql+asyncpg://u:***@127.0.0.1")
        assert "hunter2" not in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_one_message(tmp_path: Path, workers: str) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = tollway("serve", "--port", str(port), "--workers", workers, cwd=tmp_path)
    assert_one_clear_failure(result, f"cannot listen on 127.0.0.1:{port}")


def write_config(folder: Path, mock: Mock, database_url: str, extra: str = "") -> Path:
    (folder / "database_url").write_text(database_url)
    text = config_text(mock.url, free_port(), database_url).replace("migrate_on_start = true\n", extra)
    (folder / "tollway.toml").write_text(text)
    (folder / "prices").mkdir(exist_ok=True)
    (folder / "prices" / "test.toml").write_text(price_text(MODELS))
    return folder / "tollway.toml"


@pytest.fixture(name="database_url_for_serve")
def fixture_database_url_for_serve(tmp_path: Path) -> Iterator[str]:
    url = new_database_url(tmp_path)
    yield url
    drop_database(url)


def test_an_empty_database_is_given_the_schema_without_migrate_on_start(
    mock: Mock, tmp_path: Path, database_url_for_serve: str
) -> None:
    """SPEC §1: an empty database gets the schema on both engines, even with migrate_on_start = false."""
    write_config(tmp_path, mock, database_url_for_serve, "migrate_on_start = false\n")
    server, process = launch(mock, tmp_path)
    try:
        account = server.new_account("fresh")
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=account.key, max_retries=0)
        assert client.chat.completions.create(model="gpt-4o-mini", messages=HI).usage is not None  # type: ignore[arg-type]
    finally:
        shut(server, process)


def test_an_older_schema_is_refused_naming_the_command(
    mock: Mock, tmp_path: Path, database_url_for_serve: str
) -> None:
    config = write_config(tmp_path, mock, database_url_for_serve, "migrate_on_start = false\n")
    import asyncio

    from tollway.db import create_engine, upgrade

    async def old_schema() -> None:
        engine = create_engine(database_url_for_serve)
        await upgrade(engine, "0003")
        await engine.dispose()

    asyncio.run(old_schema())
    env = {**base_env(), "MOCK_KEY": "x"}
    for workers in ("1", "2"):
        result = tollway(
            "serve",
            "--config",
            str(config),
            "--port",
            str(free_port()),
            "--workers",
            workers,
            cwd=tmp_path,
            env=env,
        )
        assert_one_clear_failure(result, "schema revision 0003", "run `tollway db upgrade`")
    upgraded = tollway("db", "upgrade", "--config", str(config), cwd=tmp_path, env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert tollway("ledger", "verify", "--config", str(config), cwd=tmp_path, env=env).returncode == 0


def test_the_admin_cli_never_creates_a_database(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for args in (
        ("admin", "workspace", "create", "acme"),
        ("admin", "workspace", "list"),
        ("admin", "balance", "ws_x"),
        ("ledger", "verify"),
        ("ledger", "rebuild-rollup"),
    ):
        result = tollway(*args, cwd=elsewhere)
        assert_one_clear_failure(result, f"no database at {elsewhere / 'tollway.db'}")
    assert list(elsewhere.iterdir()) == []


def test_the_admin_cli_works_on_the_database_serve_created(tmp_path: Path) -> None:
    port = free_port()
    env = {**base_env(), "TOLLWAY_ADMIN_TOKEN": "adm"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tollway", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        # "serving" is printed only once the server accepts requests.
        assert banner.startswith(f"tollway: serving 4 model(s) on http://127.0.0.1:{port}"), banner
        assert httpx.get(f"http://127.0.0.1:{port}/health").json() == {"status": "ok"}
        created = tollway("admin", "workspace", "create", "acme", cwd=tmp_path)
        assert created.returncode == 0, created.stderr
        workspace = json.loads(created.stdout)
        assert tollway("admin", "credit", workspace["id"], "1.00", cwd=tmp_path).returncode == 0
        key = json.loads(tollway("admin", "key", "create", workspace["id"], cwd=tmp_path).stdout)["key"]
        base = f"http://127.0.0.1:{port}"
        client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
        assert client.chat.completions.create(model="demo", messages=HI).usage is not None  # type: ignore[arg-type]
        _the_demo_upstream_answers_tollway_alone(base, client)
        _the_demo_claude_model_answers_the_anthropic_sdk(base, key)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    assert "Traceback" not in stderr and "ERROR" not in stderr, stderr


def _the_demo_claude_model_answers_the_anthropic_sdk(base: str, key: str) -> None:
    """The README's Anthropic quick start, offline, on the built-in defaults."""
    claude = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
    message = claude.messages.create(model="demo-claude", max_tokens=64, messages=HI)  # type: ignore[arg-type]
    assert message.content[0].type == "text" and message.content[0].text.strip()
    assert (message.model_extra or {}).get("usage") is None  # usage is the typed field
    cost = (message.usage.model_extra or {})["cost"]
    with claude.messages.stream(model="demo-claude", max_tokens=64, messages=HI) as stream:  # type: ignore[arg-type]
        events = list(stream)
        final = stream.get_final_message()
    assert final.content[0].type == "text" and final.content[0].text == message.content[0].text
    # The cost rides on the last message_delta (the SDK's accumulated message keeps only token fields).
    [delta] = [event for event in events if event.type == "message_delta"]
    assert (delta.usage.model_extra or {})["cost"] == cost > 0
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(model="demo", max_tokens=64, messages=HI)  # type: ignore[arg-type]


def _the_demo_upstream_answers_tollway_alone(base: str, client: openai.OpenAI) -> None:
    """Issue [1/6] §1: the built-in demo is reachable only by tollway, its knobs are bounded."""
    for method, path in (
        ("GET", "/_demo/mock/requests/last"),
        ("GET", "/_demo/mock/stats"),
        ("POST", "/_demo/mock/reset"),
        ("GET", "/_demo/v1/mock/requests/last"),
    ):
        assert httpx.request(method, f"{base}{path}").status_code == 404, path
    body = {"model": "demo", "messages": HI}
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Bearer tw-guess"}):
        response = httpx.post(f"{base}/_demo/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == 401
        assert "wrong" not in response.text and "tw-guess" not in response.text
    assert httpx.get(f"{base}/_demo/v1/models").status_code == 401
    # Knobs are bounded: an absurd one is the upstream's 400, passed through and free.
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="demo", messages=HI, extra_body={"mock": {"chunks": 30_000_000}})  # type: ignore[arg-type]
    assert "chunks" in str(caught.value)
    # A scripted cut is a normal event: the stream ends as a break-off, billed, and nothing is logged.
    stream = client.chat.completions.create(
        model="demo",
        messages=HI,  # type: ignore[arg-type]
        stream=True,
        extra_body={"mock": {"cut_after": 2}},
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
    time.sleep(0.2)


@pytest.mark.skipif(not is_postgres(), reason="PostgreSQL only")
def test_postgresql_workers_start_on_an_empty_database(
    mock: Mock, tmp_path: Path, database_url_for_serve: str
) -> None:
    write_config(tmp_path, mock, database_url_for_serve, "")
    server, process = launch(mock, tmp_path, extra=("--workers", "2"))
    try:
        assert server.new_account("pg-workers").key.startswith("tw-")
    finally:
        shut(server, process)
