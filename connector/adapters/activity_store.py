"""Activity state in Azure Table Storage: one row per (registrationId, activity), updated with ETags.

A row remembers the activity's Graph id once resolved (one lookup per activity, not per callback), the merge of
every callback seen, what was last sent to Graph, the event ids seen recently, and the last failure. Concurrent
workers never overwrite each other: every write is conditional on the ETag read.

Row keys and remembered event ids are hashes: the service limits a key to 1 KiB and a property to 64 KiB, and
provider ids have no such limit. The readable activity key is kept as a property.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from connector.adapters.storage import TableOnDemand
from connector.app.ports import StateConflict
from connector.domain.activity import ActivityState
from connector.domain.envelope import parse_instant, utc_iso
from connector.domain.merge import MergedState

TABLE_NAME = "courseactivitystate"


def row_key(activity_key: str) -> str:
    return hashlib.sha256(activity_key.encode("utf-8", "surrogatepass")).hexdigest()


class StateStore(TableOnDemand):
    async def load(self, registration_id: str, activity_key: str) -> ActivityState:
        """The row, or a new (unsaved) state when there is none."""
        table = await self.table()
        try:
            entity = await table.get_entity(registration_id.lower(), row_key(activity_key))
        except ResourceNotFoundError:
            return ActivityState(registration_id, activity_key)
        return _from_entity(entity)

    async def find(self, registration_id: str, activity_id: str) -> ActivityState | None:
        """By external id, or by Graph id (as given, or as resolved for an external id)."""
        table = await self.table()
        try:
            return _from_entity(await table.get_entity(registration_id.lower(), row_key(f"ext:{activity_id}")))
        except ResourceNotFoundError:
            return await self.find_by_graph_id(registration_id, activity_id)

    async def find_by_graph_id(self, registration_id: str, graph_id: str) -> ActivityState | None:
        """The row of the activity with this Graph id: the one keyed by its external id when there is one."""
        table = await self.table()
        query = "PartitionKey eq @pk and graphId eq @id"
        found = [
            _from_entity(entity)
            async for entity in table.query_entities(query, parameters={"pk": registration_id.lower(), "id": graph_id})
        ]
        found.sort(key=lambda state: not state.key.startswith("ext:"))
        return found[0] if found else None

    async def delete(self, state: ActivityState) -> None:
        """Removes a row nobody changed since it was read; raises StateConflict otherwise."""
        table = await self.table()
        try:
            await table.delete_entity(
                state.registration_id.lower(),
                row_key(state.key),
                etag=state.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise StateConflict(str(exc)) from None

    async def cached(self, kind: str, key: str) -> str | None:
        """A remembered lookup (a learner's or a content's Graph id); keys are hashed, as they may name people."""
        table = await self.table()
        try:
            entity = await table.get_entity(f"cache-{kind}", _hashed(key))
        except ResourceNotFoundError:
            return None
        return str(entity["value"])

    async def cache(self, kind: str, key: str, value: str) -> None:
        table = await self.table()
        await table.upsert_entity({"PartitionKey": f"cache-{kind}", "RowKey": _hashed(key), "value": value})

    async def not_before(self, registration_id: str) -> datetime | None:
        """The fleet's hold of the registration's Graph requests (PaceStore), kept in the same table."""
        table = await self.table()
        try:
            entity = await table.get_entity("pace", row_key(registration_id.lower()))
        except ResourceNotFoundError:
            return None
        return parse_instant(str(entity["notBefore"]))

    async def hold(self, registration_id: str, until: datetime) -> None:
        current = await self.not_before(registration_id)
        if current is not None and current >= until:
            return
        table = await self.table()
        await table.upsert_entity(
            {"PartitionKey": "pace", "RowKey": row_key(registration_id.lower()), "notBefore": utc_iso(until)}
        )

    async def save(self, state: ActivityState) -> ActivityState:
        """Writes the row if nobody changed it since it was read; raises StateConflict otherwise."""
        table = await self.table()
        entity = _to_entity(state)
        try:
            if state.etag is None:
                metadata = await table.create_entity(entity)
            else:
                metadata = await table.update_entity(
                    entity, mode="replace", etag=state.etag, match_condition=MatchConditions.IfNotModified
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as exc:
            raise StateConflict(str(exc)) from None  # NotFound: the row was merged into another and removed
        return replace(state, etag=metadata["etag"])

    async def list_activities(self, registration_id: str, state: str | None = None) -> AsyncIterator[ActivityState]:
        """Every activity row of a provider (in one `state` if given), page by page as the service returns them:
        constant memory however many there are. Without the seen event ids, which only the worker needs."""
        table = await self.table()
        query, parameters = "PartitionKey eq @pk", {"pk": registration_id.lower()}
        if state:
            query, parameters = f"{query} and status eq @state", {**parameters, "state": state}
        entities = table.query_entities(query, parameters=parameters, select=_LISTED, results_per_page=1000)
        async for entity in entities:
            if entity.get("activityKey"):
                yield _from_entity(entity)

    async def activities_page(
        self, registration_id: str, continuation: str | None, size: int
    ) -> tuple[list[ActivityState], str | None]:
        """One page of a provider's activity rows (without the seen event ids), and where the next page starts."""
        table = await self.table()
        query, parameters = "PartitionKey eq @pk", {"pk": registration_id.lower()}
        entities = table.query_entities(query, parameters=parameters, select=_LISTED, results_per_page=size)
        pages = entities.by_page(continuation_token=json.loads(continuation) if continuation else None)
        try:
            page = await pages.__anext__()
        except StopAsyncIteration:
            return [], None
        rows = [_from_entity(entity) async for entity in page if entity.get("activityKey")]
        token = pages.continuation_token  # type: ignore[attr-defined]
        return rows, json.dumps(token) if token else None


