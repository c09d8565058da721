"""The per-workspace batching of ledger/batches.py on its own (no database): who runs in which
transaction, and what each caller is told."""

from __future__ import annotations

import asyncio
from typing import Any

from tollway.ledger.batches import Batches, Job


class Recorder:
    """Stands in for the ledger: records the batches; a job's work returns its value or raises."""

    def __init__(self, *, fail_batches: bool = False) -> None:
        self.batches: list[list[Any]] = []
        self.alone: list[Any] = []
        self.fail_batches = fail_batches
        self.gate = asyncio.Event()
        self.gate.set()

    async def run_batch(self, workspace_id: str, jobs: list[Job[Any]]) -> list[tuple[bool, Any]]:
        await self.gate.wait()
        self.batches.append([await job.work(None) for job in jobs])
        if self.fail_batches:
            raise RuntimeError("rolled back")
        return [(True, value) for value in self.batches[-1]]

    async def run_one(self, workspace_id: str, job: Job[Any]) -> Any:
        await self.gate.wait()
        value = await job.work(None)
        self.alone.append(value)
        return value


def _value(n: int) -> Any:
    async def work(writer: Any) -> int:
        return n

    return work


async def test_jobs_behind_a_transaction_share_the_next_ones_up_to_the_limit() -> None:
    ledger = Recorder()
    batches = Batches(ledger.run_batch, ledger.run_one, max_batch=3)
    ledger.gate.clear()
    first = asyncio.ensure_future(batches.run("ws", _value(0), None, None))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(batches.run("ws", _value(n), None, None)) for n in range(1, 8)]
    other = asyncio.ensure_future(batches.run("ws_other", _value(99), None, None))
    await asyncio.sleep(0.01)
    ledger.gate.set()
    assert await asyncio.gather(first, *rest, other) == [*range(8), 99]
    # Alone at once (the first of each workspace), then the waiting ones three at a time (a
    # remainder of one runs alone).
    assert sorted(ledger.alone) == [0, 7, 99]
    assert ledger.batches == [[1, 2, 3], [4, 5, 6]]
    assert batches.batches == 2


async def test_callers_gone_before_their_turn_are_skipped_however_many() -> None:
    ledger = Recorder()
    batches = Batches(ledger.run_batch, ledger.run_one, max_batch=2)
    ledger.gate.clear()
    first = asyncio.ensure_future(batches.run("ws", _value(0), None, None))
    await asyncio.sleep(0)
    gone = [asyncio.ensure_future(batches.run("ws", _value(n), None, None)) for n in range(1, 6)]
    told: list[int] = []
    kept = asyncio.ensure_future(batches.run("ws", _value(6), None, told.append))
    last = [asyncio.ensure_future(batches.run("ws", _value(n), None, None)) for n in (7, 8)]
    await asyncio.sleep(0.01)
    for job in (*gone, kept):
        job.cancel()
    ledger.gate.set()
    assert await first == 0
    assert await asyncio.gather(*last) == [7, 8]
    # The five callers without `abandoned` never ran; the one with it ran (alone: the only one
    # wanted in its slice of two) and was told.
    assert ledger.alone == [0, 6] and told == [6]
    assert ledger.batches == [[7, 8]]


async def test_a_batch_that_fails_runs_each_job_alone() -> None:
    ledger = Recorder(fail_batches=True)
    batches = Batches(ledger.run_batch, ledger.run_one, max_batch=8)
    ledger.gate.clear()
    first = asyncio.ensure_future(batches.run("ws", _value(0), None, None))
    await asyncio.sleep(0)

    async def refused(writer: Any) -> int:
        raise ValueError("refused")

    jobs = [
        asyncio.ensure_future(batches.run("ws", work, None, None)) for work in (_value(1), refused, _value(3))
    ]
    await asyncio.sleep(0.01)
    ledger.gate.set()
    outcomes = await asyncio.gather(first, *jobs, return_exceptions=True)
    assert outcomes[:2] == [0, 1] and isinstance(outcomes[2], ValueError) and outcomes[3] == 3
    assert ledger.alone == [0, 1, 3]
    assert batches.batches == 0
