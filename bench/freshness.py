"""Freshness: time from a callback's 202 to its PATCH reaching the sandbox, through the local runner run as the
Functions host would run it (``python -m devtools.runner --runner``, its own process, host.json's polling).

Timestamps: the 202 is stamped here (``time.time()`` when the answer arrives), the PATCH by the sandbox's request
log (``at``, UTC, milliseconds, written when it answers): one machine, one clock. Every callback is for its own
activity, so each PATCH is matched to its callback by the activity's Graph id.

Cases:

- ``trickle``: one callback every 2.5-3.5 s (random, so the arrivals fall on every phase of the idle back-off),
  after a first, uncounted callback (the runner's cold start) and an idle spell long enough for polling to back
  off to ``maxPollingInterval``. Two topologies:
  ``same instance`` (one runner takes the callback and runs the queue trigger; the output binding wakes the
  listener at once, as the Functions host's shared queue watcher does) and ``other instance`` (one runner serves
  HTTP only, another polls the queue only: nothing but polling finds the message, the idle-poll worst case);
- ``load``: a few hundred callbacks posted at concurrency 16 to one runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    Infra,
    child_main,
    event_body,
    graph_id,
    median,
    percentile,
    seed,
    signed_headers,
    webhook_path,
)


@contextlib.contextmanager
def _runner(infra: Infra, settings_file: Path, *flags: str) -> Iterator[str | None]:
    """``python -m devtools.runner --runner`` in its own process; yields its HTTP URL (None with --no-http)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.runner", "--runner", "--port", "0", "--settings", str(settings_file),
         "--log-level", "WARNING", *flags],
        cwd=ROOT,
        env=infra.child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    errors: list[str] = []
    assert process.stderr is not None
    assert process.stdout is not None
    threading.Thread(target=lambda: errors.extend(process.stderr), daemon=True).start()  # type: ignore[union-attr]
    try:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"runner did not start: {''.join(errors)[-3000:]}")
        yield json.loads(line)["http"]
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _clear_queue(infra: Infra) -> None:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.queue import QueueClient

    from connector.domain.envelope import QUEUE_NAME

    with (
        QueueClient.from_connection_string(infra.storage, QUEUE_NAME) as queue,
        contextlib.suppress(ResourceNotFoundError),
    ):
        queue.clear_messages()


def _patch_times(admin: Any, exts: list[str], timeout: float) -> dict[str, float]:
    """The sandbox's `at` of the first PATCH of each activity, waiting until every one has arrived."""
    wanted = {graph_id(ext): ext for ext in exts}
    found: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while True:
        for entry in admin.requests(method="PATCH"):
            gid = entry["path"].rsplit("/", 1)[-1]
            if gid in wanted and wanted[gid] not in found:
                found[wanted[gid]] = datetime.fromisoformat(entry["at"].replace("Z", "+00:00")).timestamp()
        if len(found) == len(wanted) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _figures(delays: list[float], sent: int) -> dict[str, Any]:
    return {
        "callbacks": sent,
        "arrived": len(delays),
        "p50": median(delays),
        "p90": percentile(delays, 0.90),
        "p99": percentile(delays, 0.99),
        "max": max(delays) if delays else float("nan"),
        "min": min(delays) if delays else float("nan"),
    }


def _trickle(infra: Infra, admin: Any, url: str, exts: list[str], rng: random.Random, idle: float) -> dict[str, Any]:
    """``exts[0]`` warms the runner up (its first callback pays the cold start), the rest trickle in."""
    import httpx

    accepted: dict[str, float] = {}
    with httpx.Client(base_url=url, timeout=30) as client:

        def post(ext: str) -> None:
            body = event_body(ext, 1)
            response = client.post(webhook_path(), content=body, headers=signed_headers(body, f"wh-fresh-{ext}"))
            accepted[ext] = time.time()
            if response.status_code != 202:
                raise RuntimeError(f"webhook answered {response.status_code}: {response.text}")

        post(exts[0])
        _patch_times(admin, exts[:1], timeout=60)
        time.sleep(idle)  # let the idle back-off reach maxPollingInterval
        for index, ext in enumerate(exts[1:]):
            if index:
                time.sleep(rng.uniform(2.5, 3.5))
            post(ext)
    patched = _patch_times(admin, exts[1:], timeout=60)
    return _figures([patched[e] - accepted[e] for e in exts[1:] if e in patched], len(exts) - 1)


async def _post_load(url: str, exts: list[str], concurrency: int) -> dict[str, float]:
    import httpx

    accepted: dict[str, float] = {}
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=concurrency)) as c:

        async def post(ext: str) -> None:
            body = event_body(ext, 1)
            async with limit:
                response = await c.post(webhook_path(), content=body, headers=signed_headers(body, f"wh-load-{ext}"))
            accepted[ext] = time.time()
            if response.status_code != 202:
                raise RuntimeError(f"webhook answered {response.status_code}: {response.text}")

        await asyncio.gather(*(post(e) for e in exts))
    return accepted


def run(infra: Infra, params: dict[str, Any]) -> dict[str, Any]:
    trickle_count = int(params.get("trickle", 20))
    load_count = int(params.get("load", 300))
    concurrency = int(params.get("concurrency", 16))
    idle = float(params.get("idleSeconds", 8))
    topologies = params.get("topologies", ["same", "other"])
    rng = random.Random(int(params.get("seed", 11)))
    admin = infra.admin()
    stamp = int(time.time())
    exts = {
        "same": [f"fr-same-{i}-{stamp}" for i in range(trickle_count + 1)],
        "other": [f"fr-other-{i}-{stamp}" for i in range(trickle_count + 1)],
        "load": [f"fr-load-{i}-{stamp}" for i in range(load_count)],
    }
    seed(admin, [e for group in exts.values() for e in group])
    host = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    result: dict[str, Any] = {"host": host, "idleSeconds": idle}
    with tempfile.TemporaryDirectory() as folder:
        settings_file = Path(folder) / "local.settings.json"
        settings_file.write_text("{}")
        _clear_queue(infra)
        if "same" in topologies:
            with _runner(infra, settings_file) as url:
                assert url is not None
                result["trickleSame"] = _trickle(infra, admin, url, exts["same"], rng, idle)
        if "other" in topologies:
            with _runner(infra, settings_file, "--no-queues") as url, _runner(infra, settings_file, "--no-http"):
                assert url is not None
                result["trickleOther"] = _trickle(infra, admin, url, exts["other"], rng, idle)
        with _runner(infra, settings_file) as url:
            assert url is not None
            started = time.perf_counter()
            accepted = asyncio.run(_post_load(url, exts["load"], concurrency))
            posting = time.perf_counter() - started
            patched = _patch_times(admin, exts["load"], timeout=300)
            result["load"] = _figures([patched[e] - accepted[e] for e in exts["load"] if e in patched], load_count)
            result["load"]["postingSeconds"] = posting
            result["load"]["concurrency"] = concurrency
            last = max(patched.values(), default=float("nan"))
            result["load"]["appliedPerSecond"] = len(patched) / (last - min(accepted.values()))
    admin.close()
    return result


if __name__ == "__main__":
    child_main(run)
