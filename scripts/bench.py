"""tollway's benchmark: every scenario direct-to-mock and through tollway, interleaved in rounds.

    scripts/bench [--rounds 5] [--quick] [--out bench-results] [--postgres URL | --no-postgres]
                  [--baseline SRC [--baseline-limits same|none]] [--floor]
                  [--rate-limits none|key-rpm|all]

Starts `tollway mock-upstream` and `tollway serve` (billing on, SQLite in a
temporary folder) as separate processes on loopback and drives them from
this process. Each round measures the mock directly and then tollway in
front of it, so both see the same machine state; the report gives the
median over rounds of each figure and of the difference (tollway - direct).
`--baseline SRC` runs a second tollway from another source tree (e.g. a
`git worktree` of an earlier commit, its `src` folder) beside the first,
in front of the same mock, measured in the same rounds right after it:
its figures are reported as `baseline_*`, with ratios to this tree's.
`--floor` adds `scripts/floor_proxy.py` twice, a bare relay (`floor_*`) and
one with a durable group-committed write per request (`floor_ledger_*`):
the least a Python proxy on this stack costs, measured in the same rounds.
Then it times reserve + settle with 1,000 and 1,000,000 prior ledger entries
in the workspace (`bench_ledger.py`), on SQLite and, given `--postgres` (the
`scripts/bench` wrapper starts a throwaway server when PostgreSQL is
installed), on PostgreSQL; with `--postgres` it also drives one workspace on
PostgreSQL at c=32 with each source tree in turn (`bench_throughput.py`).  Writes bench-results/bench.json and
bench-results/bench.md and prints the markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import bench_ledger
import bench_throughput
import httpx
from loopback import free_port, wait

T = TypeVar("T")
US = 1e6
HI = [{"role": "user", "content": "Say hi"}]
JSON = {"content-type": "application/json"}
MODEL = "bench"


def cpu_seconds(pid: int) -> float:
    """CPU time of a process, all its threads, from the scheduler's nanosecond accounting."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
    return total / 1e9


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# The mock's own names for the benchmark's models (tollway maps them in its config).
UPSTREAM_MODELS = {
    MODEL: "demo",
    "bench-stream": "demo:chunks=64,chunk_delay_ms=1",
    "bench-one": "demo:chunks=1",
    "bench-embed": "demo-embed",
    "bench-claude": "claude-mock",
}


class Target:
    """A chat endpoint: the mock itself, tollway in front of it, or a floor proxy in front of it."""

    def __init__(self, name: str, base: str, key: str | None, *, upstream_names: bool = False) -> None:
        self.name = name
        self.base = base
        self.headers = {"authorization": f"Bearer {key}"} if key else {}
        self.upstream_names = upstream_names  # it forwards models as they are: ask for the mock's names

    def model(self, name: str) -> str:
        return UPSTREAM_MODELS.get(name, name) if self.upstream_names else name

    def client(self, connections: int) -> aiohttp.ClientSession:
        # aiohttp as the load generator: httpx spends ~3.6 ms of CPU per request at c=32 on this
        # machine (scripts/bench_stack.py), so it would measure itself rather than the servers.
        return aiohttp.ClientSession(
            base_url=self.base,
            headers=self.headers,
            connector=aiohttp.TCPConnector(limit=connections),
            timeout=aiohttp.ClientTimeout(total=120),
        )


def body(model: str, stream: bool = False) -> bytes:
    return json.dumps({"model": model, "messages": HI, "stream": stream}).encode()


def responses_body(model: str, stream: bool = False) -> bytes:
    """The same request on the Responses surface (`POST /v1/responses`)."""
    return json.dumps({"model": model, "input": "Say hi", "stream": stream}).encode()


def embeddings_body(model: str, stream: bool = False) -> bytes:
    return json.dumps({"model": model, "input": "Say hi"}).encode()


def messages_body(model: str, stream: bool = False) -> bytes:
    """The same request on Anthropic's Messages surface (`POST /v1/messages`)."""
    return json.dumps({"model": model, "max_tokens": 64, "messages": HI, "stream": stream}).encode()


