"""Measure, then choose the HTTP stack: upstream client transports and ASGI servers, side by side.

    python scripts/bench_stack.py [--quick] [--rounds N] [--only client|server] [--out bench-results]

Needs the alternatives installed: pip install -e '.[test,bench]'.

Client (tollway -> upstream): each variant runs alone in its own process
(uvloop on) against a real `tollway mock-upstream` and forwards requests the
way `tollway.upstream.client` does (one pooled client, a deadline around
the headers and body, a per-read idle deadline on streams).  It reports its
own CPU time (`time.process_time`) per non-stream request and per streamed
chunk, latency at concurrency 1 and requests per second at c=32.

Server: tollway end to end (billing on, SQLite, one database per variant)
under uvicorn and granian, uvloop on and off, 1 and 2 workers, all started
at once and measured in turn: latency at c=1 next to the same requests sent
straight to the mock, and billed requests per second at c=32.

Variants are interleaved in rounds (the order rotates every round) so that
machine noise hits all of them alike; the report gives the median over
rounds and the spread (max - min) as a noise indicator.  Prints markdown
tables and writes bench-results/stack.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from loopback import free_port, wait

US = 1e6
HI = [{"role": "user", "content": "Say hi"}]
STREAM_MODEL = "demo:chunks=64,chunk_delay_ms=1"
ONE_CHUNK_MODEL = "demo:chunks=1,chunk_delay_ms=1"
# What tollway sends upstream (see UpstreamClient._headers_for).
UPSTREAM_HEADERS = {
    "content-type": "application/json",
    "accept-encoding": "identity",
    "authorization": "Bearer sk-bench",
}
CLIENTS = (
    "httpx",
    "httpx+aiohttp",
    "httpx2",
    "httpx2+aiohttp",
    "aiohttp (raw, reference)",
    "tollway UpstreamClient, httpx",
    "tollway UpstreamClient, aiohttp",
)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def body(model: str, stream: bool = False) -> bytes:
    return json.dumps({"model": model, "messages": HI, "stream": stream}).encode()


async def count_reads(chunks: AsyncIterator[bytes], close: Callable[[], Awaitable[None]]) -> int:
    """Read a stream to its end, as the relay does; how many reads it took."""
    reads = 0
    try:
        async for _ in chunks:
            reads += 1
    finally:
        await close()
    return reads


# ---------------------------------------------------------------------------------------------------
# Upstream clients, each used the way tollway.upstream.client uses httpx.


class Upstream:
    """POST one chat completion; read it whole, or count the reads of a stream."""

    async def complete(self, payload: bytes) -> None:
        raise NotImplementedError

    async def stream(self, payload: bytes) -> int:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError


class HttpxUpstream(Upstream):
    """httpx or httpx2 (same API), with their own transport or with httpx-aiohttp's."""

    def __init__(self, name: str, url: str, connections: int, headers: dict[str, str]) -> None:
        module: Any
        if name.startswith("httpx2"):
            import httpx2 as module
        else:
            module = httpx
        transport = None
        limits = module.Limits(max_connections=connections, max_keepalive_connections=connections)
        if name.endswith("+aiohttp"):
            if module is httpx:
                from httpx_aiohttp import AiohttpTransport
            else:
                from httpx_aiohttp.httpx2 import AiohttpTransport  # type: ignore[no-redef]
            transport = AiohttpTransport(limits=limits)
        self.module = module
        self.url = url + "/v1/chat/completions"
        self.client = module.AsyncClient(
            transport=transport,
            limits=limits,
            timeout=module.Timeout(connect=10.0, read=None, write=30.0, pool=30.0),
            follow_redirects=False,
        )
        self.timeout = module.Timeout(connect=10.0, read=None, write=10.0, pool=10.0)
        self.headers = headers

    async def _open(self, payload: bytes, stream: bool) -> Any:
        request = self.client.build_request(
            "POST", self.url, content=payload, headers=self.headers, timeout=self.timeout
        )
        async with asyncio.timeout(120):
            response = await self.client.send(request, stream=True)
            if response.status_code != 200:
                raise RuntimeError(f"status {response.status_code}")
            if not stream:
                await response.aread()
        return response

    async def complete(self, payload: bytes) -> None:
        response = await self._open(payload, False)
        _ = response.content

    async def stream(self, payload: bytes) -> int:
        response = await self._open(payload, True)
        return await count_reads(idle_deadline(response.aiter_bytes(), 120), response.aclose)

    async def aclose(self) -> None:
        await self.client.aclose()