_LISTED = [
    "PartitionKey", "RowKey", "registrationId", "activityKey", "merged", "version", "applied", "appliedVersion",
    "recent", "unsure", "status", "odataType", "graphId", "externalId", "lastError", "failedValues",
    "firstAttemptAt", "lastAttemptAt", "nextAttemptAt", "lastAppliedAt", "lastRequestId", "deletedAt", "deletionReason",
    "tenantId",
]  # fmt: skip


def _hashed(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _to_entity(state: ActivityState) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": state.registration_id.lower(),
        "RowKey": row_key(state.key),
        "registrationId": state.registration_id,
        "merged": json.dumps(state.merged.to_json()),
        "version": state.version,
        "applied": json.dumps(state.applied),
        "appliedVersion": state.applied_version,
        "seen": json.dumps(list(state.seen)),
        "recent": json.dumps(list(state.recent)),
        "unsure": state.unsure,
        "status": state.status,
        "activityKey": state.key,
    }
    optional = {
        "odataType": state.odata_type,
        "graphId": state.graph_id,
        "externalId": state.external_id,
        "lastError": json.dumps(state.last_error) if state.last_error else None,
        "failedValues": json.dumps(state.failed_values) if state.failed_values is not None else None,
        "firstAttemptAt": state.first_attempt_at,
        "lastAttemptAt": state.last_attempt_at,
        "nextAttemptAt": state.next_attempt_at,
        "lastAppliedAt": state.last_applied_at,
        "lastRequestId": state.last_request_id,
        "deletedAt": state.deleted_at,
        "deletionReason": state.deletion_reason,
        "tenantId": state.tenant_id,
    }
    entity.update({k: v for k, v in optional.items() if v is not None})
    return entity


def _from_entity(entity: Any) -> ActivityState:
    return ActivityState(
        registration_id=entity.get("registrationId") or entity["PartitionKey"],
        key=entity["activityKey"],
        odata_type=entity.get("odataType"),
        graph_id=entity.get("graphId"),
        external_id=entity.get("externalId"),
        merged=MergedState.from_json(json.loads(entity.get("merged") or "{}")),
        version=int(entity.get("version") or 0),
        applied=json.loads(entity.get("applied") or "{}"),
        applied_version=int(entity.get("appliedVersion") or 0),
        seen=tuple(json.loads(entity.get("seen") or "[]")),
        recent=tuple(json.loads(entity.get("recent") or "[]")),
        unsure=bool(entity.get("unsure")),
        status=entity.get("status") or "pending",
        last_error=json.loads(entity["lastError"]) if entity.get("lastError") else None,
        failed_values=json.loads(entity["failedValues"]) if entity.get("failedValues") else None,
        first_attempt_at=entity.get("firstAttemptAt"),
        last_attempt_at=entity.get("lastAttemptAt"),
        next_attempt_at=entity.get("nextAttemptAt"),
        last_applied_at=entity.get("lastAppliedAt"),
        last_request_id=entity.get("lastRequestId"),
        deleted_at=entity.get("deletedAt"),
        deletion_reason=entity.get("deletionReason"),
        tenant_id=entity.get("tenantId"),
        etag=entity.metadata.get("etag") if hasattr(entity, "metadata") else None,
    )
