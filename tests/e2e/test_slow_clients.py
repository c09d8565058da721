"""Slow clients against a real `tollway serve` (issue [1/6] §6): heads and bodies that trickle are cut.

One server with short `header_timeout` / `body_timeout`; raw sockets play the slow clients.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.dbs import drop_database, new_database_url
from tests.e2e.conftest import MODELS, Mock, Tollway, config_text, free_port, launch, price_text, shut

TIMEOUT = 1.0
HI = [{"role": "user", "content": "Say hi"}]


@pytest.fixture(name="strict", scope="module")
def fixture_strict(mock: Mock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    workdir: Path = tmp_path_factory.mktemp("strict")
    database_url = new_database_url(workdir)
    (workdir / "database_url").write_text(database_url)
    config = config_text(mock.url, free_port(), database_url).replace(
        "[server]\n", f"[server]\nheader_timeout = {TIMEOUT}\nbody_timeout = {TIMEOUT}\n", 1
    )
    (workdir / "tollway.toml").write_text(config)
    (workdir / "prices").mkdir()
    (workdir / "prices" / "test.toml").write_text(price_text(MODELS))
    server, process = launch(mock, workdir)
    yield server
    shut(server, process)
    drop_database(database_url)
    for log in workdir.glob("serve-*.log"):
        assert "Traceback" not in log.read_text(), log.read_text()


def connect(server: Tollway) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or 10 s pass)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def test_connections_that_say_nothing_or_trickle_are_all_cut(strict: Tollway) -> None:
    silent = [connect(strict) for _ in range(20)]
    trickling = [connect(strict) for _ in range(20)]
    head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
    started = time.monotonic()
    for i in range(len(head)):
        for sock in trickling:
            try:
                sock.sendall(head[i : i + 1])
            except OSError:
                pass
        time.sleep(0.05)
        if time.monotonic() - started > TIMEOUT * 3:
            break
    answers = [read_all(sock) for sock in silent + trickling]
    elapsed = time.monotonic() - started
    assert elapsed < TIMEOUT + 9  # every one was closed by the server, none waited out our 10 s read
    assert all(answer == b"" for answer in answers[:20])  # silent: closed without an answer
    assert all(answer.startswith(b"HTTP/1.1 408 ") or answer == b"" for answer in answers[20:])
    assert any(answer.startswith(b"HTTP/1.1 408 ") for answer in answers[20:])
    for sock in silent + trickling:
        sock.close()


def test_a_stalled_body_gets_a_408_and_costs_nothing(strict: Tollway) -> None:
    account = strict.new_account("stalled")
    before = strict.db.rows(
        "SELECT count(*) FROM ledger_entries WHERE workspace_id = ?", account.workspace_id
    )
    sock = connect(strict)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer " + account.key.encode() + b'\r\ncontent-length: 100\r\n\r\n{"model": '
    )
    answer = read_all(sock)
    sock.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"x-request-id: req_" in head and b"connection: close" in head
    assert b'"code":"request_timeout"' in body
    after = strict.db.rows("SELECT count(*) FROM ledger_entries WHERE workspace_id = ?", account.workspace_id)
    assert before == after


def test_a_stream_longer_than_both_timeouts_is_delivered_whole(strict: Tollway) -> None:
    account = strict.new_account("patient")
    client = openai.OpenAI(base_url=f"{strict.url}/v1", api_key=account.key, max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=HI,  # type: ignore[arg-type]
            stream=True,
            extra_body={"mock": {"chunks": 25, "chunk_delay_ms": 100}},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 25
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 25


def test_oversized_heads_are_refused(strict: Tollway) -> None:
    sock = connect(strict)
    sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n" + b"x-filler: " + b"a" * 100_000 + b"\r\n\r\n")
    assert read_all(sock).startswith(b"HTTP/1.1 431 ")
    sock.close()
    sock = connect(strict)
    sock.sendall(b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nhost: x\r\n\r\n")
    assert read_all(sock).startswith(b"HTTP/1.1 414 ")
    sock.close()