class AiohttpUpstream(Upstream):
    """aiohttp's own client, no httpx on top: the floor the httpx-aiohttp transport builds on."""

    def __init__(self, url: str, connections: int, headers: dict[str, str]) -> None:
        import aiohttp

        self.aiohttp = aiohttp
        self.url = url + "/v1/chat/completions"
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections), auto_decompress=False
        )
        self.timeout = aiohttp.ClientTimeout(sock_connect=10.0)
        self.headers = headers

    async def _open(self, payload: bytes) -> Any:
        response = await self.session.post(self.url, data=payload, headers=self.headers, timeout=self.timeout)
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
        return response

    async def complete(self, payload: bytes) -> None:
        async with asyncio.timeout(120):
            response = await self._open(payload)
            await response.read()
        response.release()

    async def stream(self, payload: bytes) -> int:
        async with asyncio.timeout(120):
            response = await self._open(payload)

        async def release() -> None:
            response.release()

        return await count_reads(idle_deadline(response.content.iter_any(), 120), release)

    async def aclose(self) -> None:
        await self.session.close()


async def idle_deadline(chunks: AsyncIterator[bytes], idle: float) -> AsyncIterator[bytes]:
    """As tollway.upstream.client.chunks_with_idle_timeout: a fresh deadline around every read."""
    iterator = chunks.__aiter__()
    while True:
        try:
            async with asyncio.timeout(idle):
                chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        yield chunk


class TollwayUpstream(Upstream):
    """tollway's own `UpstreamClient` with the backend named, as the chat handler drives it."""

    def __init__(self, backend: Any, url: str, connections: int) -> None:
        from tollway.config import Config, ModelConfig, Settings, UpstreamConfig
        from tollway.pricing import PriceBook
        from tollway.upstream.client import UpstreamClient, chunks_with_idle_timeout

        self.config = UpstreamConfig(name="mock", base_url=url + "/v1", max_connections=connections)
        settings = Settings(
            config=Config(upstreams=[self.config], models=[ModelConfig(name="demo", upstream="mock")]),
            source="bench",
            prices=PriceBook([]),
            upstream_keys={"mock": "sk-bench"},
        )
        self.client = UpstreamClient(settings, backend=backend)
        self.chunks = chunks_with_idle_timeout

    async def complete(self, payload: bytes) -> None:
        response = await self.client.open(self.config, "/chat/completions", payload, stream=False)
        _ = response.content

    async def stream(self, payload: bytes) -> int:
        response = await self.client.open(self.config, "/chat/completions", payload, stream=True)
        return await count_reads(self.chunks(response, 120), response.aclose)

    async def aclose(self) -> None:
        await self.client.aclose()


def make_upstream(
    name: str, url: str, connections: int, headers: dict[str, str] = UPSTREAM_HEADERS
) -> Upstream:
    if name.startswith("tollway UpstreamClient, "):
        return TollwayUpstream(name.rsplit(", ", 1)[1], url, connections)
    if name.startswith("aiohttp"):
        return AiohttpUpstream(url, connections, headers)
    return HttpxUpstream(name, url, connections, headers)


