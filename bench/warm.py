"""Warm cost per callback: CPU of the queue function per applied callback, in one warmed-up process, against a
hand-written client making the same requests.

Two scenarios, because they make different requests:

- ``new``: the first callback of an activity known by its external id: state row read (absent) and created,
  lookup GET, row keyed by the Graph id read (absent), PATCH, state row updated;
- ``known``: a later callback of an activity already applied once: state row read and updated, PATCH (the Graph
  id is remembered), state row updated.

Baselines, same process, each one ``httpx.AsyncClient`` for Graph with a token from ``azure.identity`` (cached by
the credential), making the same Graph requests as the app:

- ``raw+http`` ("raw httpx, every call", the issue's baseline, against which the target is judged): the table
  calls too are plain ``httpx`` requests on the same client, signed by hand with Shared Key (bench/tables.py):
  as many as the app was counted making (read, insert or replace with If-Match, replace after the PATCH, and a
  read of the Graph id's row when the app makes four);
- ``raw+tables`` (context): the same table calls with ``azure-data-tables``, on the transport the app gives its
  own storage clients (one shared aiohttp session, ``trust_env=False``, no cookie jar, no decompression);
- ``raw`` (context): the Graph requests only.

The baselines write rows shaped and sized like the app's (``bench.tables.state_entity``). Blocks of callbacks
alternate between the app and the baselines, round after round; each figure is the median over rounds of one
block's ``time.process_time()`` divided by its callbacks (Azurite and the sandbox run in other processes, so their
CPU is not counted). A first round, not timed, counts the requests per callback of the app and of every baseline:
Graph requests from the sandbox's own counters, table requests by wrapping aiohttp and httpx in this process. It
also checks that the baselines' table calls did what they claim: every hand-made call's status is tallied (any
but the expected 200/404 for reads, 204 for writes, raises), a request signed with a wrong key must be refused
(403), and every row the baselines wrote in that round is read back with azure-data-tables and compared.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from bench.common import (
    REGISTRATION_ID,
    Infra,
    Out,
    Profile,
    app_functions,
    child_main,
    count_outcomes,
    event_body,
    graph_id,
    http_request,
    median,
    outcomes,
    queue_message,
    seed,
    signed_headers,
)
from bench.tables import SdkTable, TableHttp, callback_by_hand, endpoint_port, storage_session, tls_context

SDK_TABLE = "benchwarmsdk"
HTTP_TABLE = "benchwarmhttp"
SCENARIOS = ("new", "known")
KINDS = ("app", "raw", "raw+tables", "raw+http")


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
    """What a hand-written worker would do for the same callback: Graph with ``httpx``, and the table calls with
    ``httpx`` too (``tables="http"``), with ``azure-data-tables`` on the app's transport (``"sdk"``), or none."""

    def __init__(self, infra: Infra, *, tables: str | None) -> None:
        import httpx
        from azure.identity.aio import ManagedIdentityCredential

        self._credential = ManagedIdentityCredential()
        self._http = httpx.AsyncClient(base_url=infra.graph_url)
        self._session: Any = None
        self._table: Any = None
        if tables == "sdk":
            self._session = storage_session(tls_context())
            self._table = SdkTable(self._session, infra.storage, SDK_TABLE)
        elif tables == "http":
            self._table = TableHttp(self._http, infra.storage, HTTP_TABLE)
        self.written: dict[str, dict[str, Any]] | None = None  # set to a dict to keep the last row written per key

    @property
    def table(self) -> Any:
        return self._table

    async def start(self) -> None:
        if self._table is not None:
            await self._table.create_table()

    async def close(self) -> None:
        await self._http.aclose()
        await self._credential.close()
        if isinstance(self._table, SdkTable):
            await self._table.close()
        if self._session is not None:
            await self._session.close()

    async def apply(self, ext: str, n: int, reads: int = 1, writes: int = 2) -> None:
        """One callback, with as many table reads and writes as the app was counted making (bench/tables.py)."""
        remembered = graph_id(ext) if self._table is None and n > 0 else None  # "known": the id kept in memory
        await callback_by_hand(
            self._http, self._credential, self._table, ext, n,
            reads=reads, writes=writes, known=n > 0, remembered=remembered, written=self.written,
        )  # fmt: skip


