"""PostgreSQL money transactions, batched per workspace: group commit without a thread.

SQLite batches every job of the process on its ledger thread (`committer.py`).
On PostgreSQL the cost of a busy workspace is the time its row lock is held:
each statement under the lock is a round trip, and a request's reserve and
settle were two transactions of several statements each.  Here, while one
transaction of a workspace is under way in this process, that workspace's
next jobs wait; when it ends, one transaction takes all of them (up to
`max_batch`): one lock, one heads read, one COMMIT for the lot.  A job alone
runs at once, as before.

What a caller sees does not change.  A job's result is delivered only after
the COMMIT that made it durable.  A job that fails without writing (a refusal)
fails alone.  Any other failure (a statement error, which aborts a PostgreSQL
transaction, or a job that fails after writing) rolls the batch back, and each
of its jobs runs again in a transaction of its own, with the usual retries.
A caller cancelled before its job starts leaves nothing behind, as a cancelled
transaction did; one cancelled after it started has its result passed to
`abandoned` once committed, exactly as on SQLite's ledger thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from tollway.ledger.outcome import deliver

__all__ = ["Batches", "Job"]

T = TypeVar("T")


class Job(Generic[T]):
    __slots__ = ("abandoned", "future", "key_id", "work")

    def __init__(
        self,
        work: Callable[[Any], Awaitable[T]],
        key_id: str | None,
        abandoned: Callable[[T], None] | None,
        future: asyncio.Future[T],
    ) -> None:
        self.work = work
        self.key_id = key_id
        self.abandoned = abandoned
        self.future = future

    @property
    def wanted(self) -> bool:
        """Still worth running: its caller waits, or will be told what landed without it."""
        return not self.future.cancelled() or self.abandoned is not None

    def deliver(self, ok: bool, value: Any) -> None:
        deliver(self.future, self.abandoned, ok, value)


# Runs a batch of two or more jobs in one transaction: each job's (ok, value), or raises to have
# each job run alone.
RunBatch = Callable[[str, list[Job[Any]]], Awaitable[list[tuple[bool, Any]]]]
# Runs one job in a transaction of its own: its result, or raises (the caller's `Ledger.transact`
# retries a transient failure).
RunOne = Callable[[str, Job[Any]], Awaitable[Any]]


class Batches:
    def __init__(self, run_batch: RunBatch, run_one: RunOne, *, max_batch: int = 64) -> None:
        self._run_batch = run_batch
        self._run_one = run_one
        self._max_batch = max_batch
        # Workspaces with a transaction under way in this process, and the jobs waiting behind it.
        self._waiting: dict[str, list[Job[Any]]] = {}
        self._drains: set[asyncio.Task[None]] = set()
        self.batches = 0  # for tests and benchmarks: transactions of more than one job

    async def run(
        self,
        workspace_id: str,
        work: Callable[[Any], Awaitable[T]],
        key_id: str | None,
        abandoned: Callable[[T], None] | None,
    ) -> T:
        job: Job[T] = Job(work, key_id, abandoned, asyncio.get_running_loop().create_future())
        waiting = self._waiting.get(workspace_id)
        if waiting is not None:
            waiting.append(job)
        else:
            self._waiting[workspace_id] = []
            drain = asyncio.ensure_future(self._drain(workspace_id, [job]))
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        return await job.future

    async def _drain(self, workspace_id: str, batch: list[Job[Any]]) -> None:
        try:
            while batch:
                await self._commit(workspace_id, batch)
                waiting = self._waiting[workspace_id]
                batch = []
                while waiting and not batch:  # skip the callers that went away before their turn
                    batch = [job for job in waiting[: self._max_batch] if job.wanted]
                    del waiting[: self._max_batch]
        finally:  # jobs left unanswered only if this task itself was cancelled (the loop is closing)
            for job in (*batch, *self._waiting.pop(workspace_id, ())):
                if not job.future.done():
                    job.future.set_exception(RuntimeError("the ledger's batch runner was stopped"))

    async def _commit(self, workspace_id: str, batch: list[Job[Any]]) -> None:
        if len(batch) > 1:
            try:
                outcomes = await self._run_batch(workspace_id, batch)
            except Exception:  # rolled back: every job again, alone
                pass
            else:
                self.batches += 1
                for job, (ok, value) in zip(batch, outcomes, strict=True):
                    job.deliver(ok, value)
                return
        for job in batch:
            if not job.wanted:
                continue
            try:
                value = await self._run_one(workspace_id, job)
            except Exception as error:
                job.deliver(False, error)
            else:
                job.deliver(True, value)
