"""The capacity check still runs end to end (it is how the sandbox is shown not to bottleneck a benchmark)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_loadcheck_reports_only_successful_patches():
    completed = subprocess.run(
        [sys.executable, "-m", "connector.sandbox.loadcheck", "--concurrency", "4", "--seconds", "0.5"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["requests"] > 0
    assert result["statuses"] == {"204": result["requests"]}
    assert result["sandboxCpuSeconds"] > 0