# Every surface the CPU figures cover: its path, its body, its model.
SURFACE_CALLS = {
    "chat": ("/v1/chat/completions", body, None),
    "responses": ("/v1/responses", responses_body, None),
    "embeddings": ("/v1/embeddings", embeddings_body, "bench-embed"),
    "messages": ("/v1/messages", messages_body, "bench-claude"),
}


async def post(client: aiohttp.ClientSession, model: str) -> int:
    async with client.post("/v1/chat/completions", data=body(model), headers=JSON) as response:
        await response.read()
        return response.status


async def latency(target: Target, model: str, count: int) -> list[float]:
    async with target.client(1) as client:
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            status = await post(client, model)
            samples.append(time.perf_counter() - started)
            assert status == 200, status
    return samples


async def streaming(target: Target, model: str, count: int) -> tuple[list[float], list[float]]:
    """Time to the first content chunk, and every gap between content chunks."""
    firsts: list[float] = []
    gaps: list[float] = []
    async with target.client(1) as client:
        for _ in range(count):
            started = time.perf_counter()
            last = None
            async with client.post(
                "/v1/chat/completions", data=body(model, stream=True), headers=JSON
            ) as response:
                async for line in response.content:
                    if not line.startswith(b"data: {") or b'"content"' not in line:
                        continue
                    now = time.perf_counter()
                    if last is None:
                        firsts.append(now - started)
                    else:
                        gaps.append(now - last)
                    last = now
    return firsts, gaps


async def throughput(target: Target, model: str, concurrency: int, seconds: float) -> tuple[float, int]:
    done = errors = 0
    deadline = time.perf_counter() + seconds
    async with target.client(concurrency) as client:

        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < deadline:
                try:
                    status = await post(client, model)
                    done += status == 200
                    errors += status != 200
                except aiohttp.ClientError:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - started), errors


async def open_streams(target: Target, model: str, count: int, pid: int) -> dict[str, float]:
    """`count` streams open at once; how many finished, and tollway's peak memory."""
    finished = 0
    async with target.client(count) as client:

        async def one() -> None:
            nonlocal finished
            async with client.post(
                "/v1/chat/completions", data=body(model, stream=True), headers=JSON
            ) as response:
                text = await response.read()
                finished += text.rstrip().endswith(b"data: [DONE]")

        await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    return {
        "streams": count,
        "completed": finished,
        "stalled": count - finished,
        "peak_rss_mb": peak_rss_mb(pid),
    }


def rotated(items: list[T], round_no: int) -> list[T]:
    """`items` from a different one each round: no server is always the first (or last) measured."""
    start = round_no % len(items) if items else 0
    return items[start:] + items[:start]


def measure_rounds(
    rounds: int, runs: dict[str, Callable[[int], Awaitable[dict[str, float]]]]
) -> dict[str, Any]:
    """Run each scenario for every round, collecting per-round figures; report medians."""
    collected: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
    for round_no in range(rounds):
        for name, run in runs.items():
            collected[name].append(asyncio.run(run(round_no)))
    return {
        name: {key: round(statistics.median(r[key] for r in results), 3) for key in results[0]}
        for name, results in collected.items()
    }


