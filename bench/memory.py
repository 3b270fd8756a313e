"""Memory: the worker process's RSS after 1k, 5k and 10k callbacks, each taken through the webhook function and
then the queue function (state table in Azurite, Graph in the sandbox), 16 at a time, in one process.

The mix keeps every path busy: one callback in three is for an activity never seen before (its state row, its
lookup), the others cycle over 500 activities (merge, PATCH), one in seven of those repeats the activity's last
values ("changes nothing": a read-back GET, no PATCH), and one callback in ten is delivered twice (a duplicate).
RSS is read from /proc without forcing a garbage collection, as the platform would see it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.common import (
    Infra,
    Out,
    app_functions,
    child_main,
    count_outcomes,
    event_body,
    http_request,
    outcomes,
    proc_status,
    queue_message,
    seed,
    signed_headers,
)

REPEATED = 500


async def _main(infra: Infra, params: dict[str, Any]) -> dict[str, Any]:
    count_outcomes()  # before the first callback
    import function_app
    from connector import bootstrap

    total = int(params.get("callbacks", 10_000))
    step = int(params.get("step", 1000))
    concurrency = int(params.get("concurrency", 16))
    functions = app_functions(function_app.app)
    webhook, apply = functions["course_activity_webhook"], functions["apply_course_activity_update"]
    stamp = int(time.time())
    repeated = [f"mem-r{i}-{stamp}" for i in range(REPEATED)]
    fresh = [f"mem-n{i}-{stamp}" for i in range(total // 3 + 1)]
    admin = infra.admin()
    seed(admin, repeated + fresh)
    rss_before = proc_status()["VmRSS"]

    plan: list[tuple[str, int]] = []
    updates: dict[str, int] = {}
    for i in range(total):
        ext = fresh[i // 3] if i % 3 == 0 else repeated[i % REPEATED]
        if i % 7 != 3 or ext not in updates:
            updates[ext] = updates.get(ext, 0) + 1
        plan.append((ext, updates[ext]))

    limit = asyncio.Semaphore(concurrency)

    async def callback(index: int) -> None:
        ext, n = plan[index]
        async with limit:
            body = event_body(ext, n)
            out = Out()
            response = webhook(http_request(body, signed_headers(body, f"wh-mem-{index}-{stamp}")), out)
            assert response.status_code == 202, response.get_body()
            for delivery in range(2 if index % 10 == 9 else 1):
                for text in out.get():
                    await apply(queue_message(text, f"mem-{index}-{delivery}"), Out())

    samples: list[dict[str, Any]] = []
    started = time.perf_counter()
    for done in range(step, total + 1, step):
        await asyncio.gather(*(callback(i) for i in range(done - step, done)))
        status = proc_status()
        samples.append(
            {"callbacks": done, "rssMiB": status["VmRSS"] / 1024, "seconds": round(time.perf_counter() - started, 1)}
        )
    await bootstrap.close()
    admin.close()
    return {
        "callbacks": total,
        "concurrency": concurrency,
        "rssBeforeMiB": rss_before / 1024,
        "samples": samples,
        "peakMiB": proc_status()["VmHWM"] / 1024,
        "outcomes": outcomes(),
    }


def run(infra: Infra, params: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_main(infra, params))


if __name__ == "__main__":
    child_main(run)
