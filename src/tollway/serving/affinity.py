"""One CPU per worker: the event loop's thread and the ledger thread share it.

A worker is two busy threads under one GIL: the event loop, and the ledger
thread that runs every money transaction.  They hand the GIL back and forth
at every SQL statement.  On two CPUs each hand-off wakes a thread sleeping on
the other one, which costs both a futex round and, on a virtual machine, the
wake-up of an idle virtual CPU.  On one CPU it is an ordinary context switch.
Measured on the 2-vCPU benchmark machine, one worker pinned against the same
worker free: CPU per billed request at c=8 610-618 → 452-492 µs, c=32
2,246 → 2,846 req/s, added p50 at c=1 1.45-1.50 → 1.31-1.36 ms (README,
Performance).

`[server] pin_cpu = true` (the default) pins every thread of a worker to one
of the CPUs the process may use, when the database is SQLite (`wanted`).
With `--workers`, each worker claims the lowest free slot by holding an
`flock` on a file in the workers' shared directory for its life, and slot k
is the k-th allowed CPU (wrapping around when there are more workers than
CPUs); a worker that dies lets go of its slot, and its replacement takes it.
One worker takes the CPU it is running on.  Nothing is pinned where the
system cannot (no `sched_setaffinity`, one allowed CPU, a refusal).
"""

from __future__ import annotations

import fcntl
import os

from tollway.config import Settings
from tollway.db.engine import is_sqlite

__all__ = ["pin", "wanted"]

_held: list[int] = []  # the claimed slot's lock file: open for the life of the process


def wanted(settings: Settings) -> bool:
    """`pin_cpu`, where a worker has a ledger thread: on SQLite.  On PostgreSQL the event loop
    runs the ledger alone, and pinning only takes a CPU away from the database's own processes
    (one workspace at c=32, two workers: 1,484 unpinned against 1,189-1,240 pinned)."""
    return settings.config.server.pin_cpu and is_sqlite(settings.config.database.url)


def pin(slots_dir: str | None = None) -> int | None:
    """Pin every thread of this process to one CPU; the CPU, or None if left to the kernel."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None
    cpu = _claim(slots_dir, allowed) if slots_dir is not None else _current(allowed)
    try:
        tasks = [int(task) for task in os.listdir("/proc/self/task")]
    except OSError:
        tasks = [0]
    pinned = False
    for task in tasks:
        try:
            os.sched_setaffinity(task, {cpu})
            pinned = True
        except OSError:  # a thread that just ended, or a refusal
            continue
    return cpu if pinned else None


def _claim(slots_dir: str, allowed: list[int]) -> int:
    """The CPU of the lowest slot no other live worker holds."""
    for slot in range(1024):
        path = os.path.join(slots_dir, f"cpu-slot-{slot}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _held.append(fd)
        return allowed[slot % len(allowed)]
    return _current(allowed)


def _current(allowed: list[int]) -> int:
    """The CPU this thread runs on now (field 39 of /proc/self/stat), if it is an allowed one."""
    try:
        with open("/proc/thread-self/stat") as stat:
            cpu = int(stat.read().rsplit(")", 1)[1].split()[36])
    except (OSError, ValueError, IndexError):
        return allowed[0]
    return cpu if cpu in allowed else allowed[0]
