"""Wires the real parts together, once per worker process: settings, credential, Graph client, state, worker.

Clients are created lazily on first use (never at import, which must stay fast and must not need a network) and
reused by every invocation on the same event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector.settings import Settings, get_settings

if TYPE_CHECKING:
    import ssl

    import aiohttp
    from azure.storage.queue.aio import QueueClient

    from connector.adapters.activity_store import StateStore
    from connector.adapters.graph import GraphGateway
    from connector.adapters.statement_records import StatementRecords
    from connector.app.apply_update import Worker

HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"

# httpx logs every request URL at INFO; URLs carry external ids, which are the provider's and may identify people.
logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass
class _Parts:
    session: aiohttp.ClientSession | None = None
    gateway: GraphGateway | None = None
    store: StateStore | None = None
    records: StatementRecords | None = None
    queue: QueueClient | None = None
    worker: Worker | None = None
    closer: asyncio.Task[None] | None = None


_parts: dict[int, _Parts] = {}


def settings() -> Settings:
    """The checked settings; raises SettingsError naming a bad setting (called at start-up by function_app)."""
    return get_settings()


@cache
def queue_options() -> dict[str, Any]:
    """host.json's queue settings, which the worker honours too (it records the last attempt as a failure)."""
    try:
        return dict(json.loads(HOST_JSON.read_text()).get("extensions", {}).get("queues", {}))
    except (OSError, ValueError):
        return {}


def timespan_seconds(value: str) -> float:
    """host.json's [d.]hh:mm:ss[.fff] timespans in seconds (0 when unreadable: the host's default retry delay)."""
    days, _, clock = value.rpartition(".") if value.count(":") == 2 and "." in value.split(":")[0] else ("", "", value)
    try:
        hours, minutes, seconds = clock.split(":")
        return float(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return 0.0


def _current() -> _Parts:
    loop_id = id(asyncio.get_running_loop())
    parts = _parts.get(loop_id)
    if parts is None:
        parts = _parts[loop_id] = _Parts()
        parts.closer = asyncio.create_task(_close_when_the_loop_ends(), name="connector: close clients at loop end")
    return parts


async def _close_when_the_loop_ends() -> None:
    """Closes this loop's clients when the loop shuts down (asyncio.run cancels every task then, and waits): the
    Functions worker offers no shutdown hook, and a session left open is logged as unclosed at exit."""
    try:
        await asyncio.Event().wait()
    finally:
        await close()


@cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for Graph and Storage: building one (loading the CA bundle) costs tens of milliseconds."""
    import ssl

    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _storage_options() -> dict[str, Any]:
    """The storage clients' HTTP transport: one aiohttp session (one connection pool) for every client.

    `trust_env=False`: with it on, aiohttp reads ~/.netrc on every request, about a millisecond of CPU each; the
    connector's storage traffic goes to the storage account directly, never through a proxy from the environment.
    """
    import aiohttp
    from azure.core.pipeline.transport import AioHttpTransport

    parts = _current()
    if parts.session is None:
        parts.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=tls_context()),
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
        )
    return {"transport": AioHttpTransport(session=parts.session, session_owner=False)}


async def graph_gateway() -> GraphGateway:
    parts = _current()
    if parts.gateway is None:
        from connector.adapters.graph import GraphGateway
        from connector.adapters.identity import create_credential

        current = settings()
        parts.gateway = GraphGateway(current, create_credential(current), verify=tls_context())
    return parts.gateway


def state_store() -> StateStore:
    parts = _current()
    if parts.store is None:
        from connector.adapters.activity_store import TABLE_NAME, StateStore
        from connector.adapters.storage import may_create_storage, table_client

        client = table_client(settings(), TABLE_NAME, **_storage_options())
        parts.store = StateStore(client, create=may_create_storage(settings()))
    return parts.store


def statement_records() -> StatementRecords:
    parts = _current()
    if parts.records is None:
        from connector.adapters.statement_records import TABLE_NAME, StatementRecords
        from connector.adapters.storage import may_create_storage, table_client

        client = table_client(settings(), TABLE_NAME, **_storage_options())
        parts.records = StatementRecords(client, create=may_create_storage(settings()))
    return parts.records


async def enqueue(body: str, delay_seconds: int = 0) -> None:
    """Puts a message on the update queue (invisible for the delay): xAPI intake, throttled updates."""
    parts = _current()
    if parts.queue is None:
        from connector.adapters.storage import queue_client
        from connector.domain.envelope import QUEUE_NAME

        parts.queue = queue_client(settings(), QUEUE_NAME, **_storage_options())
    from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

    try:
        await parts.queue.send_message(body, visibility_timeout=delay_seconds)
    except ResourceNotFoundError:
        # A new Azurite has no queue until the webhook's output binding makes one; in Azure the template creates it.
        from connector.adapters.storage import may_create_storage

        if not may_create_storage(settings()):
            raise
        with contextlib.suppress(ResourceExistsError):
            await parts.queue.create_queue()
        await parts.queue.send_message(body, visibility_timeout=delay_seconds)


def worker() -> Worker:
    parts = _current()
    if parts.worker is None:
        from connector.app.apply_update import Worker

        options = queue_options()
        parts.worker = Worker(
            settings(),
            graph_gateway,
            state_store(),
            enqueue,
            int(options.get("maxDequeueCount", 5)),
            timespan_seconds(str(options.get("visibilityTimeout", "00:00:00"))),
        )
    return parts.worker


async def close() -> None:
    """Closes this loop's clients (tests and the local runner call it on shutdown)."""
    parts = _parts.pop(id(asyncio.get_running_loop()), None)
    if parts is None:
        return
    if parts.closer is not None and parts.closer is not asyncio.current_task():
        parts.closer.cancel()
    if parts.gateway is not None:
        await parts.gateway.close()
    if parts.store is not None:
        await parts.store.close()
    if parts.records is not None:
        await parts.records.close()
    if parts.queue is not None:
        await parts.queue.close()
    if parts.session is not None:
        await parts.session.close()


def reset() -> None:
    """Forgets settings and clients, so that tests can start over with other settings."""
    get_settings.cache_clear()
    _parts.clear()
