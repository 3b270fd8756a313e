"""Shared parts of the benchmarks: the infrastructure a run shares (Azurite, the Graph sandbox), signed callbacks,
seeded activities, the child-process protocol, and the statistics every table row is built from.

Every benchmark but cold start runs in its own fresh child process (``python -m bench.<name>``), so one
benchmark's imports, caches and heap never flatter or burden another's. The parent passes the shared
infrastructure in ``BENCH_INFRA`` and the parameters as one JSON argument; the child prints one JSON line.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from devtools.examples import CONTENT_ID, LEARNER_ID, example_1

ROOT = Path(__file__).resolve().parent.parent
REGISTRATION_ID = "b3c4e5f6-0a1b-4c2d-8e3f-5a6b7c8d9e0f"
SECRET_BYTES = b"bench-secret-0123456789abcdefghij"
SECRET = "whsec_" + base64.b64encode(SECRET_BYTES).decode()
ASSIGNMENT = "#microsoft.graph.learningAssignment"
LEARNER = LEARNER_ID
CONTENT = CONTENT_ID
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
INFRA_ENV = "BENCH_INFRA"


@dataclass(frozen=True)
class Infra:
    """Where the shared Azurite and sandbox listen; one of each per benchmark run."""

    storage: str
    graph_url: str
    identity_endpoint: str
    identity_header: str
    admin_url: str
    sandbox_pid: int
    azurite_pid: int
    authority_url: str | None = None
    """The sandbox's TLS listener (Entra's token endpoint for several tenants), when it has one."""
    ca_path: str | None = None

    def app_env(self) -> dict[str, str]:
        """The app settings every benchmark of the app runs with (no local.settings.json is read)."""
        return {
            "CONNECTOR_PROVIDERS": json.dumps({REGISTRATION_ID: {"webhookSecrets": [SECRET]}}),
            "AzureWebJobsStorage": self.storage,
            "GRAPH_BASE_URL": self.graph_url,
            "IDENTITY_ENDPOINT": self.identity_endpoint,
            "IDENTITY_HEADER": self.identity_header,
            "FUNCTIONS_WORKER_RUNTIME": "python",
        }

    def child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("AZURE_CLIENT_ID", "MSI_ENDPOINT")}
        env.update(self.app_env())
        env[INFRA_ENV] = json.dumps(asdict(self))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    @classmethod
    def from_env(cls) -> Infra:
        return cls(**json.loads(os.environ[INFRA_ENV]))

    def admin(self) -> Any:
        from sandbox.client import SandboxClient

        return SandboxClient(self.admin_url, timeout=60)


# --- callbacks ---------------------------------------------------------------------------------------------


def event(
    external_id: str, n: int = 0, *, status: str = "inProgress", registration_id: str = REGISTRATION_ID
) -> dict[str, Any]:
    """The reference page's Example 1 as a provider's progress callback for one activity (the bench provider's)."""
    return {
        **example_1(),
        "externalcourseActivityId": external_id,
        "learningProviderId": registration_id,
        "completionPercentage": min(99, 1 + n),
        "status": status,
    }


def event_body(external_id: str, n: int = 0, registration_id: str = REGISTRATION_ID) -> bytes:
    return json.dumps(event(external_id, n, registration_id=registration_id)).encode()


def signed_headers(body: bytes, webhook_id: str, timestamp: float | None = None) -> dict[str, str]:
    from standardwebhooks.webhooks import Webhook

    stamp = int(time.time() if timestamp is None else timestamp)
    signature = Webhook(SECRET).sign(webhook_id, datetime.fromtimestamp(stamp, UTC), body.decode())
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature,
    }


def webhook_path(registration_id: str = REGISTRATION_ID) -> str:
    return f"/api/providers/{registration_id}/course-activities"


def graph_id(external_id: str) -> str:
    return f"g-{external_id}"


