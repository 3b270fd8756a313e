"""Benchmarks of the connector, each beside its baseline, in one run; prints one table of medians.

    .venv/bin/python -m bench.run                 # everything, about 8-10 minutes on 2 cores
    .venv/bin/python -m bench.run --quick         # a smoke run of every benchmark, about 2 minutes
    .venv/bin/python -m bench.run --only warm,webhook --skip-size --profile --json results.json

Benchmarks (``--only`` takes these names, comma-separated):

- ``sandbox``: the Graph sandbox's own capacity (``sandbox.loadcheck``), so that it is seen not to be
  the bottleneck; the throughput run also reports how busy it was;
- ``cold``: a fresh process imports the app and applies its first callback end to end (webhook function, queue
  function, token, lookup, PATCH) vs fresh processes doing the same with raw ``httpx`` + ``azure.identity``;
  wall time to the PATCH, peak RSS (bench/coldstart.py);
- ``warm``: CPU per applied callback in a warmed-up process vs raw ``httpx`` making the same requests; requests
  per callback counted (bench/warm.py);
- ``tenants``: warm CPU per callback when the callbacks go to one customer tenant and when they are spread over 50
  (the multi-tenant app's ClientAssertionCredential per tenant); the target: no more than 10 % apart
  (bench/tenants.py);
- ``webhook``: CPU per event for signature, validation and messages, one event and a batch of 100, vs bare
  HMAC + ``json.loads`` (bench/webhookcost.py); the same for each platform's intake (Caliper, SCORM Cloud, Canvas);
- ``throughput``: callbacks applied per second by one runner process, sandbox latency 50 ms, vs the
  latency-bound limit and the CPU-bound rate of warm's raw baseline (raw httpx making every call)
  (bench/throughput.py; needs ``warm``'s figures, and runs a short ``warm`` when it is not selected);
- ``freshness``: 202 to PATCH, p50/p99, through the runner process with host.json's polling, at a trickle and
  under load (bench/freshness.py);
- ``memory``: RSS after 1k, 5k and 10k callbacks (bench/memory.py);
- ``size``: the installed runtime dependencies (requirements.txt) and what dominates them (bench/size.py;
  cached, ``--skip-size`` leaves it out);
- ``backfill``: ``python -m connector backfill --dry-run`` reading and validating a generated JSON Lines file of
  100,000 and of 1,000,000 native events, lines per second and peak RSS (constant in the file's size), vs
  ``json.loads`` of each line of the same file (bench/backfill_read.py; needs no Azurite or sandbox).

Cold start and warm cost are judged against the issue's baseline, raw ``httpx`` making every HTTP call the app
makes: the Graph requests, and the same number of table reads and writes as plain requests to Azurite's Table
endpoint signed by hand with Shared Key (bench/tables.py; each call's status is checked, a wrongly signed request
must get 403, and every row written is read back with azure-data-tables and compared). Two more baselines are
shown for context, without a verdict: the table calls made with ``azure-data-tables`` on the transport the app
gives its own storage clients (one shared aiohttp session, ``trust_env=False``, no cookie jar, no decompression:
the best the SDK does), and the Graph requests alone. The table baselines make as many table calls as the app is
counted making in the same run, and write rows shaped and sized like the app's.

One sandbox process serves the whole run (reset before each benchmark) and each benchmark gets a fresh
Azurite; every benchmark but cold start and size runs in a fresh child process. Logging stays at the default
(WARNING), for the app and the baselines alike. Each benchmark's share of the machine taken by other processes
is measured and printed, since wall-time figures mean little on a busy machine. Nothing here asserts on speed:
the table says met or missed against the issue's targets.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench.common import ROOT, Infra, MachineLoad, calibrate, run_child

NAMES = (
    "sandbox",
    "cold",
    "warm",
    "tenants",
    "webhook",
    "throughput",
    "freshness",
    "memory",
    "size",
    "backfill",
    "pace",
)

FULL: dict[str, dict[str, Any]] = {
    "sandbox": {"concurrency": 32, "seconds": 3},
    "cold": {"reps": 7},
    "warm": {"rounds": 7, "block": 50},
    "tenants": {"rounds": 7, "block": 50},
    "webhook": {"runs": 9, "singleLoops": 2000, "batchLoops": 40},
    "throughput": {"callbacks": 600, "runs": 5, "latencyMs": 50},
    "freshness": {"trickle": 20, "load": 300, "concurrency": 16, "idleSeconds": 8},
    "memory": {"callbacks": 10_000, "step": 1000, "concurrency": 16},
    "backfill": {"sizes": [100_000, 1_000_000], "runs": 1},
    "pace": {"events": 20_000, "activities": 2_000, "requestsPerSecond": 50},
}
QUICK: dict[str, dict[str, Any]] = {
    "sandbox": {"concurrency": 16, "seconds": 1},
    "cold": {"reps": 2},
    "warm": {"rounds": 2, "block": 15},
    "tenants": {"rounds": 2, "block": 50},
    "webhook": {"runs": 3, "singleLoops": 300, "batchLoops": 8},
    "throughput": {"callbacks": 150, "runs": 1, "latencyMs": 50},
    "freshness": {"trickle": 3, "load": 60, "concurrency": 16, "idleSeconds": 3, "topologies": ["same", "other"]},
    "memory": {"callbacks": 1000, "step": 100, "concurrency": 16},
    "backfill": {"sizes": [10_000, 100_000], "runs": 1},
    "pace": {"events": 2_000, "activities": 200, "requestsPerSecond": 50},
}
TIMEOUTS = {
    "warm": 900,
    "tenants": 900,
    "webhook": 600,
    "throughput": 1200,
    "freshness": 1200,
    "memory": 1800,
    "pace": 3600,
}
PACE_SHARE = 0.90  # of the rate Graph allows
PACE_THROTTLED = 0.01  # share of requests answered 429

# The targets.
COLD_OVERHEAD_S = 0.300
WARM_RATIO = 1.5
TENANTS_RATIO = 1.10  # warm CPU per callback over 50 tenants against one, either way ("no more than 10 % apart")
WEBHOOK_RATIO = 3.0
THROUGHPUT_SHARE = 0.80
FRESHNESS_P99_S = 5.0
MEMORY_FLAT_MIB = 1.0  # growth from half the callbacks to all of them that still counts as flat
BACKFILL_FLAT_MIB = 1.0  # peak RSS growth from the smaller file to the ten times larger one that still counts as flat
SANDBOX_HEADROOM = 2.0
AZURITE_BUSY = 0.5  # Azurite is single-threaded Node: past half a core its queueing adds latency to every call
CALIBRATION_DRIFT = 1.25  # max/min of the speed checks above which the run is flagged
BUSY_MACHINE_CORES = 0.25  # other processes' mean CPU above which a benchmark's figures are flagged

# Baselines of the table, the one the target is judged against first; the others are shown for context.
COLD_BASELINES = (
    ("raw+http", "raw httpx + azure.identity, every call"),
    ("raw+tables", "raw httpx + azure.identity + azure-data-tables for the same table calls"),
    ("raw", "raw httpx + azure.identity, Graph only"),
)
WARM_BASELINES = (
    ("raw+http", "raw httpx, every call"),
    ("raw+tables", "raw httpx + azure-data-tables for the same table calls"),
    ("raw", "raw httpx, Graph only"),
)
CONTEXT = "context"
#: The platforms' intake rows (bench/webhookcost.py): the case, the table's benchmark name, the figure.
PLATFORM_CASES = (
    ("caliper 100", "Caliper intake", "envelope of 100 events, CPU per event"),
    ("caliper 1", "Caliper intake", "envelope of one event, CPU per event"),
    ("scorm-cloud 1", "SCORM Cloud intake", "one postback (JSON, HTTP Basic), CPU per event"),
    ("canvas 1", "Canvas intake", "one signed Live Event (RS256 JWT), CPU per event"),
)


# --- running ---------------------------------------------------------------------------------------------


def _git() -> str:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
            ).stdout.strip()
        except OSError:
            return ""

    commit = git("rev-parse", "--short", "HEAD") or os.environ.get("BENCH_COMMIT", "unknown (not a git checkout)")
    dirty = git("status", "--porcelain", "--", "function_app.py", "host.json", "connector", "requirements.txt")
    return f"{commit}{' + uncommitted changes to the app' if dirty else ''}"


def app_fingerprint() -> str:
    """A hash of what is measured (the app's code, host.json, requirements.txt): another engineer's edit in the
    middle of a run would otherwise go unnoticed in the figures."""
    import hashlib

    digest = hashlib.sha256()
    paths = [ROOT / "function_app.py", ROOT / "host.json", ROOT / "requirements.txt"]
    paths += sorted(p for p in (ROOT / "connector").rglob("*.py") if "sandbox" not in p.parts)
    for path in paths:
        with contextlib.suppress(OSError):
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    except OSError:
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpuCount": os.cpu_count(),
        "cpuModel": model,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "commit": _git(),
        "appFingerprint": app_fingerprint(),
    }


def _loadcheck(params: dict[str, Any]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "sandbox.loadcheck", "--concurrency", str(params["concurrency"]),
         "--seconds", str(params["seconds"])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )  # fmt: skip
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_all(selected: list[str], quick: bool, profile: bool, log: Any) -> dict[str, Any]:
    from bench import coldstart, size
    from devtools.azurite import start_azurite
    from sandbox.process import start_sandbox_process

    params = QUICK if quick else FULL
    results: dict[str, Any] = {
        "machine": _machine(),
        "quick": quick,
        "selected": selected,
        "seconds": {},
        "otherLoad": {},
        "calibrationMs": {"start": calibrate()},
    }
    if "sandbox" in selected:  # its own sandbox, before anything else loads the machine
        started, load = time.perf_counter(), MachineLoad()
        log("sandbox capacity (loadcheck) ...")
        results["sandbox"] = _loadcheck(params["sandbox"])
        results["seconds"]["sandbox"] = time.perf_counter() - started
        results["otherLoad"]["sandbox"] = load.stop()
    if "backfill" in selected:  # a file and fresh processes; no Azurite, no sandbox
        from bench import backfill_read

        results["calibrationMs"]["backfill"] = calibrate()
        started, load = time.perf_counter(), MachineLoad()
        log("backfill reading ...")
        results["backfill"] = backfill_read.measure(**params["backfill"])
        results["seconds"]["backfill"] = time.perf_counter() - started
        results["otherLoad"]["backfill"] = load.stop()
    order = [
        n for n in ("cold", "webhook", "warm", "tenants", "throughput", "freshness", "memory", "pace") if n in selected
    ]
    if "throughput" in order and "warm" not in order:
        order.insert(order.index("throughput"), "warm")
        results["warmForThroughputOnly"] = True
    if order:
        with start_sandbox_process(https="tenants" in order) as sandbox:  # TLS: Entra's endpoint for the tenants
            for name in order:
                with start_azurite() as azurite:  # fresh storage per benchmark: none inherits another's rows
                    infra = Infra(
                        storage=azurite.connection_string,
                        graph_url=sandbox.graph_url,
                        identity_endpoint=sandbox.identity_endpoint,
                        identity_header=sandbox.identity_header,
                        admin_url=sandbox.admin_url,
                        sandbox_pid=sandbox.pid,
                        azurite_pid=azurite.process.pid,
                        authority_url=sandbox.authority_url,
                        ca_path=sandbox.ca_path,
                    )
                    results["calibrationMs"][name] = calibrate()
                    started, load = time.perf_counter(), MachineLoad([infra.azurite_pid, infra.sandbox_pid])
                    log(f"{name} ...")
                    if name == "cold":
                        results["cold"] = coldstart.measure(infra, **params["cold"], profile=profile)
                    else:
                        module = {"webhook": "webhookcost", "pace": "backfill_pace"}.get(name, name)
                        child_params = dict(params[name])
                        if profile and name in ("warm", "webhook"):
                            child_params["profile"] = True
                        results[name] = run_child(module, infra, child_params, timeout=TIMEOUTS[name])
                    results["seconds"][name] = time.perf_counter() - started
                    results["otherLoad"][name] = load.stop()
    results["appFingerprintAtEnd"] = app_fingerprint()
    results["calibrationMs"]["end"] = calibrate()
    if "size" in selected:
        started = time.perf_counter()
        log("size (pip install --target, cached) ...")
        results["size"] = size.run()
        results["seconds"]["size"] = time.perf_counter() - started
    return results


# --- the table -------------------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _mib(value: float) -> str:
    return f"{value:.0f} MiB"


def _mb(value: float) -> str:
    return f"{value / 1e6:.0f} MB"


def rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    """(benchmark, figure, app, baseline, app vs baseline, target, verdict) per line of the table."""
    table: list[tuple[str, ...]] = []
    cold = results.get("cold")
    if cold:
        variants = cold["variants"]
        app = variants["app"]["toPatchSeconds"]["median"]
        for name, label in COLD_BASELINES:
            if name not in variants:  # a results file from before the baseline existed
                continue
            base = variants[name]["toPatchSeconds"]["median"]
            judged = name == COLD_BASELINES[0][0]
            table.append((
                "cold start", f"process start to PATCH, median of {cold['reps']}", _s(app), f"{_s(base)} ({label})",
                f"+{_ms(app - base)}", f"≤ +{_ms(COLD_OVERHEAD_S)}" if judged else CONTEXT,
                _verdict(app - base <= COLD_OVERHEAD_S) if judged else "—",
            ))  # fmt: skip
        base_name = next(name for name, _ in COLD_BASELINES if name in variants)
        rss, base_rss = variants["app"]["peakRssMiB"]["median"], variants[base_name]["peakRssMiB"]["median"]
        table.append((
            "cold start", "peak RSS", _mib(rss), f"{_mib(base_rss)} ({dict(COLD_BASELINES)[base_name]})",
            f"+{_mib(rss - base_rss)}", "—", "—",
        ))  # fmt: skip
    warm = results.get("warm")
    if warm:
        cpu = warm["cpuMs"]
        for scenario, label in (("known", "known activity (PATCH)"), ("new", "new activity (lookup + PATCH)")):
            app = cpu[f"app {scenario}"]["median"]
            for kind, base_label in WARM_BASELINES:
                if f"{kind} {scenario}" not in cpu:  # a results file from before the baseline existed
                    continue
                base = cpu[f"{kind} {scenario}"]["median"]
                judged = kind == WARM_BASELINES[0][0]
                table.append((
                    "warm CPU per callback", label, f"{app:.2f} ms", f"{base:.2f} ms ({base_label})",
                    f"{app / base:.2f}x", f"≤ {WARM_RATIO}x" if judged else CONTEXT,
                    _verdict(app / base <= WARM_RATIO) if judged else "—",
                ))  # fmt: skip
    tenants = results.get("tenants")
    if tenants:
        cpu = tenants["cpuMs"]
        one, home = cpu["1 tenant"]["median"], cpu["home"]["median"]
        spread = cpu[f"{tenants['tenants']} tenants"]["median"]
        table.append((
            "tenants", f"warm CPU per callback, known activity, spread over {tenants['tenants']} customer tenants",
            f"{spread:.2f} ms", f"{one:.2f} ms (the same callbacks to 1 customer tenant)", f"{spread / one:.2f}x",
            f"within {TENANTS_RATIO:.2f}x either way", _verdict(max(spread / one, one / spread) <= TENANTS_RATIO),
        ))  # fmt: skip
        table.append((
            "tenants", "warm CPU per callback, known activity, 1 customer tenant", f"{one:.2f} ms",
            f"{home:.2f} ms (the managed identity's own tenant)", f"{one / home:.2f}x", CONTEXT, "—",
        ))  # fmt: skip
    hook = results.get("webhook")
    if hook:
        for case, label, target in (("batch100", "batch of 100, CPU per event", WEBHOOK_RATIO),
                                    ("single", "one event, CPU per event", None)):  # fmt: skip
            figures = hook["cases"][case]
            app, base = figures["receive"]["median"], figures["bare"]["median"]
            table.append((
                "webhook", label, f"{app:.1f} µs", f"{base:.1f} µs (HMAC + json.loads)", f"{app / base:.1f}x",
                f"≤ {target:.0f}x" if target else "—", _verdict(app / base <= target) if target else "—",
            ))  # fmt: skip
    for case, name, label in PLATFORM_CASES:
        figures = (hook or {}).get("platforms", {}).get(case)
        if figures:  # a results file from before the platforms' formats has none
            app, base = figures["receive"]["median"], figures["bare"]["median"]
            table.append((
                name, label, f"{app:.1f} µs", f"{base:.1f} µs (HMAC + json.loads)", f"{app / base:.1f}x", "—", "—",
            ))  # fmt: skip
    through = results.get("throughput")
    if through and warm:
        for scenario, figures in through["scenarios"].items():
            limits = throughput_limits(through, warm, scenario)
            limit = min(limits["latencyBound"], limits["cpuBound"])
            rate = figures["perSecond"]
            table.append((
                "throughput", f"{scenario} activities, 50 ms per Graph request, median of {through['runs']}",
                f"{rate:.0f}/s", f"{limit:.0f}/s = min(latency {limits['latencyBound']:.0f}/s, "
                f"raw CPU {limits['cpuBound']:.0f}/s)", f"{rate / limit:.0%}", f"≥ {THROUGHPUT_SHARE:.0%}",
                _verdict(rate >= THROUGHPUT_SHARE * limit),
            ))  # fmt: skip
    fresh = results.get("freshness")
    if fresh:
        for key, label in (("trickleSame", "trickle, same instance (output binding wakes the listener)"),
                           ("trickleOther", "trickle, other instance (idle polling only)"),
                           ("load", "under load")):  # fmt: skip
            if key not in fresh:
                continue
            figures = fresh[key]
            detail = f"p99 {_s(figures['p99'])} (p50 {_s(figures['p50'])}, n={figures['arrived']})"
            if key == "load":
                label = f"under load ({figures['callbacks']} at concurrency {figures['concurrency']})"
            complete = figures["arrived"] == figures["callbacks"]
            table.append((
                "freshness 202 → PATCH", label, detail, "—", "—", f"p99 ≤ {_s(FRESHNESS_P99_S)}",
                _verdict(complete and figures["p99"] <= FRESHNESS_P99_S),
            ))  # fmt: skip
    memory = results.get("memory")
    if memory:
        samples = {s["callbacks"]: s["rssMiB"] for s in memory["samples"]}
        total = memory["callbacks"]
        points = [total // 10, total // 2, total]
        growth = samples[total] - samples[total // 2]
        table.append((
            "memory RSS", " / ".join(f"{p:,}" for p in points) + " callbacks",
            " / ".join(f"{samples[p]:.1f}" for p in points) + " MiB", "—",
            f"{growth:+.1f} MiB from {total // 2:,} to {total:,} ({growth * 1048576 / (total - total // 2):+.0f} B "
            "per callback)", f"flat (≤ +{MEMORY_FLAT_MIB:.0f} MiB)", _verdict(growth <= MEMORY_FLAT_MIB),
        ))  # fmt: skip
    table += _backfill_rows(results.get("backfill"))
    table += _pace_rows(results.get("pace"))
    sandbox = results.get("sandbox")
    if sandbox:
        demand, busy = _sandbox_demand(results)
        capacity = sandbox["requestsPerSecond"]
        if demand:
            headroom = f"{capacity / demand:.0f}x the throughput run's {demand:.0f} req/s (sandbox {busy:.0%} busy)"
            verdict = _verdict(capacity >= SANDBOX_HEADROOM * demand)
        else:
            headroom, verdict = "—", "—"
        table.append((
            "sandbox capacity", f"PATCH/s with {sandbox['concurrency']} connections (loadcheck)",
            f"{capacity:,} req/s; {sandbox['sandboxRequestsPerCpuSecond']:,} req per CPU-s", "—", headroom,
            f"≥ {SANDBOX_HEADROOM:.0f}x demand", verdict,
        ))  # fmt: skip
    if through:
        busiest = max(through["scenarios"].values(), key=lambda f: f["azuriteCpuBusy"])
        table.append((
            "storage emulator (Azurite)", "its one core during the throughput runs (busiest scenario)",
            f"{busiest['azuriteCpuBusy']:.0%} busy, {busiest['azuriteCpuMsPerCallback']:.1f} ms CPU per callback",
            "—", "—", f"< {AZURITE_BUSY:.0%} (else a co-bottleneck)",
            "ok" if busiest["azuriteCpuBusy"] < AZURITE_BUSY else "**co-bottleneck**",
        ))  # fmt: skip
    size = results.get("size")
    if size:
        heaviest = size["requirements"][0]
        table.append((
            "deployment size", f"pip install -r requirements.txt ({size['files']:,} files)",
            f"{_mb(size['totalBytes'])} ({_mb(size['allocatedBytes'])} on disk)", "—",
            f"{heaviest['name']} alone: {_mb(heaviest['exclusiveBytes'])} "
            f"({heaviest['exclusiveBytes'] / size['totalBytes']:.0%})", "—", "—",
        ))  # fmt: skip
    return table


def _pace_rows(pace: dict[str, Any] | None) -> list[tuple[str, ...]]:
    if not pace:
        return []
    app, base, rps = pace["app"], pace["baseline"], pace["requestsPerSecond"]
    what = f"{pace['events']:,} history events, sandbox limited to {rps:.0f} req/s"
    baseline = f"{base['shareOfAllowedRate']:.0%} (a client sending at exactly {rps:.0f}/s)"
    ok = app["lost"] == 0 and app["deadLettered"] == 0
    return [
        ("backfill at Graph's pace", f"{what}: share of the allowed rate", f"{app['shareOfAllowedRate']:.0%} "
         f"({app['seconds']:.0f} s, ideal {app['idealSeconds']:.0f} s)", baseline, "—", f"≥ {PACE_SHARE:.0%}",
         _verdict(app["shareOfAllowedRate"] >= PACE_SHARE)),
        ("backfill at Graph's pace", "requests answered 429", f"{app['throttledShare']:.2%} "
         f"({app['throttled']:,} of {app['allowed'] + app['throttled']:,})", f"{base['throttledShare']:.2%}", "—",
         f"≤ {PACE_THROTTLED:.0%}", _verdict(app["throttledShare"] <= PACE_THROTTLED)),
        ("backfill at Graph's pace", "Graph requests per event; lost; dead-lettered",
         f"{app['requestsPerEvent']:.2f}; {app['lost']}; {app['deadLettered']}", "—", "—", "0 lost, 0 dead-lettered",
         _verdict(ok)),
        *_stall_rows(app),
    ]  # fmt: skip


def _stall_rows(app: dict[str, Any]) -> list[tuple[str, ...]]:
    """How long the storage emulator paused (its queue mark-and-sweep every 60 s), and the share of the allowed rate
    over the rest of the run: context, since Azure Storage does not pause so."""
    stalls = app.get("storageStalls")
    if not stalls:
        return []
    rest = max(app["seconds"] - stalls["seconds"], 1e-9)
    return [
        (
            "backfill at Graph's pace",
            "Azurite paused (storage answers over 1 s); share of the allowed rate outside them",
            f"{stalls['seconds']:.0f} s in {stalls['count']} pause(s), longest {stalls['longest']:.1f} s; "
            f"{app['idealSeconds'] / rest:.0%}",
            "—",
            "—",
            CONTEXT,
            "—",
        )
    ]


def _backfill_rows(backfill: dict[str, Any] | None) -> list[tuple[str, ...]]:
    if not backfill:
        return []
    sizes = sorted(backfill["sizes"], key=int)
    small, large = backfill["sizes"][sizes[0]], backfill["sizes"][sizes[-1]]
    rows: list[tuple[str, ...]] = []
    for size in sizes:
        app, base = backfill["sizes"][size]["backfill"], backfill["sizes"][size]["json"]
        rows.append((
            "backfill reading", f"{int(size):,}-line JSON Lines file, lines per second (backfill --dry-run)",
            f"{app['linesPerSecond']:,.0f}/s", f"{base['linesPerSecond']:,.0f}/s (json.loads of each line)",
            f"{app['linesPerSecond'] / base['linesPerSecond']:.2f}x", "—", "—",
        ))  # fmt: skip
    growth = large["backfill"]["peakRssMiB"] - small["backfill"]["peakRssMiB"]
    rows.append((
        "backfill reading", f"peak RSS, {int(sizes[0]):,} / {int(sizes[-1]):,} lines",
        f"{small['backfill']['peakRssMiB']:.1f} / {large['backfill']['peakRssMiB']:.1f} MiB",
        f"{small['json']['peakRssMiB']:.1f} / {large['json']['peakRssMiB']:.1f} MiB (json.loads of each line)",
        f"{growth:+.1f} MiB for {int(sizes[-1]) // int(sizes[0])}x the lines", f"flat (≤ +{BACKFILL_FLAT_MIB:.0f} MiB)",
        _verdict(growth <= BACKFILL_FLAT_MIB),
    ))  # fmt: skip
    return rows


def throughput_limits(through: dict[str, Any], warm: dict[str, Any], scenario: str) -> dict[str, float]:
    """latency-bound = (batchSize + newBatchThreshold) / (Graph requests per callback x latency);
    CPU-bound = 1 / (the raw baseline's CPU seconds per callback: raw httpx making every call the app makes, as for
    the warm target)."""
    figures = through["scenarios"][scenario]
    concurrency = through["batchSize"] + through["newBatchThreshold"]
    requests = figures["graphRequestsPerCallback"]
    latency_bound = concurrency / (requests * through["latencyMs"] / 1000)
    raw_ms = warm["cpuMs"][f"raw+http {scenario}"]["median"]
    return {"latencyBound": latency_bound, "cpuBound": 1000 / raw_ms, "concurrency": concurrency, "requests": requests}


def _sandbox_demand(results: dict[str, Any]) -> tuple[float, float]:
    through = results.get("throughput")
    if not through:
        return 0.0, 0.0
    peak = max(through["scenarios"].values(), key=lambda f: f["perSecond"] * f["graphRequestsPerCallback"])
    return peak["perSecond"] * peak["graphRequestsPerCallback"], peak["sandboxCpuBusy"]


def render(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [
        f"Benchmarks {machine['date']}: {machine['cpuCount']} cores ({machine['cpuModel'] or 'unknown CPU'}), "
        f"Python {machine['python']}, {machine['platform']}, commit {machine['commit']}, "
        f"app {machine['appFingerprint']}" + (" — QUICK smoke run, not for quoting" if results["quick"] else ""),
        "",
        "| benchmark | figure | app | baseline | app vs baseline | target | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(results)]
    lines += ["", *notes(results)]
    return "\n".join(lines)


def _raw_tables(checks: dict[str, Any]) -> str:
    """The evidence that the baselines' table calls succeeded: statuses, the signature check, the read-back."""
    signing = checks["signingCheck"]
    return (
        "hand-signed httpx table calls (Shared Key) answered "
        + ", ".join(f"{k} x{v}" for k, v in checks["statuses"].items())
        + f"; the same read signed with a wrong key got {signing['wrongKey']} (right key {signing['rightKey']}); "
        "rows read back with azure-data-tables, equal to what was written: "
        + ", ".join(f"{k} {v}" for k, v in checks["readBack"].items())
    )


def notes(results: dict[str, Any]) -> list[str]:
    out: list[str] = []
    cold = results.get("cold")
    if cold:
        v = cold["variants"]
        out.append(
            "cold start phases (median): "
            + "; ".join(
                f"{name}: import {_ms(f['importSeconds']['median'])}, first webhook "
                f"{_ms(f['webhookSeconds']['median'])}, first apply {_ms(f['applySeconds']['median'])}, "
                f"to exit {_s(f['toExitSeconds']['median'])}, CPU {_s(f['cpuSeconds']['median'])}, "
                f"{f['modules']['median']:.0f} modules, peak RSS {_mib(f['peakRssMiB']['median'])}"
                for name, f in v.items()
            )
            + f"; to-PATCH range app {_s(v['app']['toPatchSeconds']['min'])}-{_s(v['app']['toPatchSeconds']['max'])}"
        )
        if "tableCalls" in cold:
            calls = cold["tableCalls"]
            out.append(
                f"cold start table calls, counted in an untimed app process and made as many by the table "
                f"baselines: {calls['createTable']} create table, {calls['reads']} reads, {calls['writes']} writes; "
                + _raw_tables(cold["rawTables"])
            )
    warm = results.get("warm")
    if warm:
        counts = warm["requestsPerCallback"]
        out.append(
            "requests per callback (counted: sandbox counters for Graph and tokens, aiohttp and httpx for tables): "
            + "; ".join(
                f"{k}: {c['graph']:.2f} Graph + {c['table']:.2f} table"
                + (f" ({c['tableReads']:.2f} reads)" if "tableReads" in c else "")
                + f" + {c['token']:.2f} token"
                for k, c in counts.items()
                if not k.startswith("raw ")
            )
            + f". Warm: {warm['rounds']} rounds of {warm['block']} callbacks per kind, range app known "
            f"{warm['cpuMs']['app known']['min']:.2f}-{warm['cpuMs']['app known']['max']:.2f} ms"
        )
        if "rawTables" in warm:
            out.append("warm: " + _raw_tables(warm["rawTables"]))
    tenants = results.get("tenants")
    if tenants:
        tokens, cpu = tenants["tokenRequests"], tenants["cpuMs"]
        out.append(
            f"tenants: {tenants['rounds']} rounds of {tenants['block']} known-activity callbacks per kind, one process "
            f"and one set of settings ({tenants['tenants'] + 1} customer tenants and the managed identity's own); "
            "ranges "
            + ", ".join(f"{k} {v['min']:.2f}-{v['max']:.2f} ms" for k, v in cpu.items())
            + f"; token requests: at most {tokens['maxPerTenant']} per tenant for {tokens['tenants']} tenants, "
            f"{tokens['managedIdentity']} to the managed identity (the assertion of all, and the home tenant's token)"
        )
    hook = results.get("webhook")
    if hook:
        batch = hook["cases"]["batch100"]
        out.append(
            "webhook through the indexed HTTP function (header copy, JSON answer): batch "
            f"{batch['function']['median']:.1f} µs/event, single "
            f"{hook['cases']['single']['function']['median']:.1f} µs/event; batch body "
            f"{batch['bodyBytes']:,} bytes"
        )
    through = results.get("throughput")
    if through and warm:
        for scenario, f in through["scenarios"].items():
            limits = throughput_limits(through, warm, scenario)
            out.append(
                f"throughput {scenario}: latency-bound = (batchSize {through['batchSize']} + newBatchThreshold "
                f"{through['newBatchThreshold']}) / ({limits['requests']:.2f} Graph requests x "
                f"{through['latencyMs'] / 1000:.3f} s) = {limits['latencyBound']:.0f}/s; CPU-bound = 1 / "
                f"{1000 / limits['cpuBound']:.2f} ms (raw httpx, every call) = {limits['cpuBound']:.0f}/s "
                f"(Graph calls only: "
                f"{1000 / warm['cpuMs'][f'raw {scenario}']['median']:.0f}/s). Measured {f['perSecond']:.0f}/s "
                f"(range {f['perSecondMin']:.0f}-{f['perSecondMax']:.0f}); worker CPU {f['workerCpuMsPerCallback']:.1f}"
                f" ms per callback incl. the runner's polling and deletes, {f['workerCpuBusy']:.0%} of a core; mean "
                f"Graph requests in flight {f['meanGraphInFlight']:.1f} (max {f['sandboxMaxInFlight']}); sandbox "
                f"{f['sandboxCpuBusy']:.0%} busy, Azurite {f['azuriteCpuBusy']:.0%} busy; failed invocations "
                f"{f['failedInvocations']:.0f}"
            )
        if results.get("warmForThroughputOnly"):
            out.append("throughput's CPU-bound limit comes from a warm run made for it (warm was not selected)")
    fresh = results.get("freshness")
    if fresh:
        interval = fresh["host"]["maxPollingInterval"]
        seconds = sum(float(x) * m for x, m in zip(interval.split(":"), (3600, 60, 1), strict=True))
        load = fresh.get("load", {})
        out.append(
            f"freshness: host.json maxPollingInterval {interval} → an idle instance polls every {seconds:g} s = "
            f"{86400 / seconds:,.0f} queue GetMessages transactions a day per instance (and per queue trigger); "
            f"under load the webhook took the {load.get('callbacks', 0)} callbacks in "
            f"{load.get('postingSeconds', 0):.1f} s and the same runner applied "
            f"{load.get('appliedPerSecond', 0):.0f}/s; sandbox latency 0 ms here"
        )
    memory = results.get("memory")
    if memory:
        out.append(
            "memory: "
            + ", ".join(f"{s['callbacks']:,}: {s['rssMiB']:.1f}" for s in memory["samples"])
            + f" MiB (before: {memory['rssBeforeMiB']:.1f}, peak {memory['peakMiB']:.1f}); "
            f"outcomes {memory['outcomes']}"
        )
    backfill = results.get("backfill")
    if backfill:
        out.append(
            "backfill reading: "
            + "; ".join(
                f"{int(size):,} lines, {figures['bytes'] / 1e6:,.0f} MB: {figures['backfill']['summary']}"
                for size, figures in sorted(backfill["sizes"].items(), key=lambda item: int(item[0]))
            )
        )
    sandbox = results.get("sandbox")
    if sandbox:
        out.append(
            f"sandbox loadcheck: {sandbox['requests']:,} PATCHes in {sandbox['wallSeconds']} s, p50 "
            f"{sandbox['p50Ms']} ms, p99 {sandbox['p99Ms']} ms, statuses {sandbox['statuses']}"
        )
    size = results.get("size")
    if size:
        out.append(
            "size by distribution: "
            + ", ".join(f"{d['name']} {d['version']} {_mb(d['bytes'])}" for d in size["top"][:6])
            + "; by requirement (exclusive): "
            + ", ".join(f"{r['name']} {_mb(r['exclusiveBytes'])}" for r in size["requirements"][:5])
            + f"; {'cached' if size['cached'] else 'installed in ' + _s(size['installSeconds'])} in {size['folder']}"
        )
    out.append("run time per benchmark: " + ", ".join(f"{k} {v:.0f} s" for k, v in results.get("seconds", {}).items()))
    other = results.get("otherLoad", {})
    out.append(
        "CPU used by other processes / stolen by the hypervisor during each benchmark (mean cores): "
        + ", ".join(f"{k} {v['otherCores']:.2f} / {v['stolenCores']:.2f}" for k, v in other.items())
    )
    if results.get("appFingerprintAtEnd", results["machine"]["appFingerprint"]) != results["machine"]["appFingerprint"]:
        out.append(
            "WARNING: the app's code changed during the run (fingerprint "
            f"{results['machine']['appFingerprint']} → {results['appFingerprintAtEnd']}): benchmarks measured "
            "different code; re-run, or run from a snapshot (git archive HEAD) of the tree"
        )
    speed = results.get("calibrationMs", {})
    if speed:
        out.append(
            "CPU speed check (a fixed pure-Python workload, CPU ms, lower is faster; compare runs by it): "
            + ", ".join(f"{k} {v:.0f}" for k, v in speed.items())
        )
        if max(speed.values()) > CALIBRATION_DRIFT * min(speed.values()):
            out.append(
                f"WARNING: the CPU's speed varied by more than {CALIBRATION_DRIFT - 1:.0%} during the run "
                "(throttling or a busy host): compare only figures measured side by side"
            )
    busy = [k for k, v in other.items() if v["otherCores"] + v["stolenCores"] > BUSY_MACHINE_CORES]
    if busy:
        out.append(
            f"WARNING: other processes or the hypervisor took more than {BUSY_MACHINE_CORES} of a core during "
            f"{', '.join(busy)}; those figures are pessimistic (wall times most): re-run on a quiet machine"
        )
    return [f"- {line}" for line in out]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: every benchmark, few repetitions")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(NAMES)}")
    parser.add_argument("--skip-size", action="store_true", help="leave out the deployment size")
    parser.add_argument("--profile", action="store_true", help="also print cProfile tops (cold, warm, webhook)")
    parser.add_argument("--json", default=None, help="also write every figure to this file")
    args = parser.parse_args(argv)
    selected = [n.strip() for n in args.only.split(",") if n.strip()] or list(NAMES)
    unknown = [n for n in selected if n not in NAMES]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    if args.skip_size:
        selected = [n for n in selected if n != "size"]
    sys.path.insert(0, str(ROOT))

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    results = run_all(selected, args.quick, args.profile, log)
    results["totalSeconds"] = time.perf_counter() - started
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2, default=str)
    print(render(results))
    print(f"\ntotal {results['totalSeconds']:.0f} s")
    if args.profile:
        for name in ("cold", "warm", "webhook"):
            text = (results.get(name) or {}).get("profile") or (results.get(name) or {}).get("cases", {}).get("profile")
            if text:
                print(f"\n===== profile: {name} =====\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