def write_config(folder: Path, mock_url: str, database_url: str) -> Path:
    (folder / "prices").mkdir(exist_ok=True)
    prices = "\n".join(
        f'[[prices]]\nmodel = "{m}"\neffective_from = 2024-01-01T00:00:00Z\ninput = "0.15"\n'
        f'cached_input = "0.075"\noutput = "0.60"\n'
        for m in (MODEL, "bench-stream", "bench-open", "bench-one", "bench-embed", "bench-claude")
    )
    (folder / "prices" / "bench.toml").write_text(prices)
    config = folder / "tollway.toml"
    config.write_text(
        f'[database]\nurl = "{database_url}"\nmigrate_on_start = true\n[pricing]\ndir = "prices"\n'
        f'[[upstreams]]\nname = "mock"\nbase_url = "{mock_url}/v1"\nmax_connections = 2000\n'
        f'[[models]]\nname = "{MODEL}"\nupstream = "mock"\nupstream_model = "demo"\nmax_output_tokens = 64\n'
        '[[models]]\nname = "bench-stream"\nupstream = "mock"\n'
        'upstream_model = "demo:chunks=64,chunk_delay_ms=1"\nmax_output_tokens = 64\n'
        '[[models]]\nname = "bench-open"\nupstream = "mock"\n'
        'upstream_model = "demo:chunks=20,chunk_delay_ms=250"\nmax_output_tokens = 64\n'
        '[[models]]\nname = "bench-one"\nupstream = "mock"\nupstream_model = "demo:chunks=1"\n'
        "max_output_tokens = 64\n"
        '[[models]]\nname = "bench-embed"\nupstream = "mock"\nupstream_model = "demo-embed"\n'
        'encoding = "cl100k_base"\n'
        f'[[upstreams]]\nname = "mock-anthropic"\nbase_url = "{mock_url}/v1"\nprotocol = "anthropic"\n'
        "max_connections = 2000\n"
        '[[models]]\nname = "bench-claude"\nupstream = "mock-anthropic"\nupstream_model = "claude-mock"\n'
        "max_output_tokens = 64\n"
    )
    return config


