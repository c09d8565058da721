"""Several processes, one metrics directory: sums over workers, a dead worker's gauges forgotten."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tollway.errors import StartupError
from tollway.observe.metrics import MULTIPROC_ENV
from tollway.observe.workers import forget_dead, shared_metrics_dir

ROOT = Path(__file__).resolve().parents[2]

# One "worker": a request billed, a reservation and a stream left open, then its pid.
WORKER = """
from tollway.observe.metrics import Metrics
from tollway.usage import Usage
metrics = Metrics()
assert metrics.multiprocess
metrics.request("chat.completions", "m", 200, 0.01)
metrics.usage("m", Usage(prompt=10, completion=5), 1_000)
metrics.hold_opened()
metrics.stream_gauge("chat.completions").inc()
import os
print(os.getpid())
"""
SCRAPE = (
    "from tollway.observe.metrics import Metrics; import sys; sys.stdout.write(Metrics().render().decode())"
)


def python(code: str, directory: Path) -> str:
    env = {**os.environ, MULTIPROC_ENV: str(directory)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def scrape(directory: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(python(SCRAPE, directory)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_a_scrape_sums_every_worker_and_a_dead_one_leaves_the_live_gauges(tmp_path: Path) -> None:
    first, second = int(python(WORKER, tmp_path)), int(python(WORKER, tmp_path))
    found = scrape(tmp_path)
    requests = (
        "tollway_requests_total",
        (("model", "m"), ("status", "200"), ("surface", "chat.completions")),
    )
    assert found[requests] == 2
    assert found[("tollway_tokens_total", (("class", "prompt"), ("model", "m")))] == 20
    assert found[("tollway_cost_nanodollars_total", (("model", "m"),))] == 2_000
    assert found[("tollway_reservations_held", ())] == 2
    assert found[("tollway_open_streams", (("surface", "chat.completions"),))] == 2

    forget_dead(str(tmp_path), alive={second})
    found = scrape(tmp_path)
    assert found[("tollway_reservations_held", ())] == 1  # only the live worker's
    assert found[requests] == 2  # what the dead one counted still counts
    forget_dead(str(tmp_path), alive=set())
    found = scrape(tmp_path)
    assert found[("tollway_reservations_held", ())] == 0  # (the scraping process has one too, at 0)
    assert found[requests] == 2
    live = [name for name in os.listdir(tmp_path) if name.startswith("gauge_live")]
    assert not any(str(first) in name or str(second) in name for name in live)


def test_serve_makes_a_private_directory_and_removes_it() -> None:
    env: dict[str, str] = {}
    with shared_metrics_dir(env) as path:
        assert env[MULTIPROC_ENV] == path
        assert os.stat(path).st_mode & 0o777 == 0o700
        Path(path, "counter_1.db").write_bytes(b"")
    assert not os.path.exists(path)
    assert MULTIPROC_ENV not in env


def test_a_directory_the_environment_names_is_used_and_kept(tmp_path: Path) -> None:
    env = {MULTIPROC_ENV: str(tmp_path)}
    with shared_metrics_dir(env) as path:
        assert path == str(tmp_path)
    assert tmp_path.is_dir()
    assert env == {MULTIPROC_ENV: str(tmp_path)}


def test_a_named_directory_that_does_not_exist_stops_start_up(tmp_path: Path) -> None:
    with (
        pytest.raises(StartupError, match="not a directory"),
        shared_metrics_dir({MULTIPROC_ENV: str(tmp_path / "x")}),
    ):
        pass
