"""Azure Storage clients for the connector's own use (delayed re-queueing, replay, the state table).

They read the same AzureWebJobsStorage settings as the Functions host: a connection string (Azurite, or account
keys) or identity-based `AzureWebJobsStorage__*` settings with the app's managed identity.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceExistsError

from connector.adapters.identity import create_credential

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient
    from azure.storage.queue.aio import QueueClient

    from connector.settings import Settings


#: What `UseDevelopmentStorage=true` (the Functions host's name for the local emulator) stands for: Azurite's
#: well-known account on its default ports.
DEVELOPMENT_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)


def connection_string(value: str) -> str:
    """The connection string the SDKs take, `UseDevelopmentStorage=true` spelt out."""
    if value.replace(" ", "").lower().startswith("usedevelopmentstorage=true"):
        return DEVELOPMENT_STORAGE
    return value


def queue_client(settings: Settings, queue_name: str, **options: Any) -> QueueClient:
    """A queue client writing text as is, which host.json's `messageEncoding: none` expects.

    `options` go to the client (e.g. `retry_total=0` to fail fast in a check)."""
    from azure.storage.queue.aio import QueueClient

    storage = settings.require_storage()
    if storage.connection_string:
        return QueueClient.from_connection_string(connection_string(storage.connection_string), queue_name, **options)
    assert storage.queue_service_uri is not None
    credential = create_credential(settings, storage.client_id)
    return QueueClient(storage.queue_service_uri, queue_name, credential=credential, **options)


def may_create_storage(settings: Settings) -> bool:
    """Whether the connector creates its tables and queues itself: only with a connection string (Azurite, or keys).
    With identity-based storage the template creates them, and the app's roles cover just those (see TableOnDemand)."""
    return settings.require_storage().connection_string is not None


def table_client(settings: Settings, table_name: str, **options: Any) -> TableClient:
    from azure.data.tables.aio import TableClient

    storage = settings.require_storage()
    if storage.connection_string:
        return TableClient.from_connection_string(connection_string(storage.connection_string), table_name, **options)
    assert storage.table_service_uri is not None
    credential = create_credential(settings, storage.client_id)
    return TableClient(storage.table_service_uri, table_name, credential=credential, **options)


class TableOnDemand:
    """A table client whose table is created on first use where the connector may create tables (a connection
    string: Azurite, or account keys). With identity-based storage the deployment creates the tables, and the app's
    roles are scoped to them: creating a table needs a role on the whole account, so it is not attempted."""

    def __init__(self, client: TableClient, *, create: bool = True) -> None:
        self._client = client
        self._ready = not create

    async def table(self) -> TableClient:
        if not self._ready:
            with contextlib.suppress(ResourceExistsError):
                await self._client.create_table()
            self._ready = True
        return self._client

    async def close(self) -> None:
        await self._client.close()


class QueueSender:
    """Puts messages on one queue, creating it on first use where the connector may (a new Azurite has no queue
    until the webhook's output binding makes one; in Azure the template creates it)."""

    def __init__(self, client: QueueClient, *, create: bool) -> None:
        self._client = client
        self._create = create

    async def send(self, body: str, delay_seconds: int = 0) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            await self._client.send_message(body, visibility_timeout=delay_seconds)
        except ResourceNotFoundError:
            if not self._create:
                raise
            with contextlib.suppress(ResourceExistsError):
                await self._client.create_queue()
            await self._client.send_message(body, visibility_timeout=delay_seconds)

    async def close(self) -> None:
        await self._client.close()
