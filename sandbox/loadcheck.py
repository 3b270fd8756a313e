"""``python -m sandbox.loadcheck``: how many PATCHes per second the sandbox itself can answer.

Benchmarks of the product are only meaningful while the sandbox is not their bottleneck; this measures the
sandbox alone. The load comes from separate processes speaking raw HTTP/1.1 keep-alive over asyncio streams
(an HTTP client library would cost more CPU than the server and measure itself). Two figures come out:
the throughput reached, and requests per CPU-second of the sandbox process (its capacity on one core, which
stays meaningful when the load generator shares the machine). ``--rate-limit`` measures it with the rate-limit
mode on (every connection shares one token, so one budget).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
import urllib.parse
from typing import Any

from .process import start_sandbox_process
from .rules import ASSIGNMENT

PROVIDER_ID = "0a0d0000-10ad-4c4e-8c4e-000000000001"


async def _connection(
    host: str, port: int, request: bytes, deadline: float, latencies: list[float], statuses: dict[int, int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


def _worker(graph_url: str, token: str, activity_ids: list[str], seconds: float, queue: Any) -> None:
    parsed = urllib.parse.urlsplit(graph_url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    body = json.dumps(
        {"@odata.type": ASSIGNMENT, "status": "inProgress", "completionPercentage": 42}, separators=(",", ":")
    ).encode()
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def run() -> None:
        deadline = time.perf_counter() + seconds
        requests = []
        collection = f"{parsed.path}/employeeExperience/learningProviders/{PROVIDER_ID}/learningCourseActivities"
        for activity_id in activity_ids:
            path = f"{collection}/{activity_id}"
            requests.append(
                (
                    f"PATCH {path} HTTP/1.1\r\nHost: {parsed.netloc}\r\nAuthorization: Bearer {token}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode()
                + body
            )
        await asyncio.gather(*(_connection(host, port, r, deadline, latencies, statuses) for r in requests))

    asyncio.run(run())
    queue.put((latencies, statuses))


def run_load(graph_url: str, token: str, activity_ids: list[str], *, processes: int, seconds: float) -> dict[str, Any]:
    """Spread one connection per activity over ``processes`` load processes; return the merged result."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    chunks = [activity_ids[i::processes] for i in range(processes)]
    workers = [
        context.Process(target=_worker, args=(graph_url, token, chunk, seconds, queue)) for chunk in chunks if chunk
    ]
    started = time.perf_counter()
    for w in workers:
        w.start()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    for _ in workers:
        lat, st = queue.get()
        latencies += lat
        for k, v in st.items():
            statuses[k] = statuses.get(k, 0) + v
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "statuses": statuses,
        "wallSeconds": round(elapsed, 2),
        "p50Ms": round(statistics.median(latencies) * 1000, 2) if latencies else None,
        "p99Ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2) if latencies else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.loadcheck", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=50, help="connections (one activity each)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--processes", type=int, default=1, help="load-generating processes")
    parser.add_argument("--log-limit", type=int, default=None, help="sandbox request log size (0: off)")
    parser.add_argument("--rate-limit", type=float, default=None, help="rate-limit mode: requests per second")
    parser.add_argument("--burst", type=float, default=None, help="rate-limit burst (default: one second's worth)")
    args = parser.parse_args(argv)
    with start_sandbox_process(log_limit=args.log_limit) as sandbox:
        admin = sandbox.admin
        admin.seed(
            providers=[{"id": PROVIDER_ID, "isCourseActivitySyncEnabled": True}],
            activities=[
                {
                    "@odata.type": ASSIGNMENT,
                    "id": f"load-{i}",
                    "externalcourseActivityId": f"ext-{i}",
                    "learnerUserId": f"learner-{i}",
                    "learningContentId": "content-1",
                    "learningProviderId": PROVIDER_ID,
                    "status": "notStarted",
                    "assignmentType": "required",
                }
                for i in range(args.concurrency)
            ],
        )
        token = admin.mint_token()
        if args.rate_limit is not None:
            admin.set_rate_limit(args.rate_limit, burst=args.burst)
        before = admin.stats()
        result = run_load(
            sandbox.graph_url,
            token,
            [f"load-{i}" for i in range(args.concurrency)],
            processes=args.processes,
            seconds=args.seconds,
        )
        after = admin.stats()
    cpu = after["cpuSeconds"] - before["cpuSeconds"]
    served = after["requests"] - before["requests"]
    result["requestsPerSecond"] = round(result["requests"] / args.seconds)
    result["sandboxCpuSeconds"] = round(cpu, 2)
    result["sandboxRequestsPerCpuSecond"] = round(served / cpu) if cpu > 0 else None
    if args.rate_limit is not None:
        result["rateLimit"] = after["rateLimit"]
    result["concurrency"] = args.concurrency
    result["processes"] = args.processes
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
