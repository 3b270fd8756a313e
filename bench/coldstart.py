"""Cold start: a fresh process applies its first callback end to end, against fresh processes doing the same
HTTP calls by hand.

Variants, each a new ``python -m bench.coldstart <variant> '<params>'`` process, interleaved in rotating order:

- ``app``: imports ``function_app``, indexes it, calls the webhook's user function with a signed
  ``func.HttpRequest`` and an output collector, then the queue function with each message it emitted (as the
  host would): state table, managed-identity token, lookup by external id, PATCH, state table.
- ``raw``: the Graph calls by hand (context): HMAC check and ``json.loads``, a token from ``azure.identity``'s
  ``ManagedIdentityCredential``, the lookup GET and the PATCH with ``httpx``;
- ``raw+http`` ("raw httpx + azure.identity, every call", the issue's baseline, against which the target is
  judged): ``raw`` plus the app's table calls as plain ``httpx`` requests on the same client, signed by hand with
  Shared Key (bench/tables.py);
- ``raw+tables`` (context): ``raw`` plus the same table calls with ``azure-data-tables``, on the transport the app
  gives its storage clients (one aiohttp session, ``trust_env=False``, no cookie jar, no decompression; one TLS
  context shared with httpx, as the app shares one).

The table baselines make as many table calls as the app: one more app process (``count``, untimed, not among the
samples) counts its table requests (create table, reads, writes), and each baseline makes that many, with rows
shaped and sized like the app's. Afterwards every row they wrote is read back with azure-data-tables and compared,
the hand-made calls' statuses are summed, and a request signed with a wrong key must get Azurite's 403.

Wall time runs from the parent's ``Popen`` to the moment the sandbox logs the PATCH (its ``at``, same clock)
and to the child's exit; peak RSS and CPU come from ``wait4``'s rusage of each child.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from typing import Any

from bench.common import (
    REGISTRATION_ID,
    SECRET_BYTES,
    Infra,
    Out,
    event_body,
    graph_id,
    seed,
    signed_headers,
    summary,
)
from bench.tables import SdkTable, TableHttp, callback_by_hand, endpoint_port, storage_session, tls_context

VARIANTS = ("app", "raw", "raw+tables", "raw+http")
TABLES = {"raw+tables": "benchcoldsdk", "raw+http": "benchcoldhttp"}


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
            poison = Out()
            await functions["apply_course_activity_update"](message, poison)
            if poison.get():
                raise RuntimeError(f"the callback was dead-lettered: {poison.get()}")
        done = time.perf_counter()
        await bootstrap.close()
        return done

    applied = asyncio.run(apply())
    return {
        "importSeconds": imported - started,
        "webhookSeconds": accepted - imported,
        "applySeconds": applied - accepted,
        "modules": len(sys.modules),
        "modulesAtImport": modules_imported,
        "modulesByApply": len(sys.modules) - modules_accepted,
    }


def _child_raw(params: dict[str, Any], *, tables: str | None) -> dict[str, Any]:
    import base64
    import hashlib
    import hmac

    started = time.perf_counter()
    import httpx
    from azure.identity.aio import ManagedIdentityCredential

    imported = time.perf_counter()

    headers, body = params["headers"], params["body"].encode()
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(SECRET_BYTES, signed, hashlib.sha256).digest()).decode()
    if not any(hmac.compare_digest(s.partition(",")[2], expected) for s in headers["webhook-signature"].split()):
        raise RuntimeError("bad signature")
    ext = json.loads(body)["externalcourseActivityId"]
    accepted = time.perf_counter()
    calls = params.get("tableCalls") or {"createTable": 1, "reads": 2, "writes": 1}
    written: dict[str, dict[str, Any]] = {}
    statuses: dict[str, int] = {}

    async def apply() -> float:
        credential = ManagedIdentityCredential()
        storage = os.environ["AzureWebJobsStorage"]  # noqa: SIM112 - the Functions host's own name
        session: Any = None
        table: Any = None
        if tables == "sdk":  # one TLS context for Graph and the tables, as the app has
            context = tls_context()
            http = httpx.AsyncClient(base_url=os.environ["GRAPH_BASE_URL"], verify=context)
            session = storage_session(context)
            table = SdkTable(session, storage, TABLES["raw+tables"])
        else:
            http = httpx.AsyncClient(base_url=os.environ["GRAPH_BASE_URL"])
            if tables == "http":
                table = TableHttp(http, storage, TABLES["raw+http"])
        if table is not None:
            for _ in range(calls["createTable"]):
                await table.create_table()
        await callback_by_hand(
            http, credential, table, ext, params["n"], reads=calls["reads"], writes=calls["writes"], written=written
        )
        done = time.perf_counter()
        await http.aclose()
        if isinstance(table, SdkTable):
            await table.close()
        if session is not None:
            await session.close()
        if isinstance(table, TableHttp):
            statuses.update(table.statuses)
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
        "rows": written,
        "tableStatuses": statuses,
    }


def _child_count(params: dict[str, Any]) -> dict[str, Any]:
    """The app's first callback once more, untimed, counting its table requests (aiohttp, the storage port):
    creates of the table, reads (GET) and writes (the rest). The table baselines then make as many."""
    from urllib.parse import urlsplit

    import aiohttp

    port = endpoint_port(os.environ["AzureWebJobsStorage"])  # noqa: SIM112 - the Functions host's own name
    calls = {"createTable": 0, "reads": 0, "writes": 0}
    original = aiohttp.ClientSession._request

    async def counting(self: Any, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
        parts = urlsplit(str(url))
        if parts.port == port:
            kind = "createTable" if parts.path.endswith("/Tables") else "reads" if method.upper() == "GET" else "writes"
            calls[kind] += 1
        return await original(self, method, url, *args, **kwargs)

    aiohttp.ClientSession._request = counting  # type: ignore[method-assign]
    result = _child_app(params)
    result["tableCalls"] = calls
    return result


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
    seed(admin, [*names.values(), f"cold-profile-{stamp}", f"cold-count-{stamp}"])
    # One app process, untimed, counts its table calls; the table baselines make as many.
    ext = f"cold-count-{stamp}"
    body = event_body(ext, 0)
    table_calls = _spawn(infra, "count", {"body": body.decode(), "headers": signed_headers(body, f"wh-{ext}"), "n": 0})[
        "tableCalls"
    ]
    samples: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    for rep in range(reps):
        order = VARIANTS[rep % len(VARIANTS) :] + VARIANTS[: rep % len(VARIANTS)]
        for variant in order:
            ext = names[(variant, rep)]
            body = event_body(ext, rep)
            params = {"body": body.decode(), "headers": signed_headers(body, f"wh-{ext}"), "n": rep}
            if variant in TABLES:
                params["tableCalls"] = table_calls
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
    result: dict[str, Any] = {"reps": reps, "variants": figures, "tableCalls": table_calls}
    result["rawTables"] = asyncio.run(_check_tables(infra, samples))
    if profile_text:
        result["profile"] = profile_text
    return result


async def _check_tables(infra: Infra, samples: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """What the table baselines' children wrote, read back with azure-data-tables and compared (raises on any
    difference); the statuses the hand-made calls got; and Azurite refusing a wrong Shared Key signature."""
    import httpx
    from azure.data.tables.aio import TableClient

    read_back: dict[str, int] = {}
    for variant, table in TABLES.items():
        async with TableClient.from_connection_string(infra.storage, table) as client:
            read_back[variant] = 0
            for run in samples[variant]:
                for key, row in run["rows"].items():
                    stored = dict(await client.get_entity(row["PartitionKey"], key))
                    stored.pop("Timestamp", None)
                    if stored != row:
                        raise RuntimeError(f"{variant}: row {key} read back differs:\n{stored}\n{row}")
                    read_back[variant] += 1
            if read_back[variant] != len(samples[variant]):
                raise RuntimeError(f"{variant}: {read_back[variant]} rows for {len(samples[variant])} callbacks")
    statuses: dict[str, int] = {}
    for run in samples["raw+http"]:
        for status, count in run["tableStatuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    async with httpx.AsyncClient() as http:
        signing = await TableHttp(http, infra.storage, TABLES["raw+http"]).signing_check()
    return {"statuses": dict(sorted(statuses.items())), "signingCheck": signing, "readBack": read_back}


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
    elif variant == "count":
        result = _child_count(params)
    elif variant in ("raw", "raw+tables", "raw+http"):
        result = _child_raw(params, tables={"raw+tables": "sdk", "raw+http": "http"}.get(variant))
    else:
        raise SystemExit(f"unknown variant {variant}")
    from bench.common import proc_status

    result["hwmKiB"] = proc_status()["VmHWM"]
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