async def client_figures(
    name: str, url: str, n_requests: int, n_streams: int, seconds: float
) -> dict[str, float]:
    """Everything measured for one client, in this process (which runs nothing else)."""
    upstream = make_upstream(name, url, 64)
    plain, long_stream, short_stream = body("demo"), body(STREAM_MODEL, True), body(ONE_CHUNK_MODEL, True)
    for _ in range(50):
        await upstream.complete(plain)
    for _ in range(3):
        await upstream.stream(long_stream)

    latencies = []
    cpu = time.process_time()
    for _ in range(n_requests):
        started = time.perf_counter()
        await upstream.complete(plain)
        latencies.append(time.perf_counter() - started)
    cpu_request = (time.process_time() - cpu) / n_requests

    # Per chunk: the CPU of a 64-chunk stream minus that of a 1-chunk stream, alternated.
    cpu_long = cpu_short = 0.0
    reads = 0
    for _ in range(n_streams):
        cpu = time.process_time()
        reads += await upstream.stream(long_stream)
        cpu_long += time.process_time() - cpu
        cpu = time.process_time()
        await upstream.stream(short_stream)
        cpu_short += time.process_time() - cpu
    cpu_chunk = (cpu_long - cpu_short) / n_streams / 63
    await upstream.aclose()

    # Throughput at c=32, with a fresh pool of 32 connections.
    upstream = make_upstream(name, url, 32)
    done = errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done, errors
        while time.perf_counter() < deadline:
            try:
                await upstream.complete(plain)
                done += 1
            except Exception:
                errors += 1

    await asyncio.gather(*(upstream.complete(plain) for _ in range(32)))
    cpu = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(32)))
    elapsed = time.perf_counter() - started
    cpu_loaded = (time.process_time() - cpu) / max(done, 1)
    await upstream.aclose()
    return {
        "cpu_us_per_request": cpu_request * US,
        "cpu_us_per_chunk": cpu_chunk * US,
        "reads_per_64_chunk_stream": reads / n_streams,
        "p50_ms": pct(latencies, 0.5) * 1e3,
        "p99_ms": pct(latencies, 0.99) * 1e3,
        "c32_rps": done / elapsed,
        "c32_cpu_us_per_request": cpu_loaded * US,
        "c32_errors": errors,
    }


def run_client_worker(args: argparse.Namespace) -> None:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        figures = runner.run(
            client_figures(args.client_worker, args.mock, args.n, args.streams, args.seconds)
        )
    print(json.dumps(figures))


def bench_clients(mock_url: str, rounds: int, quick: bool) -> dict[str, dict[str, Any]]:
    n, streams, seconds = (300, 15, 2.0) if quick else (1500, 40, 5.0)
    collected: dict[str, list[dict[str, float]]] = {name: [] for name in CLIENTS}
    for round_no in range(rounds):
        order = CLIENTS[round_no % len(CLIENTS) :] + CLIENTS[: round_no % len(CLIENTS)]
        for name in order:
            command = [sys.executable, __file__, "--client-worker", name, "--mock", mock_url]
            command += ["--n", str(n), "--streams", str(streams), "--seconds", str(seconds)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"client {name} failed:\n{done.stderr}")
            collected[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"  client round {round_no + 1}/{rounds} {name}: {collected[name][-1]}", file=sys.stderr)
    relative_to(collected, "httpx", ["cpu_us_per_request", "cpu_us_per_chunk"])
    return summarise(collected)


def relative_to(collected: dict[str, list[dict[str, float]]], baseline: str, keys: list[str]) -> None:
    """Add each figure as a ratio to the baseline's in the same round: steadier than absolutes under noise."""
    for results in collected.values():
        for round_no, figures in enumerate(results):
            for key in keys:
                figures[f"{key}_vs_{baseline}"] = figures[key] / collected[baseline][round_no][key]


def summarise(collected: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, Any]]:
    """Median of every figure over rounds, its spread (max - min) and the raw rounds."""
    summary: dict[str, dict[str, Any]] = {}
    for name, results in collected.items():
        keys = results[0].keys()
        summary[name] = {
            "median": {k: round(statistics.median(r[k] for r in results), 2) for k in keys},
            "spread": {k: round(max(r[k] for r in results) - min(r[k] for r in results), 2) for k in keys},
            "rounds": results,
        }
    return summary


