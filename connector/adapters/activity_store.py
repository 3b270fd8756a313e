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
from dataclasses import dataclass, field, replace
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from connector.adapters.storage import TableOnDemand
from connector.domain.merge import MergedState

TABLE_NAME = "courseactivitystate"
SEEN_LIMIT = 500
RECENT_LIMIT = 10


class StateConflict(Exception):
    """Another worker changed the row since it was read: read it again and redo the change."""


@dataclass(frozen=True)
class ActivityState:
    registration_id: str
    key: str
    odata_type: str | None = None
    graph_id: str | None = None
    external_id: str | None = None
    merged: MergedState = field(default_factory=MergedState)
    version: int = 0
    applied: dict[str, Any] = field(default_factory=dict)
    applied_version: int = 0
    seen: tuple[str, ...] = ()
    """The event ids folded in (the last SEEN_LIMIT), hashed, each with a hash of its content after a colon: a
    repeat is recognised without a Graph call, and an id reused for other content is told from a retry."""
    recent: tuple[str, ...] = ()
    """The last few event ids as given, for people reading the status."""
    unsure: bool = False
    """An attempt failed after its PATCH may have reached Graph (perhaps late, after a newer one): until Graph is read
    back and agrees, a repeat is checked against Graph instead of being taken for a duplicate."""
    status: str = "pending"
    failed_values: dict[str, Any] | None = None
    """What the newest update would have sent when it failed for good (not merged: replay brings it back)."""
    last_error: dict[str, Any] | None = None
    first_attempt_at: str | None = None
    last_attempt_at: str | None = None
    next_attempt_at: str | None = None
    last_applied_at: str | None = None
    last_request_id: str | None = None
    etag: str | None = None

    @property
    def up_to_date(self) -> bool:
        """Graph has been sent everything merged so far."""
        return self.applied_version >= self.version

    def has_seen(self, event_id: str) -> bool:
        return self.seen_content(event_id) is not None

    def seen_content(self, event_id: str) -> str | None:
        """The content hash an event id was folded in with ("" when it was kept without one); None if unseen."""
        hashed = event_hash(event_id)
        for entry in self.seen:
            key, _, content = entry.partition(":")
            if key == hashed:
                return content
        return None

    def with_seen(self, event_id: str, content: str = "") -> ActivityState:
        hashed = event_hash(event_id)
        entry = f"{hashed}:{content}" if content else hashed
        seen = (*[s for s in self.seen if s.partition(":")[0] != hashed], entry)[-SEEN_LIMIT:]
        recent = (*[r for r in self.recent if r != event_id], event_id[:256])[-RECENT_LIMIT:]
        return replace(self, seen=seen, recent=recent)

    def with_seen_of(self, other: ActivityState) -> ActivityState:
        """Also remembers the events another row of the same activity had seen."""
        entries = {entry.partition(":")[0]: entry for entry in (*other.seen, *self.seen)}
        seen = tuple(entries.values())[-SEEN_LIMIT:]
        recent = tuple(dict.fromkeys((*other.recent, *self.recent)))[-RECENT_LIMIT:]
        return replace(self, seen=seen, recent=recent)

    def public(self) -> dict[str, Any]:
        """The state as the status endpoint shows it."""
        return {
            "registrationId": self.registration_id,
            "learningCourseActivityId": self.graph_id,
            "externalcourseActivityId": self.external_id,
            "@odata.type": self.odata_type,
            "state": self.status,
            "applied": self.applied,
            "pending": self.pending_values(),
            "lastAppliedAt": self.last_applied_at,
            "lastRequestId": self.last_request_id,
            "lastError": self.last_error,
            "firstAttemptAt": self.first_attempt_at,
            "lastAttemptAt": self.last_attempt_at,
            "nextAttemptAt": self.next_attempt_at,
            "recentEventIds": list(self.recent),
        }


    def pending_values(self) -> dict[str, Any] | None:
        """The values that have not reached Graph: those of a failed update, or the merge not yet sent."""
        if self.status == "failed" and self.failed_values is not None:
            return self.failed_values
        return None if self.up_to_date else dict(self.merged.values)


def row_key(activity_key: str) -> str:
    return hashlib.sha256(activity_key.encode("utf-8", "surrogatepass")).hexdigest()


def event_hash(event_id: str) -> str:
    """How a row remembers an event id it has seen."""
    return hashlib.sha256(event_id.encode("utf-8", "surrogatepass")).hexdigest()[:20]


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


_LISTED = [
    "PartitionKey", "RowKey", "registrationId", "activityKey", "merged", "version", "applied", "appliedVersion",
    "recent", "unsure", "status", "odataType", "graphId", "externalId", "lastError", "failedValues",
    "firstAttemptAt", "lastAttemptAt", "nextAttemptAt", "lastAppliedAt", "lastRequestId",
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
        etag=entity.metadata.get("etag") if hasattr(entity, "metadata") else None,
    )
