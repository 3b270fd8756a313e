"""The composition root: builds the real parts (credential, Graph client, tables, queue, the worker) and hands them
to the use cases. Tests build the same use cases with in-memory fakes instead (tests/unit/fakes.py).

Parts are made lazily on first use (import stays fast and needs no network) and shared by every invocation on one
event loop. They belong to the settings they were made for: a process has one set of app settings; a test that
changes the environment gets parts of its own, so there is nothing a test must reset.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector.settings import Settings, get_settings

if TYPE_CHECKING:
    import ssl

    import aiohttp

    from connector.adapters.activity_store import StateStore
    from connector.adapters.graph import GraphGateway
    from connector.adapters.jwks import KeySetClient
    from connector.adapters.statement_records import StatementRecords
    from connector.adapters.storage import QueueSender
    from connector.adapters.tenants import Assertions
    from connector.app.apply_update import Worker
    from connector.app.pacing import PacedGraph, Pacer
    from connector.app.platform_intake import Queues
    from connector.app.reconcile import Reconciler

HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"

# httpx logs every request URL at INFO; URLs carry external ids, which are the provider's and may identify people.
logging.getLogger("httpx").setLevel(logging.WARNING)


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


@cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for Graph and Storage: building one (loading the CA bundle) costs tens of milliseconds."""
    import ssl

    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Parts:
    """The real parts for one set of settings on one event loop, each made on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._gateway: GraphGateway | None = None
        self._tenant_gateways: dict[str, GraphGateway] = {}
        self._assertions: Assertions | None = None
        self._store: StateStore | None = None
        self._records: StatementRecords | None = None
        self._queue: QueueSender | None = None
        self._poison: QueueSender | None = None
        self._key_sets: KeySetClient | None = None
        self._worker: Worker | None = None
        self._pacer: Pacer | None = None
        self._reconciler: Reconciler | None = None

    def _storage_options(self) -> dict[str, Any]:
        """The storage clients' HTTP transport: one aiohttp session (one connection pool) for every client."""
        from azure.core.pipeline.transport import AioHttpTransport

        return {"transport": AioHttpTransport(session=self.http_session(), session_owner=False)}

    def http_session(self) -> aiohttp.ClientSession:
        """The one aiohttp session (connection pool) of the storage clients and the key sets.

        `trust_env=False`: with it on, aiohttp reads ~/.netrc on every request, about a millisecond of CPU each; the
        connector's storage traffic goes to the storage account directly, never through a proxy from the environment.
        """
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=tls_context()),
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            )
        return self._session

    async def graph(self, registration_id: str | None = None) -> GraphGateway:
        """The Graph client of the provider's tenant, made on first use and kept: the managed identity's own tenant
        (one client per process: its connection pool and token cache serve every callback), or for a provider with
        a tenantId that tenant's, with a credential, token cache and connection pool of its own."""
        provider = self.settings.provider(registration_id) if registration_id else None
        if provider is not None and provider.tenant_id is not None:
            return self._tenant_gateway(provider.tenant_id)
        if self._gateway is None:
            from connector.adapters.graph import GraphGateway
            from connector.adapters.identity import create_credential

            self._gateway = GraphGateway(self.settings, create_credential(self.settings), verify=tls_context())
        return self._gateway

    async def paced_graph(self, registration_id: str) -> PacedGraph:
        """The Graph client for the registration, every request paced (a 429 holds the fleet: app/pacing.py), per
        registration and tenant."""
        from connector.app.pacing import PacedGraph, Pacer
        from connector.app.tenancy import pace_key

        if self._pacer is None:
            self._pacer = Pacer(self.store, _utc_now)
        return PacedGraph(await self.graph(registration_id), self._pacer, pace_key(self.settings, registration_id))

    def _tenant_gateway(self, tenant_id: str) -> GraphGateway:
        """Keyed by the tenant alone: the settings tie each registration to one tenant, and the token, the
        connection pool and Graph's throttling are the tenant's (per app and tenant)."""
        gateway = self._tenant_gateways.get(tenant_id)
        if gateway is None:
            from connector.adapters.identity import create_credential
            from connector.adapters.tenants import Assertions, tenant_gateway

            if self._assertions is None:
                self._assertions = Assertions(create_credential(self.settings))
            gateway = tenant_gateway(self.settings, tenant_id, self._assertions, tls_context())
            self._tenant_gateways[tenant_id] = gateway
        return gateway

    @property
    def store(self) -> StateStore:
        if self._store is None:
            from connector.adapters.activity_store import TABLE_NAME, StateStore
            from connector.adapters.storage import may_create_storage, table_client

            client = table_client(self.settings, TABLE_NAME, **self._storage_options())
            self._store = StateStore(client, create=may_create_storage(self.settings))
        return self._store

    @property
    def records(self) -> StatementRecords:
        if self._records is None:
            from connector.adapters.statement_records import TABLE_NAME, StatementRecords
            from connector.adapters.storage import may_create_storage, table_client

            client = table_client(self.settings, TABLE_NAME, **self._storage_options())
            self._records = StatementRecords(client, create=may_create_storage(self.settings))
        return self._records

    async def enqueue(self, body: str, delay_seconds: int = 0) -> None:
        """Puts a message on the update queue (invisible for the delay): xAPI intake, throttled updates."""
        if self._queue is None:
            from connector.adapters.storage import QueueSender, may_create_storage, queue_client
            from connector.domain.envelope import QUEUE_NAME

            client = queue_client(self.settings, QUEUE_NAME, **self._storage_options())
            self._queue = QueueSender(client, create=may_create_storage(self.settings))
        await self._queue.send(body, delay_seconds)

    async def dead_letter(self, body: str) -> None:
        """Puts a message on the poison queue: a platform's event that cannot be applied, with its reason."""
        if self._poison is None:
            from connector.adapters.storage import QueueSender, may_create_storage, queue_client
            from connector.domain.envelope import POISON_QUEUE_NAME

            client = queue_client(self.settings, POISON_QUEUE_NAME, **self._storage_options())
            self._poison = QueueSender(client, create=may_create_storage(self.settings))
        await self._poison.send(body)

    @property
    def key_sets(self) -> KeySetClient:
        """Published signing keys (Canvas's signed Live Events), cached for the process."""
        if self._key_sets is None:
            from connector.adapters.jwks import KeySetClient

            self._key_sets = KeySetClient(self.http_session)
        return self._key_sets

    @property
    def worker(self) -> Worker:
        if self._worker is None:
            from connector.app.apply_update import Worker

            options = queue_options()
            self._worker = Worker(
                self.settings,
                self.paced_graph,
                self.store,
                self.store,
                self.enqueue,
                max_dequeue_count=int(options.get("maxDequeueCount", 5)),
                retry_delay_seconds=timespan_seconds(str(options.get("visibilityTimeout", "00:00:00"))),
                reconciler=self.reconciler,
            )
        return self._worker

    @property
    def reconciler(self) -> Reconciler:
        if self._reconciler is None:
            from connector.app.reconcile import Reconciler

            self._reconciler = Reconciler(self.settings, self.store, self.paced_graph, self.enqueue, _utc_now)
        return self._reconciler

    async def close(self) -> None:
        parts = (self._gateway, *self._tenant_gateways.values(), self._assertions, self._store, self._records)
        for part in (*parts, self._queue, self._poison, self._session):
            if part is not None:
                await part.close()


