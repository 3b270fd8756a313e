"""The soak: 2,000 callbacks over 300 activities (some created by their events, some withdrawn and some of those
assigned again), redelivered and shuffled, against ~20 % injected faults, Graph's rate limit and a failing
managed-identity endpoint. Nothing may be lost, and Graph must end equal to the merge of the callbacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_soak_loses_nothing_and_regresses_nothing():
    result = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--callbacks", "2000", "--activities", "300", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.stdout.strip(), result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(json.dumps(report, indent=2))  # the figures, for whoever reads the test log
    assert report["callbacks"] >= 2000  # and a removal (some followed by a new assignment) per removed activity
    assert report["rejected"] == 0, "deliveries were refused (a stale signature means the machine was too slow)"
    assert report["accepted"] == report["deliveries"]
    assert report["lost"] == 0
    assert report["mismatched"] == 0
    assert 0.15 <= report["fault_share"] <= 0.3
    assert report["throttled"] > 0
    assert report["retried"] > 0
    assert report["duplicate"] > 0
    assert report["created"] > 0  # activities Graph lacked, created by their events
    assert report["withdrawn"] > 0
    assert report["token_requests"] > 1
    assert result.returncode == 0
