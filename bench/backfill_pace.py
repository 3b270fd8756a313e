"""Backfill at Graph's pace: a history file of N events enqueued by ``python -m connector backfill`` (its rate and
queue-depth bound) while one worker process (the local runner, in-process, host.json's queue settings) applies them
against the sandbox limited to R requests per second (Graph's 429 + Retry-After beyond that, per app and tenant).

Beside it, in the same run, the baseline: a client that knows R sends the same number of requests at exactly R (a
token bucket), the best anyone can do against that limit. Figures: wall time against the ideal (requests Graph
accepted / R), Graph requests per event, the share of requests answered 429, events lost (an activity whose final
state in Graph is not its newest event's) and messages dead-lettered. Goals (issue 13): at least 90 % of the allowed
rate, at most 1 % of requests throttled, nothing lost, nothing dead-lettered for throttling.

Meanwhile a thread of its own asks the storage emulator for the queue's depth every half second and adds up the
time its answers took beyond a second: Azurite's queue service runs a mark-and-sweep of its message store every
60 s (QueueGCManager), during which every storage call of the worker waits too. That time is printed beside the
figures, since Azure Storage has no such pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import REGISTRATION_ID, ROOT, Infra, child_main, count_outcomes, graph_id, seed


def _history(path: Path, events: int, activities: int, stamp: int) -> list[str]:
    """events lines over the activities, each activity's percentages rising with its own eventTime."""
    exts = [f"bp-{stamp}-{i}" for i in range(activities)]
    with path.open("w") as file:
        for n in range(events):
            step = n // activities
            event = {
                "@odata.type": "#microsoft.graph.learningAssignment",
                "externalcourseActivityId": exts[n % activities],
                "status": "inProgress",
                "completionPercentage": min(99, 1 + step),
                "eventTime": f"2026-01-01T00:{step // 60 % 60:02d}:{step % 60:02d}Z",
            }
            file.write(json.dumps(event) + "\n")
    return exts


STALL_SECONDS = 1.0  # a storage answer slower than this is the emulator pausing


class StorageStalls(threading.Thread):
    """Times the emulator's answers from a thread of its own (its own connection, not the app's event loop)."""

    def __init__(self, connection_string: str) -> None:
        super().__init__(daemon=True)
        self._connection_string = connection_string
        self._stop_asked = threading.Event()
        self.stalled_seconds, self.stalls, self.longest = 0.0, 0, 0.0

    def run(self) -> None:
        from azure.storage.queue import QueueClient

        from connector.domain.envelope import QUEUE_NAME

        with QueueClient.from_connection_string(self._connection_string, QUEUE_NAME) as queue:
            while not self._stop_asked.wait(0.5):
                started = time.perf_counter()
                with contextlib.suppress(Exception):  # timed all the same: an error is an answer too
                    queue.get_queue_properties()
                took = time.perf_counter() - started
                if took > STALL_SECONDS:
                    self.stalled_seconds, self.stalls = self.stalled_seconds + took, self.stalls + 1
                    self.longest = max(self.longest, took)

    def stop(self) -> dict[str, float]:
        self._stop_asked.set()
        self.join()
        return {"seconds": self.stalled_seconds, "count": self.stalls, "longest": self.longest}


