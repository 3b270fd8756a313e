"""What the sandbox saw: a bounded log of Graph requests and counters for benchmarks.

The log is what tests assert on (which PATCH bodies arrived, with which headers), so it keeps the parsed
body and redacts the bearer token. Bounded so that a long benchmark cannot exhaust memory.

Path convention of an entry: ``path`` is the path after ``/v1.0``, each segment percent-decoded, OData
literals left as sent (``...(externalcourseActivityId='O''Brien')``); ``rawPath`` is the same part exactly as
received; ``query`` is the decoded query string. Fault rules' ``pathContains`` matches ``path``. ``tenant`` is
the tenant of the request's token (None when it had no valid one, or a fault answered before it was read).
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter, deque
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp

DEFAULT_LOG_LIMIT: Final = 20_000


def redact_headers(headers: Any) -> dict[str, str]:
    """Request headers as a dict (last value wins), with the Authorization credential replaced."""
    result: dict[str, str] = {}
    for name, value in headers.items():
        if name.lower() == "authorization":
            scheme = value.split(" ", 1)[0]
            value = f"{scheme} <redacted>" if scheme.lower() == "bearer" else "<redacted>"
        result[name] = value
    return result


class RequestLog:
    """The last ``limit`` Graph requests; ``seq`` keeps counting across clears so callers can page by it."""

    def __init__(self, limit: int = DEFAULT_LOG_LIMIT) -> None:
        self.limit = limit
        self._entries: deque[dict[str, Any]] = deque(maxlen=max(limit, 1))
        self.seq = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def add(self, entry: dict[str, Any]) -> None:
        if self.limit > 0:
            self._entries.append(entry)

    def clear(self) -> None:
        self._entries.clear()

    def query(
        self,
        method: str | None = None,
        path_contains: str | None = None,
        since_seq: int | None = None,
        tenant: str | None = None,
    ) -> list[dict[str, Any]]:
        method = method.upper() if method else None
        return [
            e
            for e in self._entries
            if (method is None or e["method"] == method)
            and (path_contains is None or path_contains in e["path"])
            and (since_seq is None or e["seq"] > since_seq)
            and (tenant is None or e["tenant"] == tenant)
        ]


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Stats:
    """Counters since start or the last reset, plus what a benchmark needs to judge the sandbox itself."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.by_method: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.by_method_status: Counter[str] = Counter()
        self.token_requests = 0
        self.dropped = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.since = time.time()
        self._cpu_at_reset = time.process_time()

    def count(self, method: str, status: int | None) -> None:
        key = "dropped" if status is None else str(status)
        self.by_method[method] += 1
        self.by_status[key] += 1
        self.by_method_status[f"{method} {key}"] += 1

    def describe(self, faults_injected: int, tokens_issued: int) -> dict[str, Any]:
        now = time.time()
        return {
            "requests": sum(self.by_method.values()),
            "byMethod": dict(self.by_method),
            "byStatus": dict(self.by_status),
            "byMethodStatus": dict(self.by_method_status),
            "tokenRequests": self.token_requests,
            "tokensIssued": tokens_issued,
            "faultsInjected": faults_injected,
            "dropped": self.dropped,
            "inFlight": self.in_flight,
            "maxInFlight": self.max_in_flight,
            "since": datetime.fromtimestamp(self.since, UTC).isoformat(timespec="milliseconds"),
            "elapsedSeconds": round(now - self.since, 3),
            # CPU this process spent since the reset: requests / cpuSeconds is the sandbox's capacity on one core.
            "cpuSeconds": round(time.process_time() - self._cpu_at_reset, 3),
            "server": {
                "pid": os.getpid(),
                "python": sys.version.split()[0],
                "aiohttp": aiohttp.__version__,
                "cpuCount": os.cpu_count(),
                "singleEventLoop": True,
            },
        }