def seed(
    admin: Any,
    external_ids: Iterable[str],
    *,
    reset: bool = True,
    latency_ms: float = 0,
    registration_id: str = REGISTRATION_ID,
    tenant: str | None = None,
) -> None:
    """A tenant (the sandbox's home tenant by default) with a provider (the benchmark's) and one assignment per
    external id (Graph id ``g-<ext>``)."""
    if reset:
        admin.reset()
    ids = list(external_ids)
    for start in range(0, max(len(ids), 1), 2000):
        admin.seed(
            tenant=tenant,
            providers=[{"id": registration_id, "displayName": "Bench", "isCourseActivitySyncEnabled": True}]
            if start == 0
            else [],
            activities=[
                {
                    "@odata.type": ASSIGNMENT,
                    "id": graph_id(ext),
                    "externalcourseActivityId": ext,
                    "learningProviderId": registration_id,
                    "learnerUserId": LEARNER,
                    "learningContentId": CONTENT,
                    "status": "notStarted",
                    "assignmentType": "required",
                }
                for ext in ids[start : start + 2000]
            ],
        )
    admin.set_latency(latency_ms)


def patch_body(n: int) -> dict[str, Any]:
    """What a hand-written client would PATCH for ``event(..., n)``: the changeable properties only."""
    changes = event("x", n)
    keep = ("assignedDateTime", "completionPercentage", "dueDateTime", "notes", "status")
    return {"@odata.type": ASSIGNMENT, **{k: changes[k] for k in keep}}


# --- the function app, driven as the host drives it ----------------------------------------------------------


class Out:
    """The output-binding collector the host passes (``func.Out``)."""

    def __init__(self) -> None:
        self.value: Any = None

    def set(self, value: Any) -> None:
        self.value = value

    def get(self) -> Any:
        return self.value


def app_functions(app: Any) -> dict[str, Callable[..., Any]]:
    """The user functions by name, from the app's own indexing (what the worker calls)."""
    from devtools.runner import index_functions

    return {f.get_function_name(): f.get_user_function() for f in index_functions(app)}


def http_request(body: bytes, headers: dict[str, str], registration_id: str = REGISTRATION_ID) -> Any:
    import azure.functions as func

    return func.HttpRequest(
        method="POST",
        url=f"http://localhost:7071{webhook_path(registration_id)}",
        headers=headers,
        params={},
        route_params={"registrationId": registration_id},
        body=body,
    )


def queue_message(text: str, message_id: str) -> Any:
    from azure.functions.queue import QueueMessage

    return QueueMessage(
        id=message_id,
        body=text.encode(),
        dequeue_count=1,
        insertion_time=datetime.now(UTC),
        pop_receipt="bench",
    )


# --- measurement helpers ----------------------------------------------------------------------------------


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) in KiB, from /proc."""
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0])
    return found


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (and its reaped children), from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


class MachineLoad:
    """How much CPU the rest of the machine used while a benchmark ran: busy jiffies of every core (/proc/stat)
    minus this process tree's own CPU (this process, reaped children, and the given long-lived helpers)."""

    def __init__(self, helper_pids: Sequence[int] = ()) -> None:
        self._helpers = list(helper_pids)
        self._start = self._sample()

    def _sample(self) -> tuple[float, float, float, float]:
        import resource

        with open("/proc/stat") as stat:
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in stat.readline().split()[1:9])
        tick = os.sysconf("SC_CLK_TCK")
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        ours = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
        ours += sum(proc_cpu_seconds(pid) for pid in self._helpers)
        return time.monotonic(), (user + nice + system + irq + softirq) / tick, ours, steal / tick

    def stop(self) -> dict[str, float]:
        """Mean cores busy on the machine, ours, other processes' (clamped at 0), and stolen by the hypervisor
        (a virtual machine's neighbours), since construction."""
        start, end = self._start, self._sample()
        elapsed = max(end[0] - start[0], 1e-9)
        machine, ours = (end[1] - start[1]) / elapsed, (end[2] - start[2]) / elapsed
        return {
            "machineCores": machine,
            "ourCores": ours,
            "otherCores": max(0.0, machine - ours),
            "stolenCores": (end[3] - start[3]) / elapsed,
        }