async def _app(infra: Infra, events: int, activities: int, rps: float, limit_s: float) -> dict[str, Any]:
    from connector import bootstrap
    from connector.domain.envelope import POISON_QUEUE_NAME
    from connector.ops.backfill import BackfillOptions, backfill
    from devtools.runner import Runner, load_app

    admin = infra.admin()
    stamp = int(time.time())
    folder = Path(tempfile.mkdtemp(prefix="bench-pace-"))
    exts = _history(folder / "history.jsonl", events, activities, stamp)
    seed(admin, exts)
    admin.set_rate_limit(rps)
    settings = bootstrap.settings()
    provider = settings.provider(REGISTRATION_ID)
    assert provider is not None
    options = BackfillOptions(
        REGISTRATION_ID, (folder / "history.jsonl",), rate=1000.0, max_queue_depth=2000, progress_every=3600.0,
        checkpoint_dir=folder,
    )  # fmt: skip
    runner = Runner(load_app("function_app:app", ROOT), app_dir=ROOT, port=0, http=False)
    stalls = StorageStalls(infra.storage)
    started = time.perf_counter()
    await runner.start()
    stalls.start()
    try:
        async with asyncio.timeout(limit_s):
            await backfill(settings, provider, options)
            await runner.drain()
        elapsed = time.perf_counter() - started
    finally:
        storage_stalls = stalls.stop()
        await runner.stop()
    stats = admin.stats()
    final = {a["externalcourseActivityId"]: a for a in admin.activities(REGISTRATION_ID)}
    newest = min(99, 1 + (events - 1) // activities)
    lost = sum(1 for ext in exts if (final.get(ext) or {}).get("completionPercentage") not in (newest, newest - 1))
    from connector.adapters.storage import queue_client

    async with queue_client(settings, POISON_QUEUE_NAME) as poison:
        try:
            dead = (await poison.get_queue_properties()).approximate_message_count
        except Exception:
            dead = 0
    await bootstrap.close()
    limit = stats["rateLimit"]
    allowed, throttled = limit["allowed"], limit["throttled"]
    admin.clear_rate_limit()
    admin.close()
    return {
        "seconds": elapsed,
        "allowed": allowed,
        "throttled": throttled,
        "throttledShare": throttled / max(1, allowed + throttled),
        "idealSeconds": allowed / rps,
        "shareOfAllowedRate": (allowed / rps) / elapsed,
        "requestsPerEvent": (allowed + throttled) / events,
        "lost": lost,
        "deadLettered": dead,
        "storageStalls": storage_stalls,
    }


async def _baseline(infra: Infra, requests: int, rps: float) -> dict[str, Any]:
    """Raw httpx sending `requests` PATCHes at exactly rps (a token bucket knowing the limit), with a managed-identity
    token as the app gets it."""
    import httpx

    admin = infra.admin()
    exts = [f"bp-base-{i}" for i in range(200)]
    seed(admin, exts)
    admin.set_rate_limit(rps)
    token = admin.mint_token()
    base = f"{infra.graph_url}/employeeExperience/learningProviders/{REGISTRATION_ID}/learningCourseActivities"
    headers = {"Authorization": f"Bearer {token}"}
    body = {"@odata.type": "#microsoft.graph.learningAssignment", "status": "inProgress"}
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        started = time.perf_counter()
        in_flight: set[asyncio.Task[None]] = set()

        async def patch(n: int) -> None:
            answer = await client.patch(f"{base}/{graph_id(exts[n % len(exts)])}", json=body)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

        for n in range(requests):
            due = started + n / rps
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            task = asyncio.create_task(patch(n))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        await asyncio.gather(*in_flight)
        elapsed = time.perf_counter() - started
    admin.clear_rate_limit()
    admin.close()
    throttled = statuses.get(429, 0)
    return {
        "seconds": elapsed,
        "requests": requests,
        "throttledShare": throttled / max(1, requests),
        "shareOfAllowedRate": (requests / rps) / elapsed,
        "statuses": statuses,
    }


async def _main(infra: Infra, params: dict[str, Any]) -> dict[str, Any]:
    count_outcomes()
    events, activities = int(params.get("events", 20_000)), int(params.get("activities", 2_000))
    rps = float(params.get("requestsPerSecond", 50))
    app = await _app(infra, events, activities, rps, float(params.get("limitSeconds", 3600)))
    baseline = await _baseline(infra, app["allowed"], rps)
    return {"events": events, "activities": activities, "requestsPerSecond": rps, "app": app, "baseline": baseline}


def run(infra: Infra, params: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_main(infra, params))


if __name__ == "__main__":
    child_main(run)
