"""Pinning a worker's threads to one CPU (tollway.serving.affinity), in processes of their own so
that the test process itself stays free."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs two CPUs this process may use",
)

ALLOWED = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []

# Pins itself (with the slots directory argv[1], if any), prints its CPU and every thread's
# allowed CPUs (one started before pinning, one after), then holds its slot until stdin closes.
CHILD = """
import json, os, sys, threading
from tollway.serving import affinity
gate = threading.Event()
before = threading.Thread(target=gate.wait); before.start()
cpu = affinity.pin(sys.argv[1] if len(sys.argv) > 1 else None)
after = threading.Thread(target=gate.wait); after.start()
masks = sorted({tuple(sorted(os.sched_getaffinity(int(t)))) for t in os.listdir("/proc/self/task")})
print(json.dumps([cpu, masks]), flush=True)
sys.stdin.read()
gate.set()
"""


def _child(*args: str) -> tuple[subprocess.Popen[str], int, list[tuple[int, ...]]]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    cpu, masks = json.loads(child.stdout.readline())
    return child, cpu, [tuple(mask) for mask in masks]


def _end(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.close()
    assert child.wait(10) == 0
    child.stdout.close()


def test_every_thread_of_the_process_is_pinned_to_one_allowed_cpu() -> None:
    child, cpu, masks = _child()
    try:
        assert cpu in ALLOWED
        assert masks == [(cpu,)]  # the main thread, the thread from before and the one after
    finally:
        _end(child)


def test_workers_claim_different_cpus_and_a_replacement_takes_the_slot_let_go(tmp_path: Path) -> None:
    first, cpu_first, _ = _child(str(tmp_path))
    second, cpu_second, masks = _child(str(tmp_path))
    try:
        assert (cpu_first, cpu_second) == (ALLOWED[0], ALLOWED[1])
        assert masks == [(cpu_second,)]
        _end(first)  # its slot is free again
        third, cpu_third, _ = _child(str(tmp_path))
        try:
            assert cpu_third == ALLOWED[0]
        finally:
            _end(third)
    finally:
        _end(second)
