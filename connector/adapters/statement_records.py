"""Which statement ids a provider has sent, with a hash of their content, so the LRS can answer a repeated id as
xAPI requires: the same content changes nothing, other content is a 409 conflict."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceExistsError

from connector.adapters.storage import TableOnDemand

if TYPE_CHECKING:
    pass

TABLE_NAME = "xapistatements"
_QUERY_CHUNK = 15  # ids per query: keeps the filter well under the service's length limit


class StatementRecords(TableOnDemand):
    async def hashes(self, registration_id: str, ids: Iterable[str]) -> dict[str, str]:
        """The content hash of each of these ids that was sent before."""
        table = await self.table()
        wanted = list(dict.fromkeys(ids))
        found: dict[str, str] = {}
        for start in range(0, len(wanted), _QUERY_CHUNK):
            chunk = wanted[start : start + _QUERY_CHUNK]
            parameters = {"pk": registration_id.lower(), **{f"id{n}": value for n, value in enumerate(chunk)}}
            rows = " or ".join(f"RowKey eq @id{n}" for n in range(len(chunk)))
            query = f"PartitionKey eq @pk and ( {rows} )"  # spaces: the SDK reads "@id0)" as one name
            async for entity in table.query_entities(query, parameters=parameters):
                found[entity["RowKey"]] = entity["hash"]
        return found

    async def add(self, registration_id: str, statements: Iterable[tuple[str, str]]) -> None:
        """Records (id, hash) pairs; a row another request wrote meanwhile is left as it is."""
        table = await self.table()
        for statement_id, content_hash in statements:
            with contextlib.suppress(ResourceExistsError):
                await table.create_entity(
                    {"PartitionKey": registration_id.lower(), "RowKey": statement_id, "hash": content_hash}
                )