@contextlib.contextmanager
def _count_requests(counter: Counter[str]) -> Any:
    """Counts HTTP requests by method and host:port, made with aiohttp (the app's Azure Tables, the identity
    endpoint) or with httpx (Graph, and the hand-made table calls)."""
    import aiohttp
    import httpx

    original = aiohttp.ClientSession._request
    original_send = httpx.AsyncClient.send

    async def counting(self: Any, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
        parts = urlsplit(str(url))
        counter[f"{method.upper()} {parts.hostname}:{parts.port}"] += 1
        return await original(self, method, url, *args, **kwargs)

    async def counting_send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        counter[f"{request.method} {request.url.host}:{request.url.port}"] += 1
        return await original_send(self, request, *args, **kwargs)

    aiohttp.ClientSession._request = counting  # type: ignore[method-assign]
    httpx.AsyncClient.send = counting_send  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        aiohttp.ClientSession._request = original  # type: ignore[method-assign]
        httpx.AsyncClient.send = original_send  # type: ignore[method-assign]


async def _round_trip(raw: _Raw, storage: str, table: str) -> int:
    """Reads every row the hand-made calls wrote back with azure-data-tables (an independent reader) and
    compares it with what was written; raises on any difference."""
    from azure.data.tables.aio import TableClient

    written = raw.written or {}
    async with TableClient.from_connection_string(storage, table) as client:
        for key, row in written.items():
            stored = dict(await client.get_entity(REGISTRATION_ID, key))
            stored.pop("Timestamp", None)
            if stored != row:
                raise RuntimeError(f"row {key} read back differs from what was written:\n{stored}\n{row}")
    return len(written)


async def _main(infra: Infra, params: dict[str, Any]) -> dict[str, Any]:
    count_outcomes()  # before the first callback
    import function_app
    from connector import bootstrap

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

    clients = {"raw": _Raw(infra, tables=None), "raw+tables": _Raw(infra, tables="sdk")}
    clients["raw+http"] = _Raw(infra, tables="http")
    for client in clients.values():
        await client.start()
    signing = await clients["raw+http"].table.signing_check()

    # The "known" activities get their first callback now, untimed.
    for r in range(total_rounds):
        for message in callbacks.messages(ids[("app", "known", r)], 0):
            await queue_fn(message, Out())
        for kind in ("raw+tables", "raw+http"):
            for ext in ids[(kind, "known", r)]:
                await clients[kind].apply(ext, 0)
    app_blocks = {
        (scenario, r): callbacks.messages(ids[("app", scenario, r)], 0 if scenario == "new" else 1)
        for scenario in SCENARIOS
        for r in range(total_rounds)
    }

    cpu: dict[tuple[str, str], list[float]] = {(k, s): [] for k in KINDS for s in SCENARIOS}
    counts: dict[str, dict[str, float]] = {}
    table_calls = dict.fromkeys(SCENARIOS, (1, 2))  # (reads, writes), set from the app's counted calls in round 0
    profile_text = None
    round_trips: dict[str, int] = {}
    storage_port = f":{endpoint_port(infra.storage)}"
    for r in range(total_rounds):
        for kind in ("raw+tables", "raw+http"):  # round 0 keeps what it writes, to be read back
            clients[kind].written = {} if r == 0 else None
        for scenario in SCENARIOS:
            for kind in KINDS:
                counting = r == 0
                table_requests: Counter[str] = Counter()
                stats_before = admin.stats() if counting else None
                applied_before = outcomes().get("applied", 0)
                with _count_requests(table_requests) if counting else contextlib.nullcontext():
                    started = time.process_time()
                    if kind == "app":
                        for message in app_blocks[(scenario, r)]:
                            await queue_fn(message, Out())
                    else:
                        client = clients[kind]
                        n = 0 if scenario == "new" else 1
                        for ext in ids[(kind, scenario, r)]:
                            await client.apply(ext, n, *table_calls[scenario])
                    spent = time.process_time() - started
                if kind == "app" and outcomes().get("applied", 0) - applied_before != block:
                    raise RuntimeError(f"not every callback was applied: {outcomes()}")
                if counting:
                    after = admin.stats()
                    storage = {k.partition(" ")[0]: v for k, v in table_requests.items() if k.endswith(storage_port)}
                    reads = storage.get("GET", 0) / block
                    counts[f"{kind} {scenario}"] = {
                        "graph": (after["requests"] - stats_before["requests"]) / block,
                        "token": (after["tokenRequests"] - stats_before["tokenRequests"]) / block,
                        "table": sum(storage.values()) / block,
                        "tableReads": reads,
                        "tableWrites": sum(storage.values()) / block - reads,
                    }
                    if kind == "app":  # the baselines make as many table calls as the app was seen to make
                        app_counts = counts[f"app {scenario}"]
                        table_calls[scenario] = (max(1, round(app_counts["tableReads"])),
                                                 round(app_counts["tableWrites"]))  # fmt: skip
                else:
                    cpu[(kind, scenario)].append(spent / block)
        if r == 0:
            round_trips = {
                "raw+tables": await _round_trip(clients["raw+tables"], infra.storage, SDK_TABLE),
                "raw+http": await _round_trip(clients["raw+http"], infra.storage, HTTP_TABLE),
            }
    if params.get("profile"):
        profile_text = await _profile(queue_fn, callbacks, admin, block, stamp)
    for client in clients.values():
        await client.close()
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
        "rawTables": {
            "statuses": dict(sorted(clients["raw+http"].table.statuses.items())),
            "signingCheck": signing,
            "readBack": round_trips,
        },
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


def run(infra: Infra, params: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_main(infra, params))


if __name__ == "__main__":
    child_main(run)
