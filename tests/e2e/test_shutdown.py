"""Graceful shutdown (SPEC §7): SIGTERM drains streams for shutdown_grace_seconds, then ends the rest.

A stream that finishes within the grace period is delivered whole; one that does not is ended by
the server with its usage chunk and a `server_shutdown` error event, billed for what it delivered,
and recorded with end state `server_shutdown` (not `client_disconnected`). One worker and two.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.dbs import drop_database, new_database_url
from tests.e2e.conftest import MODELS, Mock, config_text, free_port, launch, nanos, price_text

HI = [{"role": "user", "content": "Say hi"}]
GRACE = 2.0


class Reader(threading.Thread):
    """Reads one stream through tollway with raw HTTP, keeping every SSE data payload."""

    def __init__(self, url: str, key: str, chunks: int, delay_ms: int) -> None:
        super().__init__(daemon=True)
        self.url, self.key = url, key
        self.body = {
            "model": "gpt-4o-mini",
            "messages": HI,
            "stream": True,
            "mock": {"chunks": chunks, "chunk_delay_ms": delay_ms},
        }
        self.started = threading.Event()
        self.events: list[bytes] = []
        self.request_id = ""
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            headers = {"authorization": f"Bearer {self.key}"}
            with httpx.stream("POST", self.url, json=self.body, headers=headers, timeout=60) as response:
                self.request_id = response.headers["x-request-id"]
                buffer = b""
                for piece in response.iter_bytes():
                    buffer += piece
                    *done, buffer = buffer.split(b"\n\n")
                    self.events.extend(e.removeprefix(b"data: ") for e in done if e)
                    if self.events:
                        self.started.set()
        except BaseException as exc:
            self.error = exc
            self.started.set()

    def payloads(self) -> list[Any]:
        return [e if e == b"[DONE]" else msgspec.json.decode(e) for e in self.events]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_drains_then_ends_streams_as_server_shutdown(
    mock: Mock, tmp_path: Path, workers: str
) -> None:
    database_url = new_database_url(tmp_path)
    (tmp_path / "database_url").write_text(database_url)
    config = config_text(mock.url, free_port(), database_url)
    (tmp_path / "tollway.toml").write_text(
        config.replace("[server]\n", f"[server]\nshutdown_grace_seconds = {GRACE}\n", 1)
    )
    (tmp_path / "prices").mkdir()
    (tmp_path / "prices" / "test.toml").write_text(price_text(MODELS))
    server, process = launch(mock, tmp_path, extra=("--workers", workers))
    try:
        account = server.new_account("draining", credit_usd="1.00")
        url = f"{server.url}/v1/chat/completions"
        short = Reader(url, account.key, chunks=8, delay_ms=100)  # ~0.8 s: ends within the grace period
        long = Reader(url, account.key, chunks=400, delay_ms=50)  # ~20 s: ended by the server
        for reader in (short, long):
            reader.start()
            assert reader.started.wait(15)
        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        for reader in (short, long):
            reader.join(30)
            assert reader.error is None, reader.error
        assert process.wait(30) == 0
        ended_after = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert GRACE - 0.5 < ended_after < GRACE + 8

    completed = short.payloads()
    assert completed[-1] == b"[DONE]"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in completed[:-2] if c["choices"])
    assert text == " the of and to in is it for"
    assert completed[-2]["usage"]["completion_tokens"] == 8

    cut = long.payloads()
    assert b"[DONE]" not in cut
    assert cut[-1]["error"]["code"] == "server_shutdown"
    usage = cut[-2]["usage"]
    delivered = [c for c in cut[:-2] if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert 0 < len(delivered) < 400
    # Each of the mock's words is one token: what was delivered is what is billed.
    assert usage["completion_tokens"] == len(delivered)

    records = {
        row["id"]: row
        for row in server.db.mappings(
            "SELECT id, end_state, completion_tokens, cost_nano FROM usage_records WHERE workspace_id = ?",
            account.workspace_id,
        )
    }
    assert records[short.request_id]["end_state"] == "completed"
    assert records[long.request_id]["end_state"] == "server_shutdown"
    assert records[long.request_id]["completion_tokens"] == len(delivered)
    assert records[long.request_id]["cost_nano"] == nanos(usage["prompt_tokens"], len(delivered))
    open_holds = server.db.rows(
        "SELECT held_nano FROM ledger_entries WHERE workspace_id = ? ORDER BY ws_seq DESC LIMIT 1",
        account.workspace_id,
    )
    assert open_holds == [(0,)]
    verify = server.cli("ledger", "verify", "--config", str(server.config))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    for log in tmp_path.glob("serve-*.log"):
        assert "Traceback" not in log.read_text(), log.read_text()
    server.db.close()
    drop_database(database_url)
