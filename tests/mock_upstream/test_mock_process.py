"""The mock served by a real uvicorn process: disconnects and connection cuts over real sockets."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import tollway


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    port = _free_port()
    env = dict(os.environ)
    # Works whether or not tollway is installed: point the child at the same source tree.
    src = str(Path(tollway.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env.pop("MOCK_UPSTREAM_API_KEY", None)
    code = f"from tollway.mock_upstream import run; run(port={port})"
    process = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"{url}/mock/stats", timeout=0.5)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    stderr = process.stderr.read().decode() if process.stderr else ""
                    pytest.fail(f"mock upstream did not start: {stderr}")
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


def _stream_body(model: str) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}


async def test_client_disconnect_is_counted(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        await client.post("/mock/reset")
        body = _stream_body("demo:chunks=100,chunk_delay_ms=300")
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            seen = 0
            async for line in response.aiter_lines():
                seen += line.startswith("data: ")
                if seen == 3:
                    break
        # Leaving the block closes the half-read response, which drops the connection.
        deadline = time.monotonic() + 1
        stats = (await client.get("/mock/stats")).json()
        while stats["streams_cancelled"] != 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            stats = (await client.get("/mock/stats")).json()
        assert stats["streams_cancelled"] == 1
        assert stats["active_streams"] == 0
        assert stats["streams_completed"] == 0


async def _collect_data_lines(client: httpx.AsyncClient, model: str, into: list[str]) -> None:
    async with client.stream("POST", "/v1/chat/completions", json=_stream_body(model)) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                into.append(line)


async def test_cut_after_breaks_the_client_read(base_url: str) -> None:
    events: list[str] = []
    async with httpx.AsyncClient(base_url=base_url) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await _collect_data_lines(client, "demo:cut_after=2", events)
        stats = (await client.get("/mock/stats")).json()
    assert len(events) == 3  # the role chunk and two content chunks, then nothing
    assert stats["active_streams"] == 0