# ---------------------------------------------------------------------------------------------------
# Servers: tollway end to end.

SERVERS = tuple(
    (server, loop, workers)
    for server in ("uvicorn", "granian")
    for loop in ("uvloop", "asyncio")
    for workers in (1, 2)
)
# The load generator: the cheapest client measured above, so that it takes little of the two cores.
GENERATOR = "aiohttp (raw, reference)"


def server_name(server: str, loop: str, workers: int) -> str:
    return f"{server} {loop} w{workers}"


def server_command(server: str, loop: str, workers: int, port: int) -> list[str]:
    """The same options `tollway serve` gives uvicorn, and their granian equivalents."""
    if server == "uvicorn":
        return [
            *(sys.executable, "-m", "uvicorn", "tollway.app:app_from_env", "--factory"),
            *("--host", "127.0.0.1", "--port", str(port), "--http", "httptools", "--loop", loop),
            *("--no-access-log", "--log-level", "warning", "--timeout-graceful-shutdown", "5"),
            *("--workers", str(workers)),
        ]
    return [
        *(sys.executable, "-m", "granian", "--interface", "asgi", "--factory"),
        *("--host", "127.0.0.1", "--port", str(port), "--http", "1", "--no-ws", "--loop", loop),
        *("--no-access-log", "--log-level", "warning", "--workers", str(workers)),
        "tollway.app:app_from_env",
    ]


