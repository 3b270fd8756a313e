"""Warm cost per callback: CPU of the queue function per applied callback, in one warmed-up process, against a
hand-written client making the same requests.

Two scenarios, because they make different requests:

- ``new``: the first callback of an activity known by its external id: state row read (absent) and created,
  lookup GET, PATCH, state row updated;
- ``known``: a later callback of an activity already applied once: state row read and updated, PATCH (the Graph
  id is remembered), state row updated.

Baselines, same process, same sockets: ``raw HTTP`` is one ``httpx.AsyncClient`` with a token from
``azure.identity`` (cached by the credential) making the same Graph requests; ``raw HTTP + tables`` adds as many
table calls as the app was counted making, with ``azure-data-tables`` (read, insert or update, update after the
PATCH, and extra reads when the app makes more than three). Blocks of callbacks alternate between
the app and the baselines, round after round; each figure is the median over rounds of one block's
``time.process_time()`` divided by its callbacks (Azurite and the sandbox run in other processes, so their CPU
is not counted). A first round, not timed, counts the requests the app makes per callback: Graph requests from
the sandbox's own counters, table requests by wrapping aiohttp in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from bench.common import (
    GRAPH_SCOPE,
    REGISTRATION_ID,
    Infra,
    Out,
    Profile,
    app_functions,
    child_main,
    event,
    event_body,
    graph_id,
    http_request,
    median,
    patch_body,
    queue_message,
    seed,
    signed_headers,
)

RAW_TABLE = "benchwarmraw"
SCENARIOS = ("new", "known")
KINDS = ("app", "raw", "raw+tables")


class _Callbacks:
    """Queue messages made by the app's own webhook function, ready before any timing starts."""

    def __init__(self, webhook: Any) -> None:
        self._webhook = webhook
        self._count = 0

    def messages(self, external_ids: list[str], n: int) -> list[Any]:
        made = []
        for ext in external_ids:
            self._count += 1
            body = event_body(ext, n)
            updates = Out()
            response = self._webhook(http_request(body, signed_headers(body, f"wh-{ext}-{n}")), updates)
            assert response.status_code == 202, response.get_body()
            made += [queue_message(text, f"m{self._count}") for text in updates.get()]
        return made


