"""Throughput: callbacks applied per second by one worker process (the local runner, in-process, with host.json's
queue settings) while the sandbox adds 50 ms to every Graph request.

Each run puts N webhook-made messages on the queue first (untimed), then starts a runner on it and times until
all N are applied. Scenarios as in the warm benchmark: ``new`` activities (lookup GET + PATCH each) and
``known`` ones (PATCH only; their first callback was applied beforehand without latency). Every callback is for
a distinct activity, so no two merges contend for a row.

Beside the rate, each run reports what bounds it: the CPU this process spent per callback (runner included:
in Azure the host polls and deletes messages, here the same process does), the Graph requests per callback and
the sandbox's concurrency (``maxInFlight``), and how busy the sandbox and Azurite were (CPU seconds per second).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from bench.common import (
    REGISTRATION_ID,
    ROOT,
    Infra,
    child_main,
    count_outcomes,
    event_body,
    median,
    outcomes,
    proc_cpu_seconds,
    seed,
    signed_headers,
)


def _messages(settings: Any, external_ids: list[str], n: int) -> list[str]:
    from connector.app import webhook

    made: list[str] = []
    for ext in external_ids:
        body = event_body(ext, n)
        reply = webhook.receive(settings, REGISTRATION_ID, signed_headers(body, f"wh-{ext}-{n}"), body)
        assert reply.status == 202, reply.body
        made += reply.messages
    return made


async def _enqueue(infra: Infra, texts: list[str]) -> None:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.queue.aio import QueueClient

    from connector.domain.envelope import QUEUE_NAME

    async with QueueClient.from_connection_string(infra.storage, QUEUE_NAME) as queue:
        with contextlib.suppress(ResourceExistsError):
            await queue.create_queue()
        await queue.clear_messages()
        limit = asyncio.Semaphore(16)

        async def send(text: str) -> None:
            async with limit:
                await queue.send_message(text)

        await asyncio.gather(*(send(t) for t in texts))


async def _apply_all(infra: Infra, admin: Any, count: int, limit_s: float, latency_ms: float = 0) -> dict[str, Any]:
    """Start a runner on the filled queue and time it until ``count`` more callbacks are applied."""
    from devtools.runner import Runner, load_app

    runner = Runner(load_app("function_app:app", ROOT), app_dir=ROOT, port=0, http=False)
    base = outcomes().get("applied", 0)
    sandbox_before, azurite_before = admin.stats(), proc_cpu_seconds(infra.azurite_pid)
    admin_cpu = 0.0
    cpu_before = time.process_time()
    started = time.perf_counter()
    await runner.start()
    deadline = started + limit_s
    while outcomes().get("applied", 0) - base < count:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"only {outcomes().get('applied', 0) - base} of {count} applied")
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    admin_started = time.process_time()
    sandbox_after, azurite_after = admin.stats(), proc_cpu_seconds(infra.azurite_pid)
    admin_cpu = time.process_time() - admin_started
    await runner.stop()
    failed = sum(v for (_, event), v in runner.stats.items() if event == "failed")
    graph_requests = sandbox_after["requests"] - sandbox_before["requests"]
    return {
        "applied": count,
        "seconds": elapsed,
        "perSecond": count / elapsed,
        "workerCpuMsPerCallback": (cpu - admin_cpu) * 1000 / count,
        "workerCpuBusy": (cpu - admin_cpu) / elapsed,
        "graphRequestsPerCallback": graph_requests / count,
        "tokenRequests": sandbox_after["tokenRequests"] - sandbox_before["tokenRequests"],
        "sandboxMaxInFlight": sandbox_after["maxInFlight"],
        # Little's law: requests x the added latency / elapsed is the mean number of Graph requests in flight
        "meanGraphInFlight": graph_requests * latency_ms / 1000 / elapsed,
        "sandboxCpuBusy": (sandbox_after["cpuSeconds"] - sandbox_before["cpuSeconds"]) / elapsed,
        "sandboxRequestsPerCpuSecond": graph_requests
        / max(1e-9, sandbox_after["cpuSeconds"] - sandbox_before["cpuSeconds"]),
        "azuriteCpuBusy": (azurite_after - azurite_before) / elapsed,
        "azuriteCpuMsPerCallback": (azurite_after - azurite_before) * 1000 / count,
        "failedInvocations": failed,
        "statuses": sandbox_after["byStatus"],
    }


async def _main(infra: Infra, params: dict[str, Any]) -> dict[str, Any]:
    count_outcomes()  # before the first callback
    from connector import bootstrap

    count, runs = int(params.get("callbacks", 600)), int(params.get("runs", 3))
    latency = float(params.get("latencyMs", 50))
    scenarios = params.get("scenarios", ["new", "known"])
    settings = bootstrap.settings()
    admin = infra.admin()
    stamp = int(time.time())
    host = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    exts = {("new", r): [f"tp-new-{r}-{i}-{stamp}" for i in range(count)] for r in range(runs)} | {
        ("known", 0): [f"tp-known-{i}-{stamp}" for i in range(count)]
    }
    seed(admin, [e for group in exts.values() for e in group])
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in scenarios}
    if "known" in scenarios:  # their first callback, without latency and untimed
        await _enqueue(infra, _messages(settings, exts[("known", 0)], 0))
        await _apply_all(infra, admin, count, limit_s=600)
    for r in range(runs):
        for scenario in scenarios:
            group = exts[("new", r)] if scenario == "new" else exts[("known", 0)]
            texts = _messages(settings, group, 0 if scenario == "new" else r + 1)
            await _enqueue(infra, texts)
            admin.set_latency(latency)
            results[scenario].append(await _apply_all(infra, admin, count, limit_s=600, latency_ms=latency))
            admin.set_latency(0)
    await bootstrap.close()
    admin.close()
    summary: dict[str, Any] = {}
    for scenario, samples in results.items():
        summary[scenario] = {
            key: median([s[key] for s in samples]) for key in samples[0] if isinstance(samples[0][key], (int, float))
        }
        summary[scenario]["perSecondMin"] = min(s["perSecond"] for s in samples)
        summary[scenario]["perSecondMax"] = max(s["perSecond"] for s in samples)
        summary[scenario]["statuses"] = samples[-1]["statuses"]
        summary[scenario]["runs"] = [
            {k: round(v, 3) for k, v in s.items() if k in ("perSecond", "workerCpuBusy", "azuriteCpuBusy")}
            for s in samples
        ]
    return {
        "callbacks": count,
        "runs": runs,
        "latencyMs": latency,
        "batchSize": host["batchSize"],
        "newBatchThreshold": host["newBatchThreshold"],
        "scenarios": summary,
    }


def run(infra: Infra, params: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_main(infra, params))


if __name__ == "__main__":
    child_main(run)