def start_tollway(
    home: Path,
    mock_url: str,
    env: dict[str, str],
    src: str | None,
    rate_limits: str,
    prefix: tuple[str, ...] = (),
) -> tuple[subprocess.Popen[bytes], Target]:
    """`tollway serve` in `home` (from the source tree `src`, else this one), a funded workspace and a key.

    `prefix` runs the server under another program (`bench_instructions.py`: callgrind)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = write_config(home, mock_url, f"sqlite+aiosqlite:///{home / 'bench.db'}")
    if src is not None:
        env = {**env, "PYTHONPATH": str(Path(src).resolve())}
    server = subprocess.Popen(
        [*prefix, sys.executable, "-m", "tollway", "serve", "--config", str(config), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=home,
    )
    try:
        return server, _funded_target(home, url, rate_limits, timeout=120 if prefix else 5)
    except BaseException:  # not left running behind a failed start
        server.kill()
        server.wait()
        raise


def _funded_target(home: Path, url: str, rate_limits: str, timeout: float) -> Target:
    """Once `url` is up: a workspace with credit and a key, with `rate_limits` on it."""
    wait(f"{url}/health", seconds=max(30, timeout))
    every = {"requests_per_minute": 10**9, "tokens_per_minute": 2**53 - 1, "max_concurrent": 10**6}
    rpm = {"requests_per_minute": 10**9}
    limits: dict[str, int] = {"none": {}, "key-rpm": rpm, "all": every}[rate_limits]
    # Under callgrind (`timeout` 120) the first money write takes longer than httpx's usual 5 s.
    with httpx.Client(base_url=url, headers={"authorization": "Bearer bench"}, timeout=timeout) as admin:
        workspace = admin.post("/admin/workspaces", json={"name": "bench"}).json()
        admin.post(f"/admin/workspaces/{workspace['id']}/credits", json={"amount_usd": "100000"})
        if rate_limits == "all":
            admin.patch(f"/admin/workspaces/{workspace['id']}", json=every)
        key = admin.post(
            f"/admin/workspaces/{workspace['id']}/keys", json={"name": "bench", **limits}
        ).json()["key"]
    return Target(home.name, url, key)


def start_floor(
    name: str, mock_url: str, env: dict[str, str], mode: str
) -> tuple[subprocess.Popen[bytes], Target]:
    port = free_port()
    script = Path(__file__).resolve().parent / "floor_proxy.py"
    server = subprocess.Popen(
        [sys.executable, str(script), str(port), mock_url, mode],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait(f"{url}/health")
    return server, Target(name, url, None, upstream_names=True)


def postgres_throughput(
    server: str, mock_url: str, sources: dict[str, str | None], rounds: int, seconds: float
) -> dict[str, float]:
    """Billed req/s at c=32 into one workspace on PostgreSQL, one worker: each source tree in turn,
    `rounds` times (a fresh database each), medians.  Its cost is the workspace's row lock."""
    runs: dict[str, list[float]] = {name: [] for name in sources}
    for round_no in range(rounds):
        for name, src in rotated(list(sources.items()), round_no):
            database = bench_throughput.create_pg_database(server)
            case = bench_throughput.run_case("postgresql", database, 1, mock_url, seconds, 32, src)
            assert case["errors"] == 0, case
            runs[name].append(float(str(case["requests_per_second"])))
    figures = {f"{name}_rps": round(statistics.median(values), 1) for name, values in runs.items()}
    if "baseline_rps" in figures:
        figures["ratio_to_baseline"] = round(figures["tollway_rps"] / figures["baseline_rps"], 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer samples, for a smoke run")
    parser.add_argument("--out", default="bench-results")
    parser.add_argument(
        "--cpu-rounds",
        type=int,
        help="rounds of the CPU rows, each server in turn, medians reported (default: rounds // 2, "
        "at least 1; one batch per row wanders by tens of per cent on a busy 2-core machine)",
    )
    parser.add_argument(
        "--postgres",
        help="admin URL of a PostgreSQL server for the ledger-growth rows and one workspace's throughput",
    )
    parser.add_argument("--no-postgres", action="store_true", help="(read by scripts/bench)")
    parser.add_argument(
        "--rate-limits",
        choices=("none", "key-rpm", "all"),
        default="none",
        help="rate limits high enough never to refuse, so each request pays for being counted: "
        "key-rpm (requests_per_minute on the key), all (all three on the key and its workspace)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also measure scripts/floor_proxy.py (a bare relay, and one with a durable write) alongside",
    )
    parser.add_argument(
        "--baseline",
        metavar="SRC",
        help="another tollway source tree (its src folder) to measure side by side, as `baseline`",
    )
    parser.add_argument(
        "--baseline-limits",
        choices=("same", "none"),
        default="same",
        help="the baseline's key gets the same --rate-limits (default), or none (a tree from before them)",
    )
    args = parser.parse_args()
    n_latency, n_stream, seconds, n_open = (100, 10, 2.0, 200) if args.quick else (400, 40, 5.0, 1000)

    folder = Path(tempfile.mkdtemp(prefix="tollway-bench-"))
    mock_port = free_port()
    mock_url = f"http://127.0.0.1:{mock_port}"
    env = {**os.environ, "TOLLWAY_ADMIN_TOKEN": "bench"}
    run = [sys.executable, "-m", "tollway"]
    mock = subprocess.Popen(
        [*run, "mock-upstream", "--port", str(mock_port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    servers: dict[str, subprocess.Popen[bytes]] = {}
    sources = {"tollway": None} if args.baseline is None else {"tollway": None, "baseline": args.baseline}
    try:
        wait(f"{mock_url}/mock/stats")
        proxies: dict[str, Target] = {}
        for name, src in sources.items():
            home = folder / name
            home.mkdir()
            limits = "none" if name == "baseline" and args.baseline_limits == "none" else args.rate_limits
            servers[name], proxies[name] = start_tollway(home, mock_url, env, src, limits)
        if args.floor:
            for name, mode in (("floor", "none"), ("floor_ledger", "ledger")):
                servers[name], proxies[name] = start_floor(name, mock_url, env, mode)
        direct = Target("direct", mock_url, None, upstream_names=True)
        proxied = proxies["tollway"]
        server = servers["tollway"]

        async def lat(round_no: int) -> dict[str, float]:
            d = await latency(direct, direct.model(MODEL), n_latency)
            figures = {"direct_p50_ms": pct(d, 0.5) * 1e3, "direct_p99_ms": pct(d, 0.99) * 1e3}
            for name, target in rotated(list(proxies.items()), round_no):
                t = await latency(target, target.model(MODEL), n_latency)
                prefix = "" if name == "tollway" else f"{name}_"
                figures |= {
                    f"{name}_p50_ms": pct(t, 0.5) * 1e3,
                    f"{prefix}added_p50_ms": (pct(t, 0.5) - pct(d, 0.5)) * 1e3,
                    f"{name}_p99_ms": pct(t, 0.99) * 1e3,
                    f"{prefix}added_p99_ms": (pct(t, 0.99) - pct(d, 0.99)) * 1e3,
                }
            return figures

        async def stream(round_no: int) -> dict[str, float]:
            d_first, d_gaps = await streaming(direct, direct.model("bench-stream"), n_stream)
            figures = {"direct_gap_p99_ms": pct(d_gaps, 0.99) * 1e3}
            for name, target in rotated(list(proxies.items()), round_no):
                t_first, t_gaps = await streaming(target, target.model("bench-stream"), n_stream)
                prefix = "" if name == "tollway" else f"{name}_"
                figures |= {
                    f"{prefix}added_ttfc_p50_ms": (pct(t_first, 0.5) - pct(d_first, 0.5)) * 1e3,
                    f"{prefix}added_ttfc_p99_ms": (pct(t_first, 0.99) - pct(d_first, 0.99)) * 1e3,
                    f"{prefix}added_gap_p99_ms": (pct(t_gaps, 0.99) - pct(d_gaps, 0.99)) * 1e3,
                    f"{name}_gap_p99_ms": pct(t_gaps, 0.99) * 1e3,
                }
            return figures

        def load(concurrency: int) -> Callable[[int], Awaitable[dict[str, float]]]:
            async def go(round_no: int) -> dict[str, float]:
                d, d_err = await throughput(direct, direct.model(MODEL), concurrency, seconds)
                figures = {"direct_rps": d, "direct_errors": d_err}
                for name, target in rotated(list(proxies.items()), round_no):
                    t, t_err = await throughput(target, target.model(MODEL), concurrency, seconds)
                    prefix = "" if name == "tollway" else f"{name}_"
                    figures |= {f"{name}_rps": t, f"{prefix}ratio": t / d, f"{name}_errors": t_err}
                return figures

            return go

        results = measure_rounds(
            args.rounds,
            {
                "non-stream latency, c=1": lat,
                "streaming, 64 chunks, c=1": stream,
                "throughput, c=32": load(32),
                "throughput, c=128": load(128),
            },
        )

        # CPU accounting: tollway's own user+system time over a batch of requests.
        async def cpu_batch(
            model: str, count: int, stream_it: bool, responses: bool = False, name: str = "tollway"
        ) -> float:
            return await surface_batch("responses" if responses else "chat", model, count, stream_it, name)

        async def surface_batch(surface: str, model: str, count: int, stream_it: bool, name: str) -> float:
            path, make, _ = SURFACE_CALLS[surface]
            responses = surface == "responses"
            pid = servers[name].pid
            model = proxies[name].model(model)
            before = cpu_seconds(pid)
            async with proxies[name].client(8) as client:

                async def one() -> None:
                    async with client.post(path, data=make(model, stream_it), headers=JSON) as response:
                        text = await response.read()
                        assert response.status == 200, (name, path, response.status, text[:300])
                        # A Responses stream ends with its terminal event (there is no [DONE]).
                        assert not (responses and stream_it) or b"event: response.completed" in text

                for _ in range(count // 8):
                    await asyncio.gather(*(one() for _ in range(8)))
            return (cpu_seconds(pid) - before) / (count // 8 * 8)

        n_cpu, n_cpu_streams = (800, 160) if args.quick else (3000, 480)

        async def cpu_figures(name: str) -> dict[str, float]:
            per_request = await cpu_batch(MODEL, n_cpu, False, name=name)
            per_stream_64 = await cpu_batch("bench-stream", n_cpu_streams, True, name=name)
            per_stream_1 = await cpu_batch("bench-one", n_cpu_streams, True, name=name)
            # The Responses surface: the same 64- and 1-word answers streamed as Responses events (72
            # and 9: created, in_progress, item and part added, one delta per word, three "done"s,
            # completed), so the difference is 63 relayed delta events, as for chat's chunks.
            per_responses_64 = await cpu_batch("bench-stream", n_cpu_streams, True, responses=True, name=name)
            per_responses_1 = await cpu_batch("bench-one", n_cpu_streams, True, responses=True, name=name)
            figures = {
                "per_billed_request_us": per_request * US,
                "per_relayed_chunk_us": (per_stream_64 - per_stream_1) / 63 * US,
                "per_relayed_responses_event_us": (per_responses_64 - per_responses_1) / 63 * US,
            }
            # Non-stream CPU per billed request on every other surface (the same hot path).
            for surface in ("responses", "embeddings", "messages"):
                model = SURFACE_CALLS[surface][2] or MODEL
                figures[f"per_billed_{surface}_request_us"] = (
                    await surface_batch(surface, model, n_cpu // 2, False, name) * US
                )
            return figures

        # Interleaved like the rest: each round measures every server in turn.
        cpu_rounds: dict[str, list[dict[str, float]]] = {name: [] for name in proxies}
        n_cpu_rounds = args.cpu_rounds or (max(1, args.rounds // 2) if len(proxies) > 1 else 1)
        for round_no in range(n_cpu_rounds):
            for name in rotated(list(proxies), round_no):
                cpu_rounds[name].append(asyncio.run(cpu_figures(name)))
        cpu_medians = {
            name: {k: statistics.median(r[k] for r in rows) for k in rows[0]}
            for name, rows in cpu_rounds.items()
        }
        results["tollway CPU"] = {k: round(v, 1) for k, v in cpu_medians["tollway"].items()}
        for name, medians in cpu_medians.items():
            if name == "tollway":
                continue
            for k, v in medians.items():
                results["tollway CPU"][f"{name}_{k}"] = round(v, 1)
                if name == "baseline":
                    results["tollway CPU"][f"ratio_{k}"] = round(cpu_medians["tollway"][k] / v, 3)
        results[f"{n_open} concurrent open streams"] = asyncio.run(
            open_streams(proxied, "bench-open", n_open, server.pid)
        )
        if args.postgres:
            results["PostgreSQL, one workspace, c=32"] = postgres_throughput(
                args.postgres, mock_url, sources, args.rounds, 2.0 if args.quick else 5.0
            )
    finally:
        for process in servers.values():
            process.terminate()
        mock.terminate()
        for process in servers.values():
            process.wait()
        mock.wait()

    priors = [1_000, 100_000] if args.quick else [1_000, 1_000_000]
    growth = asyncio.run(bench_ledger.run(500 if args.quick else 2000, priors, args.postgres))
    for engine, rows in growth.items():
        small, large = rows[0], rows[-1]
        results[f"reserve + settle, {engine}"] = {
            f"p50_ms_at_{small['prior_entries']}_prior": small["both_p50_ms"],
            f"p50_ms_at_{large['prior_entries']}_prior": large["both_p50_ms"],
            "ratio": round(large["both_p50_ms"] / small["both_p50_ms"], 2),
            f"p99_ms_at_{large['prior_entries']}_prior": large["both_p99_ms"],
        }

    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "rounds": args.rounds,
        "quick": args.quick,
        "rate_limits": args.rate_limits,
        "baseline": args.baseline,
        "baseline_limits": args.baseline_limits,
        "floor": args.floor,
        "results": results,
    }
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report, indent=2))
    lines = ["| scenario | figure | value |", "|---|---|---|"]
    for scenario, figures in results.items():
        for name, value in figures.items():
            lines.append(f"| {scenario} | {name} | {value} |")
    table = "\n".join(lines)
    (out / "bench.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
