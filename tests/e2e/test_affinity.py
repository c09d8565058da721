"""`tollway serve` on SQLite pins each worker's threads to one CPU (`[server] pin_cpu`, on by
default): two workers take two CPUs; `pin_cpu = false` leaves them to the kernel, and so does
PostgreSQL (a worker there has no ledger thread)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.dbs import drop_database, is_postgres

from .conftest import Mock, Tollway, launch, shut

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs two CPUs this process may use",
)


def _chat(server: Tollway, key: str) -> None:
    """A billed request, so the worker that serves it has started its ledger thread."""
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def _masks(pid: int) -> set[tuple[int, ...]]:
    """The allowed CPUs of each of the process's threads."""
    return {tuple(sorted(os.sched_getaffinity(int(t)))) for t in os.listdir(f"/proc/{pid}/task")}


def _workers(pid: int) -> list[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        pids = [int(child) for child in children.read().split()]
    workers = []
    for child in pids:
        with open(f"/proc/{child}/cmdline", "rb") as cmdline:
            if b"spawn_main" in cmdline.read():
                workers.append(child)
    return workers


def test_two_workers_take_two_cpus_on_sqlite_and_none_on_postgresql(mock: Mock, tmp_path: Path) -> None:
    server, process = launch(mock, tmp_path, extra=("--workers", "2"))
    try:
        if is_postgres():  # no ledger thread to share a CPU with: left to the kernel
            _chat(server, server.new_account("free", credit_usd="1.00").key)
            everywhere = {tuple(sorted(os.sched_getaffinity(0)))}
            assert [_masks(pid) for pid in _workers(process.pid)] == [everywhere, everywhere]
            return
        account = server.new_account("pinned", credit_usd="1.00")
        _chat(server, account.key)
        workers = _workers(process.pid)
        masks = [_masks(pid) for pid in workers]
        assert len(workers) == 2
        assert all(len(mask) == 1 and len(next(iter(mask))) == 1 for mask in masks)  # one CPU each
        cpus = sorted(next(iter(mask))[0] for mask in masks)
        assert cpus == sorted(os.sched_getaffinity(0))[:2]  # the two lowest slots, one each
        assert len(_masks(process.pid).pop()) > 1  # the supervisor itself is not pinned
    finally:
        shut(server, process)
        drop_database(server.database_url)


@pytest.mark.skipif(is_postgres(), reason="PostgreSQL never pins (the test above)")
def test_pin_cpu_false_leaves_the_threads_to_the_kernel(mock: Mock, tmp_path: Path) -> None:
    launch_dir = tmp_path
    server, process = launch(mock, launch_dir)
    shut(server, process)
    config = launch_dir / "tollway.toml"
    config.write_text(config.read_text().replace("[server]\n", "[server]\npin_cpu = false\n", 1))
    server, process = launch(mock, launch_dir)
    try:
        account = server.new_account("free", credit_usd="1.00")
        _chat(server, account.key)
        assert _masks(process.pid) == {tuple(sorted(os.sched_getaffinity(0)))}
    finally:
        shut(server, process)
        drop_database(server.database_url)