def write_config(folder: Path, mock_url: str) -> Path:
    """What scripts/bench.py's write_config writes for its non-stream model: billing on, SQLite."""
    (folder / "prices").mkdir(exist_ok=True)
    (folder / "prices" / "bench.toml").write_text(
        '[[prices]]\nmodel = "bench"\neffective_from = 2024-01-01T00:00:00Z\ninput = "0.15"\n'
        'cached_input = "0.075"\noutput = "0.60"\n'
    )
    config = folder / "tollway.toml"
    config.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{folder / "bench.db"}"\nmigrate_on_start = true\n'
        '[pricing]\ndir = "prices"\n'
        f'[[upstreams]]\nname = "mock"\nbase_url = "{mock_url}/v1"\nmax_connections = 2000\n'
        '[[models]]\nname = "bench"\nupstream = "mock"\nupstream_model = "demo"\nmax_output_tokens = 64\n'
    )
    return config


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children, live and reaped."""
    total = 0.0
    for candidate in Path("/proc").iterdir():
        if not candidate.name.isdigit():
            continue
        try:
            fields = (candidate / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(candidate.name) == pid or int(fields[1]) == pid:
            total += sum(int(f) for f in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, server: str, loop: str, workers: int, mock_url: str, env: dict[str, str]) -> None:
        self.name = server_name(server, loop, workers)
        self.folder = Path(tempfile.mkdtemp(prefix="tollway-stack-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = write_config(self.folder, mock_url)
        env = {**env, "TOLLWAY_CONFIG": str(config), "TOLLWAY_PUBLIC_URL": self.url}
        # Migrate once up front, as `tollway serve` does, so that several workers never race to.
        subprocess.run(
            [sys.executable, "-m", "tollway", "db", "upgrade"],
            env=env,
            cwd=self.folder,
            check=True,
            capture_output=True,
        )
        self.log = (self.folder / "server.log").open("wb")
        self.process = subprocess.Popen(
            server_command(server, loop, workers, self.port),
            env=env,
            cwd=self.folder,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.key = ""

    def ready(self) -> None:
        wait(f"{self.url}/health")
        admin = {"authorization": "Bearer bench"}
        workspace = httpx.post(f"{self.url}/admin/workspaces", json={"name": "bench"}, headers=admin).json()
        credited = httpx.post(
            f"{self.url}/admin/workspaces/{workspace['id']}/credits",
            json={"amount_usd": "100000"},
            headers=admin,
        )
        assert credited.status_code == 201, credited.text
        self.key = httpx.post(
            f"{self.url}/admin/workspaces/{workspace['id']}/keys", json={"name": "bench"}, headers=admin
        ).json()["key"]

    def stop(self) -> float | str:
        """SIGTERM, as a supervisor would: the seconds until the process is gone, or why it is not.

        A server still there after 30 s gets SIGABRT, which makes faulthandler (on via
        PYTHONFAULTHANDLER) write every stuck process's Python stacks to its log.
        """
        started = time.perf_counter()
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for pid in (self.process.pid, *children(self.process.pid)):
                os.kill(pid, signal.SIGABRT)
            time.sleep(1)
            self.process.kill()
            self.process.wait()
            self.log.close()
            return f"stuck after SIGTERM; stacks in {self.folder / 'server.log'}"
        self.log.close()
        return round(time.perf_counter() - started, 2)


def children(pid: int) -> list[int]:
    found = []
    for candidate in Path("/proc").iterdir():
        try:
            if (
                candidate.name.isdigit()
                and int((candidate / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid
            ):
                found.append(int(candidate.name))
        except OSError:
            continue
    return found


async def latency(url: str, headers: dict[str, str], model: str, count: int) -> list[float]:
    client = make_upstream(GENERATOR, url, 1, headers)
    payload = body(model)
    for _ in range(20):
        await client.complete(payload)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await client.complete(payload)
        samples.append(time.perf_counter() - started)
    await client.aclose()
    return samples


async def throughput(
    url: str, headers: dict[str, str], model: str, seconds: float, pid: int | None = None
) -> dict[str, float]:
    client = make_upstream(GENERATOR, url, 32, headers)
    payload = body(model)
    done = errors = 0
    await asyncio.gather(*(client.complete(payload) for _ in range(32)))
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done, errors
        while time.perf_counter() < deadline:
            try:
                await client.complete(payload)
                done += 1
            except Exception:
                errors += 1

    cpu = cpu_seconds(pid) if pid else 0.0
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(32)))
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu if pid else 0.0
    await client.aclose()
    return {"rps": done / elapsed, "errors": errors, "server_cpu_us_per_request": cpu / max(done, 1) * US}


def bench_servers(mock_url: str, rounds: int, quick: bool) -> dict[str, dict[str, Any]]:
    import uvloop

    n, seconds = (200, 3.0) if quick else (500, 6.0)
    env = {**os.environ, "TOLLWAY_ADMIN_TOKEN": "bench", "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
    env = {k: v for k, v in env.items() if k not in ("TOLLWAY_DATABASE_URL",)}
    servers = [Server(*variant, mock_url, env) for variant in SERVERS]
    collected: dict[str, list[dict[str, float]]] = {s.name: [] for s in servers}
    shutdown: dict[str, float | str] = {}
    run: Callable[[Awaitable[Any]], Any]
    try:
        for server in servers:
            server.ready()
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            run = runner.run
            direct_rps: list[float] = []
            for round_no in range(rounds):
                direct_rps.append(run(throughput(mock_url, UPSTREAM_HEADERS, "demo", seconds))["rps"])
                shift = round_no % len(servers)
                for server in servers[shift:] + servers[:shift]:
                    headers = {"authorization": f"Bearer {server.key}", "content-type": "application/json"}
                    direct = run(latency(mock_url, UPSTREAM_HEADERS, "demo", n))
                    proxied = run(latency(server.url, headers, "bench", n))
                    load = run(throughput(server.url, headers, "bench", seconds, server.process.pid))
                    collected[server.name].append(
                        {
                            "direct_p50_ms": pct(direct, 0.5) * 1e3,
                            "p50_ms": pct(proxied, 0.5) * 1e3,
                            "added_p50_ms": (pct(proxied, 0.5) - pct(direct, 0.5)) * 1e3,
                            "p99_ms": pct(proxied, 0.99) * 1e3,
                            "added_p99_ms": (pct(proxied, 0.99) - pct(direct, 0.99)) * 1e3,
                            "c32_rps": load["rps"],
                            "c32_errors": load["errors"],
                            "c32_server_cpu_us_per_request": load["server_cpu_us_per_request"],
                        }
                    )
                    print(
                        f"  server round {round_no + 1}/{rounds} {server.name}: {collected[server.name][-1]}",
                        file=sys.stderr,
                    )
    finally:
        for server in servers:
            shutdown[server.name] = server.stop()
    relative_to(collected, "uvicorn uvloop w1", ["c32_rps"])
    summary = summarise(collected)
    for name, seconds_to_stop in shutdown.items():
        summary[name]["sigterm_exit_s"] = seconds_to_stop
    summary["direct to mock"] = {"median": {"c32_rps": round(statistics.median(direct_rps), 1)}}
    return summary


def table(rows: dict[str, dict[str, Any]], columns: list[str]) -> str:
    lines = ["| variant | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, figures in rows.items():
        median, spread = figures["median"], figures.get("spread", {})
        cells = [
            f"{median[c]:g}" + (f" ±{spread[c] / 2:g}" if spread.get(c) else "") if c in median else ""
            for c in columns
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer samples and rounds, for a smoke run")
    parser.add_argument("--only", choices=("client", "server"))
    parser.add_argument("--out", default="bench-results")
    # Internal: one client measurement in a process of its own.
    parser.add_argument("--client-worker", help=argparse.SUPPRESS)
    parser.add_argument("--mock", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--streams", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client_worker:
        run_client_worker(args)
        return
    rounds = 2 if args.quick and args.rounds == 5 else args.rounds

    mock_port = free_port()
    mock_url = f"http://127.0.0.1:{mock_port}"
    mock = subprocess.Popen(
        [sys.executable, "-m", "tollway", "mock-upstream", "--port", str(mock_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results: dict[str, Any] = {}
    try:
        wait(f"{mock_url}/mock/stats")
        if args.only in (None, "client"):
            results["clients"] = bench_clients(mock_url, rounds, args.quick)
        if args.only in (None, "server"):
            results["servers"] = bench_servers(mock_url, rounds, args.quick)
    finally:
        mock.terminate()
        mock.wait()

    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "rounds": rounds,
        "quick": args.quick,
        "load_generator": GENERATOR,
        "results": results,
    }
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    (out / "stack.json").write_text(json.dumps(report, indent=2))
    print(f"{rounds} rounds, medians (± half the spread between rounds)\n")
    if "clients" in results:
        print("Upstream client, alone in its process, uvloop, against tollway mock-upstream:\n")
        print(
            table(
                results["clients"],
                [
                    "cpu_us_per_request",
                    "cpu_us_per_request_vs_httpx",
                    "cpu_us_per_chunk",
                    "cpu_us_per_chunk_vs_httpx",
                    "p50_ms",
                    "p99_ms",
                    "c32_rps",
                    "c32_cpu_us_per_request",
                    "c32_errors",
                ],
            )
        )
        print()
    if "servers" in results:
        print(f"tollway end to end (billing on, SQLite), load from {GENERATOR}:\n")
        print(
            table(
                results["servers"],
                [
                    "added_p50_ms",
                    "added_p99_ms",
                    "p50_ms",
                    "c32_rps",
                    "c32_rps_vs_uvicorn uvloop w1",
                    "c32_server_cpu_us_per_request",
                    "c32_errors",
                ],
            )
        )
        stops = {n: f["sigterm_exit_s"] for n, f in results["servers"].items() if "sigterm_exit_s" in f}
        print("\nSIGTERM to exit (s): " + ", ".join(f"{n}: {v}" for n, v in stops.items()))


if __name__ == "__main__":
    main()
