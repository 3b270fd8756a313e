"""Cold start: a fresh process applies its first callback end to end, against fresh processes doing the same
HTTP calls by hand.

Variants, each a new ``python -m bench.coldstart <variant> '<params>'`` process, interleaved in rotating order:

- ``app``: imports ``function_app``, indexes it, calls the webhook's user function with a signed
  ``func.HttpRequest`` and an output collector, then the queue function with each message it emitted (as the
  host would): state table, managed-identity token, lookup by external id, PATCH, state table.
- ``raw``: the same callback by hand: HMAC check and ``json.loads``, a token from ``azure.identity``'s
  ``ManagedIdentityCredential``, the lookup GET and the PATCH with ``httpx``.
- ``raw+tables``: ``raw`` plus the same four table calls the app makes, with ``azure-data-tables``
  (create table, read the row, insert it, update it after the PATCH).

Wall time runs from the parent's ``Popen`` to the moment the sandbox logs the PATCH (its ``at``, same clock)
and to the child's exit; peak RSS and CPU come from ``wait4``'s rusage of each child.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from typing import Any

from bench.common import (
    GRAPH_SCOPE,
    REGISTRATION_ID,
    SECRET_BYTES,
    Infra,
    Out,
    event_body,
    graph_id,
    patch_body,
    seed,
    signed_headers,
    summary,
)

VARIANTS = ("app", "raw", "raw+tables")
RAW_TABLE = "benchcoldraw"


# --- the children --------------------------------------------------------------------------------------------


def _child_app(params: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    from azure.functions.queue import QueueMessage

    import function_app

    imported = time.perf_counter()
    modules_imported = len(sys.modules)
    functions = {f.get_function_name(): f.get_user_function() for f in function_app.app.get_functions()}
    import azure.functions as func

    request = func.HttpRequest(
        method="POST",
        url=f"http://localhost:7071/api/providers/{REGISTRATION_ID}/course-activities",
        headers=params["headers"],
        params={},
        route_params={"registrationId": REGISTRATION_ID},
        body=params["body"].encode(),
    )
    updates = Out()
    response = functions["course_activity_webhook"](request, updates)
    if response.status_code != 202:
        raise RuntimeError(f"webhook answered {response.status_code}: {response.get_body()!r}")
    accepted = time.perf_counter()
    modules_accepted = len(sys.modules)

    async def apply() -> float:
        from connector import bootstrap

        for index, text in enumerate(updates.get()):
            message = QueueMessage(
                id=f"cold-{index}", body=text.encode(), dequeue_count=1, insertion_time=None, pop_receipt="x"
            )
            await functions["apply_course_activity_update"](message, Out())
        done = time.perf_counter()
        await bootstrap.close()
        return done

    applied = asyncio.run(apply())
    from connector import telemetry

    if telemetry.snapshot().get("applied") != 1:
        raise RuntimeError(f"the callback was not applied: {telemetry.snapshot()}")
    return {
        "importSeconds": imported - started,
        "webhookSeconds": accepted - imported,
        "applySeconds": applied - accepted,
        "modules": len(sys.modules),
        "modulesAtImport": modules_imported,
        "modulesByApply": len(sys.modules) - modules_accepted,
    }


def _child_raw(params: dict[str, Any], *, tables: bool) -> dict[str, Any]:
    import base64
    import hashlib
    import hmac

    started = time.perf_counter()
    import httpx
    from azure.identity.aio import ManagedIdentityCredential

    if tables:
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
        from azure.data.tables.aio import TableClient
    imported = time.perf_counter()

    headers, body = params["headers"], params["body"].encode()
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(SECRET_BYTES, signed, hashlib.sha256).digest()).decode()
    if not any(hmac.compare_digest(s.partition(",")[2], expected) for s in headers["webhook-signature"].split()):
        raise RuntimeError("bad signature")
    ext = json.loads(body)["externalcourseActivityId"]
    accepted = time.perf_counter()

    async def apply() -> float:
        credential = ManagedIdentityCredential()
        storage = os.environ["AzureWebJobsStorage"]  # noqa: SIM112 - the Functions host's own name
        table = TableClient.from_connection_string(storage, RAW_TABLE) if tables else None
        key = ("bench", f"ext:{ext}")
        if table is not None:
            with contextlib.suppress(ResourceExistsError):
                await table.create_table()
            with contextlib.suppress(ResourceNotFoundError):
                await table.get_entity(*key)
            await table.create_entity({"PartitionKey": key[0], "RowKey": key[1], "state": "pending"})
        token = (await credential.get_token(GRAPH_SCOPE)).token
        async with httpx.AsyncClient(
            base_url=os.environ["GRAPH_BASE_URL"], headers={"Authorization": f"Bearer {token}"}
        ) as client:
            provider = f"/employeeExperience/learningProviders/{REGISTRATION_ID}"
            found = await client.get(f"{provider}/learningCourseActivities(externalcourseActivityId='{ext}')")
            found.raise_for_status()
            patched = await client.patch(
                f"{provider}/learningCourseActivities/{found.json()['id']}", json=patch_body(params["n"])
            )
            if patched.status_code != 204:
                raise RuntimeError(f"PATCH answered {patched.status_code}")
        if table is not None:
            await table.update_entity({"PartitionKey": key[0], "RowKey": key[1], "state": "applied"})
        done = time.perf_counter()
        if table is not None:
            await table.close()
        await credential.close()
        return done

    modules_accepted = len(sys.modules)
    applied = asyncio.run(apply())
    return {
        "importSeconds": imported - started,
        "webhookSeconds": accepted - imported,
        "applySeconds": applied - accepted,
        "modules": len(sys.modules),
        "modulesByApply": len(sys.modules) - modules_accepted,
    }


# --- the parent ----------------------------------------------------------------------------------------------


def _spawn(infra: Infra, variant: str, params: dict[str, Any], python_flags: tuple[str, ...] = ()) -> dict[str, Any]:
    env = infra.child_env()
    started = time.time()
    process = subprocess.Popen(
        [sys.executable, *python_flags, "-m", "bench.coldstart", variant, json.dumps(params)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = process.communicate(timeout=120)
    exited = time.time()
    # communicate() has reaped the child; its rusage is in RUSAGE_CHILDREN, read as a difference by the caller.
    if process.returncode != 0:
        raise RuntimeError(f"cold start {variant} failed ({process.returncode}):\n{err.decode()[-3000:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result.update(started=started, exited=exited)
    if python_flags:
        result["stderr"] = err.decode()
    return result


def import_profile(stderr: str, top: int = 15) -> str:
    """``-X importtime`` output summed by top-level package (self time), heaviest first."""
    by_package: dict[str, list[float]] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line.split("|")
        self_us, name = parts[0].replace("import time:", "").strip(), parts[2].strip()
        package = name.split(".")[0]
        entry = by_package.setdefault(package, [0.0, 0])
        entry[0] += int(self_us) / 1e6
        entry[1] += 1
    ranked = sorted(by_package.items(), key=lambda item: -item[1][0])
    total = sum(v[0] for v in by_package.values())
    lines = [f"import time by top-level package (self time summed; total {total:.3f} s, "
             f"{sum(v[1] for v in by_package.values())} modules):"]  # fmt: skip
    lines += [f"  {seconds:7.3f} s  {count:5d} modules  {package}" for package, (seconds, count) in ranked[:top]]
    return "\n".join(lines)


def _patch_at(admin: Any, gid: str) -> float:
    entries = admin.requests(method="PATCH", path_contains=gid)
    if not entries:
        raise RuntimeError(f"no PATCH reached the sandbox for {gid}")
    return datetime.fromisoformat(entries[-1]["at"].replace("Z", "+00:00")).timestamp()


def measure(infra: Infra, reps: int, profile: bool = False) -> dict[str, Any]:
    """``reps`` fresh processes per variant, interleaved; medians of wall time, peak RSS and CPU."""
    import resource

    admin = infra.admin()
    stamp = int(time.time())
    names = {(v, r): f"cold-{v.replace('+', '')}-{r}-{stamp}" for v in VARIANTS for r in range(reps)}
    seed(admin, [*names.values(), f"cold-profile-{stamp}"])
    samples: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    for rep in range(reps):
        order = VARIANTS[rep % len(VARIANTS) :] + VARIANTS[: rep % len(VARIANTS)]
        for variant in order:
            ext = names[(variant, rep)]
            body = event_body(ext, rep)
            params = {"body": body.decode(), "headers": signed_headers(body, f"wh-{ext}"), "n": rep}
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            result = _spawn(infra, variant, params)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            result["toPatchSeconds"] = _patch_at(admin, graph_id(ext)) - result["started"]
            result["toExitSeconds"] = result["exited"] - result["started"]
            result["cpuSeconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            # ru_maxrss of RUSAGE_CHILDREN is the largest child so far: read each child's own from its peak
            result["peakRssMiB"] = result.pop("hwmKiB") / 1024
            samples[variant].append(result)
    profile_text = None
    if profile:  # one more app process, under cProfile (slower, so not among the samples)
        ext = f"cold-profile-{stamp}"
        body = event_body(ext, 0)
        params = {"body": body.decode(), "headers": signed_headers(body, f"wh-{ext}"), "n": 0, "profile": True}
        profile_text = _spawn(infra, "app", params)["profile"]
        ext = f"cold-importtime-{stamp}"
        seed(admin, [ext], reset=False)
        body = event_body(ext, 0)
        params = {"body": body.decode(), "headers": signed_headers(body, f"wh-{ext}"), "n": 0}
        imports = import_profile(_spawn(infra, "app", params, ("-X", "importtime"))["stderr"])
        profile_text = f"{imports}\n\n{profile_text}"
    admin.close()
    figures: dict[str, Any] = {}
    for variant, runs in samples.items():
        figures[variant] = {
            name: summary([run[name] for run in runs])
            for name in (
                "toPatchSeconds",
                "toExitSeconds",
                "peakRssMiB",
                "cpuSeconds",
                "importSeconds",
                "webhookSeconds",
                "applySeconds",
                "modules",
                "modulesByApply",
            )
        }
    result: dict[str, Any] = {"reps": reps, "variants": figures}
    if profile_text:
        result["profile"] = profile_text
    return result


def _profiled(params: dict[str, Any]) -> dict[str, Any]:
    from bench.common import Profile

    profile = Profile()
    profile.start()
    result = _child_app(params)
    profile.stop()
    result["profile"] = profile.text()
    return result


def main() -> None:
    variant, params = sys.argv[1], json.loads(sys.argv[2])
    if variant == "app":
        result = _profiled(params) if params.get("profile") else _child_app(params)
    elif variant in ("raw", "raw+tables"):
        result = _child_raw(params, tables=variant == "raw+tables")
    else:
        raise SystemExit(f"unknown variant {variant}")
    from bench.common import proc_status

    result["hwmKiB"] = proc_status()["VmHWM"]
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