_Key = tuple[int, int]  # the event loop's and the settings' identities
_parts: dict[_Key, Parts] = {}
_closers: dict[_Key, asyncio.Task[None]] = {}


def current() -> Parts:
    """The parts for the running event loop and the current settings."""
    loop, current_settings = asyncio.get_running_loop(), settings()
    key = (id(loop), id(current_settings))
    parts = _parts.get(key)
    if parts is None:
        parts = _parts[key] = Parts(current_settings)
        _closers[key] = loop.create_task(_close_when_the_loop_ends(key), name="connector: close clients at loop end")
    return parts


async def _close_when_the_loop_ends(key: _Key) -> None:
    """Closes the parts when their loop shuts down (asyncio.run cancels every task then, and waits): the Functions
    worker offers no shutdown hook, and a session left open is logged as unclosed at exit."""
    try:
        await asyncio.Event().wait()
    finally:
        _closers.pop(key, None)
        parts = _parts.pop(key, None)
        if parts is not None:
            await parts.close()


def state_store() -> StateStore:
    return current().store


def statement_records() -> StatementRecords:
    return current().records


async def enqueue(body: str, delay_seconds: int = 0) -> None:
    await current().enqueue(body, delay_seconds)


async def dead_letter(body: str) -> None:
    await current().dead_letter(body)


def key_sets() -> KeySetClient:
    return current().key_sets


def platform_queues() -> Queues:
    """Where the platforms' endpoints put events: the update queue, and the poison queue for what cannot apply."""
    from connector.app.platform_intake import Queues

    return Queues(updates=enqueue, poison=dead_letter)


async def graph_gateway() -> GraphGateway:
    return await current().graph()


def worker() -> Worker:
    return current().worker


async def start_reconciliation() -> None:
    """The timer's run: one slice message per provider, for the activities touched in the configured days."""
    parts = current()
    await parts.reconciler.start(since_days=parts.settings.reconcile_since_days)


async def close() -> None:
    """Closes every part of the running loop now (tests, and anything that ends a loop it keeps running)."""
    loop_id = id(asyncio.get_running_loop())
    for key in [key for key in _parts if key[0] == loop_id]:
        closer = _closers.pop(key, None)
        if closer is not None and closer is not asyncio.current_task():
            closer.cancel()
        await _parts.pop(key).close()
