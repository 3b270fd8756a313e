"""Backfill reading: a generated JSON Lines file of native events read and validated as the operator runs it,
`python -m connector backfill --dry-run FILE` (the content-hash pass, then every record checked and its queue
message built), beside a baseline in the same run: `json.loads` of each line of the same file. Each measurement is a
fresh process per file size, so its peak RSS (VmHWM) is that size's own: constant memory means the same peak at
100,000 lines and at 1,000,000.

The file looks like a provider's export: Example 1's assignment over 50,000 activities, one line in five with its
own `eventTime`, one in fifty a removal, one in a hundred rejected (a status the type does not have).

    .venv/bin/python -m bench.backfill_read 100000 1000000     # a table of its own, without bench.run
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REGISTRATION_ID, ROOT, SECRET, event, median, proc_status

ACTIVITIES = 50_000


def generate(path: Path, lines: int) -> int:
    """Writes the file; returns its size in bytes."""
    with path.open("w", encoding="utf-8") as out:
        for n in range(lines):
            record: dict[str, Any] = event(f"bf-{n % ACTIVITIES:05d}", n % 99)
            if n % 5 == 1:
                record["eventTime"] = f"2025-{1 + n % 12:02d}-{1 + n % 28:02d}T10:{n % 60:02d}:00+00:00"
            if n % 50 == 7:
                record = {"@odata.type": record["@odata.type"], "externalcourseActivityId": f"bf-{n % ACTIVITIES:05d}",
                          "@removed": {"reason": "deleted"}}  # fmt: skip
            if n % 100 == 13:
                record["status"] = "done"
            out.write(json.dumps(record) + "\n")
    return path.stat().st_size


def _child(variant: str, path: str) -> dict[str, Any]:
    """In a fresh process: one pass as the variant reads the file."""
    started = time.perf_counter()
    if variant == "backfill":
        import contextlib
        import io

        from connector.ops.cli import main

        with contextlib.redirect_stdout(io.StringIO()) as printed:
            main(["backfill", "--dry-run", "--registration-id", REGISTRATION_ID, path])
        extra = {"summary": printed.getvalue().splitlines()[-2]}  # "backfill for provider …: N record(s) …"
    else:
        with open(path, "rb") as stream:
            for text in stream:
                json.loads(text)
        extra = {}
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peakRssMiB": proc_status()["VmHWM"] / 1024, **extra}


def _run_child(variant: str, path: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "CONNECTOR_PROVIDERS": json.dumps({REGISTRATION_ID: {"webhookSecrets": [SECRET]}}),
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    completed = subprocess.run(
        [sys.executable, "-m", "bench.backfill_read", "--child", variant, str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"bench.backfill_read {variant} failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def measure(sizes: list[int], runs: int = 1) -> dict[str, Any]:
    """For each size: the backfill's and the baseline's lines per second (median of `runs`) and peak RSS."""
    results: dict[str, Any] = {"sizes": {}, "runs": runs}
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as folder:
        for size in sizes:
            path = Path(folder) / f"history-{size}.jsonl"
            started = time.perf_counter()
            file_bytes = generate(path, size)
            figures: dict[str, Any] = {"bytes": file_bytes, "generateSeconds": time.perf_counter() - started}
            for variant in ("backfill", "json"):
                samples = [_run_child(variant, path) for _ in range(runs)]
                figures[variant] = {
                    "linesPerSecond": median([size / s["seconds"] for s in samples]),
                    "peakRssMiB": max(s["peakRssMiB"] for s in samples),
                    **({"summary": samples[0]["summary"]} if variant == "backfill" else {}),
                }
            results["sizes"][str(size)] = figures
            path.unlink()
    return results


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        sys.stdout.write(json.dumps(_child(argv[1], argv[2])) + "\n")
        return 0
    sizes = [int(arg) for arg in argv] or [100_000, 1_000_000]
    print(json.dumps(measure(sizes), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
