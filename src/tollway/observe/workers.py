"""The metrics directory a multi-worker `tollway serve` shares with its workers.

prometheus-client's multiprocess mode keeps each worker's values in files of
one directory (`PROMETHEUS_MULTIPROC_DIR`), which must be set before a worker
imports it.  `serve` makes a private one (mode 0700) unless the environment
names one, and removes only a directory it made.  When a worker is gone, its
live gauges (open reservations and streams) must stop counting:
`forget_dead` deletes them; its counters and histograms keep their totals.
The directory must be tollway's alone (it is, unless the environment names one).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager

from prometheus_client.multiprocess import mark_process_dead

from tollway.errors import StartupError
from tollway.observe.metrics import MULTIPROC_ENV

__all__ = ["forget_dead", "shared_metrics_dir"]

# prometheus-client's file of one process's live gauges: gauge_livesum_<pid>.db and the like.
_LIVE_GAUGES = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


@contextmanager
def shared_metrics_dir(environ: MutableMapping[str, str] | None = None) -> Iterator[str]:
    """`$PROMETHEUS_MULTIPROC_DIR` for the workers started inside, made here if it is not set."""
    env = os.environ if environ is None else environ
    given = env.get(MULTIPROC_ENV)
    if given:
        if not os.path.isdir(given):
            raise StartupError(f"{MULTIPROC_ENV}={given!r} is not a directory (metrics need one)")
        yield given
        return
    path = tempfile.mkdtemp(prefix="tollway-metrics-")
    env[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        env.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


def forget_dead(directory: str, alive: set[int]) -> None:
    """Every process with live gauges in `directory` that is not `alive` no longer counts in them.

    It scans the directory, so a worker that died and was replaced between two calls is caught too.
    """
    try:
        names = os.listdir(directory)
    except OSError:
        return
    gone = {int(m.group(1)) for m in map(_LIVE_GAUGES.fullmatch, names) if m is not None}
    for pid in gone - alive:
        mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
