"""`tollway serve`'s supervisor: a worker that fails to start makes the whole command fail (SPEC §1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SUPERVISE = """
import sys, uvicorn
from tollway.serving.logs import log_config
from tollway.serving.run import _Supervisor, _bind
sock = _bind("127.0.0.1", 0)
config = uvicorn.Config(
    "tests.serving.failing_app:create", factory=True, workers=2, log_config=log_config(), log_level="warning"
)
supervisor = _Supervisor(config, [sock], "tollway: serving (should not be printed)")
supervisor.run()
sys.exit(1 if supervisor.failed else 0)
"""


def test_a_worker_that_fails_to_start_fails_the_supervisor() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SUPERVISE], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1, result.stderr
    assert "serving" not in result.stderr
    assert "the test app refuses to start" in result.stderr
    assert "Traceback" not in result.stderr
    # uvicorn's own follow-up lines are dropped: the app's message says it all.
    assert "Application startup failed" not in result.stderr
    assert "stopping the parent process" not in result.stderr