class _Raw:
    """What a hand-written worker would do for the same callback."""

    def __init__(self, infra: Infra, *, tables: bool) -> None:
        import httpx
        from azure.identity.aio import ManagedIdentityCredential

        self._credential = ManagedIdentityCredential()
        self._http = httpx.AsyncClient(base_url=infra.graph_url)
        self._table: Any = None
        if tables:
            from azure.data.tables.aio import TableClient

            self._table = TableClient.from_connection_string(infra.storage, RAW_TABLE)
        self._provider = f"/employeeExperience/learningProviders/{REGISTRATION_ID}/learningCourseActivities"

    async def start(self) -> None:
        if self._table is not None:
            from azure.core.exceptions import ResourceExistsError

            with contextlib.suppress(ResourceExistsError):
                await self._table.create_table()

    async def close(self) -> None:
        await self._http.aclose()
        await self._credential.close()
        if self._table is not None:
            await self._table.close()

    async def apply(self, ext: str, n: int, table_calls: int = 3) -> None:
        """One callback: [read the row, write it,] lookup GET when the id is unknown, PATCH, [write the row].

        With a table, ``table_calls`` matches the app's counted calls: 3 is read, write, write-after-PATCH;
        more adds reads of the row before the PATCH; 2 drops the first write; 1 keeps only the read."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceNotFoundError

        state: Any = None
        meta: Any = None
        key = {"PartitionKey": "bench", "RowKey": f"ext:{ext}"}
        table = self._table
        if table is not None:
            with contextlib.suppress(ResourceNotFoundError):
                state = await table.get_entity(key["PartitionKey"], key["RowKey"])
            if table_calls >= 3:
                row = {**key, "merged": json.dumps(event(ext, n)), "version": n, "status": "pending"}
                if state is None:
                    meta = await table.create_entity(row)
                else:
                    row["graphId"] = state["graphId"]
                    meta = await table.update_entity(
                        row, mode="replace", etag=state.metadata["etag"], match_condition=MatchConditions.IfNotModified
                    )
            for _ in range(table_calls - 3):
                with contextlib.suppress(ResourceNotFoundError):
                    await table.get_entity(key["PartitionKey"], key["RowKey"])
        token = (await self._credential.get_token(GRAPH_SCOPE)).token
        headers = {"Authorization": f"Bearer {token}"}
        gid = state["graphId"] if state is not None else None
        if gid is None and table is None and n > 0:
            gid = graph_id(ext)  # without a table, "known" means the id is remembered in memory
        if gid is None:
            found = await self._http.get(f"{self._provider}(externalcourseActivityId='{ext}')", headers=headers)
            found.raise_for_status()
            gid = found.json()["id"]
        body = patch_body(n)
        patched = await self._http.patch(f"{self._provider}/{gid}", json=body, headers=headers)
        if patched.status_code != 204:
            raise RuntimeError(f"raw PATCH answered {patched.status_code}")
        if table is not None and table_calls >= 2:
            done = {**key, "merged": json.dumps(event(ext, n)), "applied": json.dumps(body), "version": n}
            done.update(graphId=gid, status="applied")
            etag = meta["etag"] if meta is not None else (state.metadata["etag"] if state is not None else None)
            if etag is None:
                await table.create_entity(done)
            else:
                await table.update_entity(
                    done, mode="replace", etag=etag, match_condition=MatchConditions.IfNotModified
                )


@contextlib.contextmanager
def _count_aiohttp(counter: Counter[str]) -> Any:
    """Counts aiohttp requests (Azure Tables and the identity endpoint speak through it) by host:port."""
    import aiohttp

    original = aiohttp.ClientSession._request

    async def counting(self: Any, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
        parts = urlsplit(str(url))
        counter[f"{parts.hostname}:{parts.port}"] += 1
        return await original(self, method, url, *args, **kwargs)

    aiohttp.ClientSession._request = counting  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        aiohttp.ClientSession._request = original  # type: ignore[method-assign]


async def _main(infra: Infra, params: dict[str, Any]) -> dict[str, Any]:
    import function_app
    from connector import bootstrap, telemetry

    rounds, block = int(params.get("rounds", 7)), int(params.get("block", 50))
    functions = app_functions(function_app.app)
    queue_fn = functions["apply_course_activity_update"]
    callbacks = _Callbacks(functions["course_activity_webhook"])
    admin = infra.admin()
    stamp = int(time.time())
    total_rounds = rounds + 1  # round 0 warms up and counts requests
    ids = {
        (kind, scenario, r): [f"w{kind.replace('+', '')}-{scenario}-{r}-{i}-{stamp}" for i in range(block)]
        for kind in KINDS
        for scenario in SCENARIOS
        for r in range(total_rounds)
    }
    seed(admin, [ext for group in ids.values() for ext in group])

    raw = _Raw(infra, tables=False)
    raw_tables = _Raw(infra, tables=True)
    await raw_tables.start()

    # The "known" activities get their first callback now, untimed.
    for r in range(total_rounds):
        for message in callbacks.messages(ids[("app", "known", r)], 0):
            await queue_fn(message, Out())
        for ext in ids[("raw+tables", "known", r)]:
            await raw_tables.apply(ext, 0)
    app_blocks = {
        (scenario, r): callbacks.messages(ids[("app", scenario, r)], 0 if scenario == "new" else 1)
        for scenario in SCENARIOS
        for r in range(total_rounds)
    }

    cpu: dict[tuple[str, str], list[float]] = {(k, s): [] for k in KINDS for s in SCENARIOS}
    counts: dict[str, dict[str, float]] = {}
    table_calls = dict.fromkeys(SCENARIOS, 3)  # set from the app's counted calls in round 0
    profile_text = None
    for r in range(total_rounds):
        for scenario in SCENARIOS:
            for kind in KINDS:
                counting = r == 0
                table_requests: Counter[str] = Counter()
                stats_before = admin.stats() if counting else None
                applied_before = telemetry.snapshot().get("applied", 0)
                with _count_aiohttp(table_requests) if counting else contextlib.nullcontext():
                    started = time.process_time()
                    if kind == "app":
                        for message in app_blocks[(scenario, r)]:
                            await queue_fn(message, Out())
                    else:
                        client = raw if kind == "raw" else raw_tables
                        n = 0 if scenario == "new" else 1
                        for ext in ids[(kind, scenario, r)]:
                            await client.apply(ext, n, table_calls[scenario])
                    spent = time.process_time() - started
                if kind == "app" and telemetry.snapshot().get("applied", 0) - applied_before != block:
                    raise RuntimeError(f"not every callback was applied: {telemetry.snapshot()}")
                if counting:
                    after = admin.stats()
                    storage_port = str(urlsplit(_table_endpoint(infra.storage)).port)
                    counts[f"{kind} {scenario}"] = {
                        "graph": (after["requests"] - stats_before["requests"]) / block,
                        "token": (after["tokenRequests"] - stats_before["tokenRequests"]) / block,
                        "table": sum(v for k, v in table_requests.items() if k.endswith(":" + storage_port)) / block,
                    }
                    if kind == "app":  # the baseline makes as many table calls as the app was seen to make
                        table_calls[scenario] = max(1, round(counts[f"app {scenario}"]["table"]))
                else:
                    cpu[(kind, scenario)].append(spent / block)
    if params.get("profile"):
        profile_text = await _profile(queue_fn, callbacks, admin, block, stamp)
    await raw.close()
    await raw_tables.close()
    await bootstrap.close()
    admin.close()
    result: dict[str, Any] = {
        "rounds": rounds,
        "block": block,
        "cpuMs": {
            f"{kind} {scenario}": {
                "median": median(values) * 1000,
                "min": min(values) * 1000,
                "max": max(values) * 1000,
            }
            for (kind, scenario), values in cpu.items()
        },
        "requestsPerCallback": counts,
    }
    if profile_text:
        result["profile"] = profile_text
    return result


async def _profile(queue_fn: Any, callbacks: _Callbacks, admin: Any, block: int, stamp: int) -> str:
    """cProfile of the app on ``known`` callbacks (the steady state): where its CPU goes."""
    exts = [f"wprof-{i}-{stamp}" for i in range(block)]
    seed(admin, exts, reset=False)
    for message in callbacks.messages(exts, 0):
        await queue_fn(message, Out())
    messages = callbacks.messages(exts, 1)
    profile = Profile()
    started = time.process_time()
    profile.start()
    for message in messages:
        await queue_fn(message, Out())
    profile.stop()
    spent = time.process_time() - started
    return f"{len(messages)} known-activity callbacks, {spent * 1000 / len(messages):.1f} ms CPU each (profiled)\n" + (
        profile.text()
    )


def _table_endpoint(connection_string: str) -> str:
    parts = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
    return parts.get("TableEndpoint", "http://127.0.0.1:10002")


def run(infra: Infra, params: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_main(infra, params))


if __name__ == "__main__":
    child_main(run)
