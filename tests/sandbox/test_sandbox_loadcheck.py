"""The capacity check still runs end to end (it is how the sandbox is shown not to bottleneck a benchmark)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def loadcheck(*options: str) -> dict:
    completed = subprocess.run(
        [sys.executable, "-m", "sandbox.loadcheck", "--concurrency", "4", "--seconds", "0.5", *options],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_loadcheck_reports_only_successful_patches():
    result = loadcheck()
    assert result["requests"] > 0
    assert result["statuses"] == {"204": result["requests"]}
    assert result["sandboxCpuSeconds"] > 0


def test_loadcheck_under_a_rate_limit_counts_what_was_throttled():
    result = loadcheck("--rate-limit", "0.001", "--burst", "10")  # no refill during the run: exactly 10 allowed
    throttled = result["requests"] - 10
    assert throttled > 0
    assert result["statuses"] == {"204": 10, "429": throttled}
    assert (result["rateLimit"]["allowed"], result["rateLimit"]["throttled"]) == (10, throttled)
