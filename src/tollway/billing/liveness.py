"""Is a tollway process alive?  On this machine the kernel knows; elsewhere only its heartbeat tells.

Asking the kernel avoids declaring a busy process dead because its heartbeat
was delayed (a starved SQLite writer, a long GC pause), which would release
reservations of requests still being served.
"""

from __future__ import annotations

import os
import socket
from functools import cache
from pathlib import Path

__all__ = ["host_id", "process_alive"]


@cache
def host_id() -> str:
    """This machine in this boot: the hostname alone can repeat (containers, clones)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        boot = "noboot"
    return f"{socket.gethostname()[:180]}/{boot}"


def _started_s(pid: int) -> float | None:
    """When process `pid` started, in seconds since the epoch (Linux), or None if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
    except (OSError, StopIteration, IndexError, ValueError):
        return None
    if fields[0] == "Z":  # a zombie has exited; it only waits for its parent
        return -1.0
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def process_alive(pid: int, registered_us: int) -> bool:
    """Does the process that registered at `registered_us` with `pid` still run on this machine?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = _started_s(pid)
    if started is None:
        return True
    # Another process that took over the pid started after the registration.
    return 0 <= started <= registered_us / 1_000_000 + 5
