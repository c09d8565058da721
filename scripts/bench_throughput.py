"""Billed requests per second through tollway, by engine and worker count.

    python scripts/bench_throughput.py [--seconds 10] [--concurrency 32] [--postgres URL]

Starts `tollway mock-upstream` and `tollway serve` (SQLite, and PostgreSQL when
`--postgres` names a server URL with rights to create databases, e.g. from
`scripts/pg-test-server start`) with 1 and 2 workers, and drives non-stream
requests from this process for `--seconds` each. Every request is billed:
reserve, forward, settle, usage record, rollup. Prints a table and JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import httpx
from loopback import free_port, wait


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tollway", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def drive(url: str, key: str, seconds: float, concurrency: int) -> tuple[int, int]:
    body = json.dumps(
        {"model": "bench", "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 16}
    ).encode()
    done = errors = 0
    deadline = time.perf_counter() + seconds
    # aiohttp as the load generator: httpx costs ~3.6 ms of CPU per request at c=32 here.
    async with aiohttp.ClientSession(
        base_url=url,
        connector=aiohttp.TCPConnector(limit=concurrency),
        timeout=aiohttp.ClientTimeout(total=30),
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
    ) as client:

        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < deadline:
                async with client.post("/v1/chat/completions", data=body) as response:
                    await response.read()
                    if response.status == 200:
                        done += 1
                    else:
                        errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, errors


def create_pg_database(server: str) -> str:
    import asyncpg

    name = f"tw_bench_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        conn = await asyncpg.connect(server.replace("postgresql+asyncpg://", "postgresql://"))
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()

    asyncio.run(create())
    return server.rsplit("/", 1)[0] + f"/{name}"


def run_case(
    engine: str,
    url: str,
    workers: int,
    mock_url: str,
    seconds: float,
    concurrency: int,
    src: str | None = None,
) -> dict[str, object]:
    """One server (from source tree `src`, else the installed tollway) driven for `seconds`."""
    folder = Path(tempfile.mkdtemp(prefix="tollway-tput-"))
    (folder / "prices").mkdir()
    (folder / "prices" / "bench.toml").write_text(
        '[[prices]]\nmodel = "bench"\neffective_from = 2024-01-01T00:00:00Z\n'
        'input = "1.00"\noutput = "2.00"\n'
    )
    (folder / "tollway.toml").write_text(
        f'[database]\nurl = "{url}"\nmigrate_on_start = true\n[pricing]\ndir = "prices"\n'
        f'[[upstreams]]\nname = "mock"\nbase_url = "{mock_url}/v1"\n'
        '[[models]]\nname = "bench"\nupstream = "mock"\nupstream_model = "demo"\n'
    )
    env = {**os.environ, "TOLLWAY_ADMIN_TOKEN": "bench"}
    if src is not None:
        env["PYTHONPATH"] = src
    port = free_port()
    server = start(
        ["serve", "--config", str(folder / "tollway.toml"), "--port", str(port), "--workers", str(workers)],
        env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait(f"{base}/health")
        admin = {"authorization": "Bearer bench"}
        workspace = httpx.post(f"{base}/admin/workspaces", json={"name": "bench"}, headers=admin).json()
        httpx.post(
            f"{base}/admin/workspaces/{workspace['id']}/credits", json={"amount_usd": "1000"}, headers=admin
        )
        key = httpx.post(
            f"{base}/admin/workspaces/{workspace['id']}/keys", json={"name": "b"}, headers=admin
        ).json()
        asyncio.run(drive(base, key["key"], 1.0, concurrency))  # warm-up
        done, errors = asyncio.run(drive(base, key["key"], seconds, concurrency))
        return {
            "engine": engine,
            "workers": workers,
            "billed_requests": done,
            "errors": errors,
            "requests_per_second": round(done / seconds, 1),
        }
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--postgres", default=os.environ.get("TOLLWAY_TEST_DATABASE"))
    args = parser.parse_args()
    mock_port = free_port()
    mock = start(["mock-upstream", "--port", str(mock_port)], dict(os.environ))
    results = []
    try:
        mock_url = f"http://127.0.0.1:{mock_port}"
        wait(f"{mock_url}/mock/stats")
        for workers in (1, 2):
            folder = Path(tempfile.mkdtemp(prefix="tollway-tput-db-"))
            results.append(
                run_case(
                    "sqlite",
                    f"sqlite+aiosqlite:///{folder / 'bench.db'}",
                    workers,
                    mock_url,
                    args.seconds,
                    args.concurrency,
                )
            )
            if args.postgres:
                results.append(
                    run_case(
                        "postgresql",
                        create_pg_database(args.postgres),
                        workers,
                        mock_url,
                        args.seconds,
                        args.concurrency,
                    )
                )
    finally:
        mock.terminate()
        mock.wait()
    print("| engine | workers | billed req/s | errors |\n|---|---|---|---|")
    for r in results:
        print(f"| {r['engine']} | {r['workers']} | {r['requests_per_second']} | {r['errors']} |")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
