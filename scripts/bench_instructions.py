"""Instructions per request, counted by callgrind: a figure the machine's speed does not move.

    python scripts/bench_instructions.py [--baseline SRC] [--requests 1600] [--rate-limits none|key-rpm|all]

CPU time on a shared 2-vCPU VM wanders by 5-15 % from one minute to the next, more than most
single changes to the request path are worth.  The number of instructions a request executes
hardly does: the same code counted twice in one run came out 0.2 % (c=1), 0.6 % (c=8) and 1.1 %
(per chunk) apart, whatever else the machine was doing (the rest is group commit's batch sizes,
checkpoints and timers falling differently).  So this script starts `tollway mock-upstream` as usual and
`tollway serve` (from this tree and, with `--baseline`, from another) under valgrind's callgrind
with instrumentation off, drives each with a light raw-socket client, and switches counting on
(`callgrind_control -i on`) only around the measured requests of the server's process (every
thread: the event loop, the ledger thread, the access log's writer).  It reports instructions per
billed chat request at c=1 and c=8 and per relayed chunk ((64-chunk streams - 1-chunk streams) /
63, at c=8), for each tree, and their ratio.

Read it beside `scripts/bench`, not instead of it: an instruction is not a fixed time (a system
call, a cache miss or a `rep stos` memset counts as little or as much as callgrind decides; a GIL
hand-off between threads costs time but few instructions), and callgrind serialises the threads,
so it says nothing about waiting.  Needs valgrind (Debian's package); the tests do not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import start_tollway
from loopback import free_port, wait

_LAST_CHUNK = b"\r\n0\r\n\r\n"  # a chunked body ends with a chunk of size 0


def request_bytes(key: str, model: str, stream: bool) -> bytes:
    body: dict[str, object] = {"model": model, "messages": [{"role": "user", "content": "Say hi"}]}
    if stream:
        body["stream"] = True
    data = json.dumps(body).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: tollway\r\nauthorization: Bearer {key}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def _client(port: int, request: bytes, count: int, stream: bool) -> None:
    """`count` requests in turn on one keep-alive connection; each answer must be a 200."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(count):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"tollway answered {head.splitlines()[0]!r}")
            if stream:
                await reader.readuntil(_LAST_CHUNK)
                continue
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
    finally:
        writer.close()


def drive(port: int, request: bytes, count: int, concurrency: int, stream: bool) -> int:
    """About `count` requests from `concurrency` clients at once; how many were sent."""
    share = count // concurrency

    async def all_clients() -> None:
        await asyncio.gather(*(_client(port, request, share, stream) for _ in range(concurrency)))

    asyncio.run(all_clients())
    return share * concurrency


class CountedServer:
    """A tollway under callgrind, counting only around the requests `count` measures."""

    def __init__(self, home: Path, mock_url: str, env: dict[str, str], src: str | None, limits: str) -> None:
        self.home = home
        prefix = (
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--dump-line=no",
            f"--callgrind-out-file={home}/callgrind.%p",
        )
        self.process, target = start_tollway(home, mock_url, env, src, limits, prefix)
        self.port = int(target.base.rsplit(":", 1)[1])
        self.key = target.headers["authorization"].removeprefix("Bearer ")

    def _control(self, *args: str) -> None:
        subprocess.run(["callgrind_control", *args, str(self.process.pid)], check=True, capture_output=True)

    def count(self, request: bytes, requests: int, concurrency: int, stream: bool) -> int:
        """Instructions per request over `requests` requests (after half as many to warm up)."""
        drive(self.port, request, max(requests // 2, concurrency), concurrency, stream)
        for old in self.home.glob("callgrind.*"):
            old.unlink()
        self._control("--zero")
        self._control("--instr=on")
        sent = drive(self.port, request, requests, concurrency, stream)
        self._control("--instr=off")
        self._control("--dump")
        for _ in range(100):  # the dump is written by the server's own thread, shortly after
            dumps = [path for path in self.home.glob("callgrind.*.*") if path.stat().st_size]
            totals = [
                line for path in dumps for line in path.read_text().splitlines() if line.startswith("totals:")
            ]
            if totals:
                return int(totals[0].split()[1]) // sent
            time.sleep(0.1)
        raise RuntimeError("callgrind wrote no dump")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", help="the src folder of another source tree, counted beside this one")
    parser.add_argument("--requests", type=int, default=1600, help="measured requests per figure")
    parser.add_argument("--rate-limits", choices=("none", "key-rpm", "all"), default="none")
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("bench_instructions needs valgrind (apt install valgrind)")

    folder = Path(tempfile.mkdtemp(prefix="tollway-instructions-"))
    mock_port = free_port()
    mock_url = f"http://127.0.0.1:{mock_port}"
    env = {**os.environ, "TOLLWAY_ADMIN_TOKEN": "bench"}
    mock = subprocess.Popen(
        [sys.executable, "-m", "tollway", "mock-upstream", "--port", str(mock_port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    trees = {"tollway": None} if args.baseline is None else {"tollway": None, "baseline": args.baseline}
    servers: dict[str, CountedServer] = {}
    results: dict[str, dict[str, int]] = {}
    try:
        wait(f"{mock_url}/mock/stats")
        for name, src in trees.items():
            (folder / name).mkdir()
            servers[name] = CountedServer(folder / name, mock_url, env, src, args.rate_limits)
        n = args.requests
        for name, server in servers.items():
            chat = request_bytes(server.key, "bench", stream=False)
            one = request_bytes(server.key, "bench-one", stream=True)
            many = request_bytes(server.key, "bench-stream", stream=True)
            figures = {
                "per_billed_request_c1": server.count(chat, n // 4, 1, stream=False),
                "per_billed_request_c8": server.count(chat, n, 8, stream=False),
            }
            streams = max(n // 4, 8)
            one_stream = server.count(one, streams, 8, stream=True)
            many_stream = server.count(many, streams, 8, stream=True)
            figures["per_relayed_chunk_c8"] = (many_stream - one_stream) // 63
            results[name] = figures
    finally:
        for server in servers.values():
            server.stop()
        mock.terminate()
        mock.wait()
        shutil.rmtree(folder, ignore_errors=True)

    print("| figure (instructions) | " + " | ".join(results) + (" | ratio |" if len(results) > 1 else " |"))
    print("|---|" + "---|" * (len(results) + (len(results) > 1)))
    for figure in results["tollway"]:
        row = [f"{results[name][figure]:,}" for name in results]
        if "baseline" in results:
            row.append(f"{results['tollway'][figure] / results['baseline'][figure]:.3f}")
        print(f"| {figure} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