def calibrate() -> float:
    """CPU milliseconds of a fixed pure-Python workload (JSON, hashing, a loop), median of 5: the same code on a
    slower (throttled, shared) CPU takes longer, so this tells runs made at different speeds apart."""
    import hashlib

    document = {"values": list(range(300)), "text": "x" * 2000, "nested": [{"k": i, "v": str(i)} for i in range(50)]}
    samples = []
    for _ in range(5):
        started = time.process_time()
        for i in range(150):
            json.loads(json.dumps(document))
            hashlib.sha256(document["text"].encode() * 20).digest()
            sum(j * j for j in range(2000 + i))
        samples.append((time.process_time() - started) * 1000)
    return statistics.median(samples)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 20 samples is the largest)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "median": median(values),
        "min": min(values) if values else float("nan"),
        "max": max(values) if values else float("nan"),
        "n": len(values),
    }


class Profile:
    """A profile of what runs between ``start()`` and ``stop()``: pyinstrument when it is installed (sampling, so
    thousands of tiny calls are not inflated by the profiler's own overhead; wall time, so event-loop idle shows
    as ``select``), otherwise cProfile on a CPU clock. A dev tool only: not in requirements-dev.txt."""

    def __init__(self) -> None:
        try:
            import pyinstrument
        except ImportError:
            import cProfile

            self.kind = "cProfile (CPU clock; pip install pyinstrument for a sampling profile)"
            self._profiler: Any = cProfile.Profile(time.process_time)
        else:
            self.kind = f"pyinstrument {pyinstrument.__version__} (sampling, wall time)"
            self._profiler = pyinstrument.Profiler(interval=0.0005, async_mode="disabled")

    def start(self) -> None:
        self._profiler.enable() if hasattr(self._profiler, "enable") else self._profiler.start()

    def stop(self) -> None:
        self._profiler.disable() if hasattr(self._profiler, "disable") else self._profiler.stop()

    def text(self, lines: int = 60) -> str:
        if hasattr(self._profiler, "output_text"):
            tree = self._profiler.output_text(unicode=True, show_all=False)
            flat = self._profiler.output_text(unicode=True, flat=True, flat_time="self")
            head = "\n".join(flat.splitlines()[: lines // 2])
            return f"{self.kind}\n{tree}\nself time, flat:\n{head}"
        import io
        import pstats

        text = io.StringIO()
        stats = pstats.Stats(self._profiler, stream=text)
        stats.sort_stats("cumulative").print_stats(lines)
        stats.sort_stats("tottime").print_stats(lines // 2)
        return f"{self.kind}\n{text.getvalue()}"


# --- the child-process protocol ----------------------------------------------------------------------------


def child_main(run: Callable[[Infra, dict[str, Any]], dict[str, Any]]) -> None:
    """``python -m bench.<name> '<params json>'``: run with the parent's infrastructure, print one JSON line."""
    import logging

    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    params = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    result = run(Infra.from_env(), params)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def run_child(module: str, infra: Infra, params: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """Run ``python -m bench.<module>`` in a fresh process and return its JSON result."""
    completed = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", json.dumps(params)],
        cwd=ROOT,
        env=infra.child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"bench.{module} failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    return json.loads(lines[-1])


# --- outcomes ---------------------------------------------------------------------------------------------------


@cache
def _outcome_reader() -> Any:
    """An in-memory reader of the connector's OpenTelemetry metrics, installed once per benchmark process (before
    the first callback: the connector's counters start counting when a meter provider is set)."""
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return reader


def count_outcomes() -> None:
    """Starts counting the connector's callback outcomes in this process."""
    _outcome_reader()


def outcomes() -> dict[str, int]:
    """Callbacks by outcome (accepted, applied, duplicate, throttled, …) since count_outcomes(), from the
    connector's own `connector.callbacks` counter."""
    counts: dict[str, int] = {}
    data = _outcome_reader().get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "connector.callbacks":
                    for point in metric.data.data_points:
                        counts[str(point.attributes.get("outcome"))] = int(point.value)
    return counts
