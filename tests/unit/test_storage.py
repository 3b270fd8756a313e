"""Which storage the connector may create itself: tables only with a connection string (the template creates them in
Azure, and the app's table roles are scoped to those tables, which does not allow creating one)."""

from __future__ import annotations

from connector.adapters.storage import TableOnDemand, may_create_storage
from connector.settings import load_settings


class _RecordingTable:
    def __init__(self) -> None:
        self.created = 0

    async def create_table(self) -> None:
        self.created += 1


async def test_with_identity_based_storage_no_table_is_created():
    settings = load_settings(
        {
            "AzureWebJobsStorage__queueServiceUri": "https://st.queue.core.windows.net/",
            "AzureWebJobsStorage__tableServiceUri": "https://st.table.core.windows.net/",
        }
    )
    client = _RecordingTable()
    table = TableOnDemand(client, create=may_create_storage(settings))  # type: ignore[arg-type]
    assert await table.table() is client
    assert client.created == 0


async def test_with_a_connection_string_the_table_is_created_once():
    settings = load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    client = _RecordingTable()
    table = TableOnDemand(client, create=may_create_storage(settings))  # type: ignore[arg-type]
    await table.table()
    await table.table()
    assert client.created == 1
