"""Activity state in Azure Table Storage: one row per (registrationId, activity), updated with ETags.

A row remembers the activity's Graph id once resolved (one lookup per activity, not per callback), the merge of
every callback seen, what was last sent to Graph, the event ids seen recently, and the last failure. Concurrent
workers never overwrite each other: every write is conditional on the ETag read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from connector.merge import MergedState

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

TABLE_NAME = "courseactivitystate"
SEEN_LIMIT = 200


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
    status: str = "pending"
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

    def with_seen(self, event_id: str) -> ActivityState:
        seen = (*[s for s in self.seen if s != event_id], event_id)[-SEEN_LIMIT:]
        return replace(self, seen=seen)

    def public(self) -> dict[str, Any]:
        """The state as the status endpoint shows it."""
        return {
            "registrationId": self.registration_id,
            "learningCourseActivityId": self.graph_id,
            "externalcourseActivityId": self.external_id,
            "@odata.type": self.odata_type,
            "state": self.status,
            "applied": self.applied,
            "pending": None if self.up_to_date else self.merged.values,
            "lastAppliedAt": self.last_applied_at,
            "lastRequestId": self.last_request_id,
            "lastError": self.last_error,
            "firstAttemptAt": self.first_attempt_at,
            "lastAttemptAt": self.last_attempt_at,
            "nextAttemptAt": self.next_attempt_at,
            "recentEventIds": list(self.seen[-10:]),
        }


def row_key(activity_key: str) -> str:
    """Table keys may not hold / \\ # ? or control characters: percent-encode them (and %)."""
    return quote(activity_key, safe=":@!$&'()*+,;= -_.~")


class StateStore:
    def __init__(self, client: TableClient) -> None:
        self._client = client
        self._ready = False

    async def _table(self) -> TableClient:
        if not self._ready:
            with contextlib.suppress(ResourceExistsError):
                await self._client.create_table()
            self._ready = True
        return self._client

    async def close(self) -> None:
        await self._client.close()

    async def load(self, registration_id: str, activity_key: str) -> ActivityState:
        """The row, or a new (unsaved) state when there is none."""
        table = await self._table()
        try:
            entity = await table.get_entity(registration_id.lower(), row_key(activity_key))
        except ResourceNotFoundError:
            return ActivityState(registration_id, activity_key)
        return _from_entity(entity)

    async def find(self, registration_id: str, activity_id: str) -> ActivityState | None:
        """By external id, or by Graph id (as given, or as resolved for an external id)."""
        table = await self._table()
        partition = registration_id.lower()
        for key in (f"ext:{activity_id}", f"id:{activity_id}"):
            try:
                return _from_entity(await table.get_entity(partition, row_key(key)))
            except ResourceNotFoundError:
                continue
        query = "PartitionKey eq @pk and graphId eq @id"
        async for entity in table.query_entities(query, parameters={"pk": partition, "id": activity_id}):
            return _from_entity(entity)
        return None

    async def cached(self, kind: str, key: str) -> str | None:
        """A remembered lookup (a learner's or a content's Graph id); keys are hashed, as they may name people."""
        table = await self._table()
        try:
            entity = await table.get_entity(f"cache-{kind}", _hashed(key))
        except ResourceNotFoundError:
            return None
        return str(entity["value"])

    async def cache(self, kind: str, key: str, value: str) -> None:
        table = await self._table()
        await table.upsert_entity({"PartitionKey": f"cache-{kind}", "RowKey": _hashed(key), "value": value})

    async def save(self, state: ActivityState) -> ActivityState:
        """Writes the row if nobody changed it since it was read; raises StateConflict otherwise."""
        table = await self._table()
        entity = _to_entity(state)
        try:
            if state.etag is None:
                metadata = await table.create_entity(entity)
            else:
                metadata = await table.update_entity(
                    entity, mode="replace", etag=state.etag, match_condition=MatchConditions.IfNotModified
                )
        except (ResourceExistsError, ResourceModifiedError) as exc:
            raise StateConflict(str(exc)) from None
        return replace(state, etag=metadata["etag"])


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
        "status": state.status,
    }
    optional = {
        "odataType": state.odata_type,
        "graphId": state.graph_id,
        "externalId": state.external_id,
        "lastError": json.dumps(state.last_error) if state.last_error else None,
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
        key=unquote(entity["RowKey"]),
        odata_type=entity.get("odataType"),
        graph_id=entity.get("graphId"),
        external_id=entity.get("externalId"),
        merged=MergedState.from_json(json.loads(entity.get("merged") or "{}")),
        version=int(entity.get("version") or 0),
        applied=json.loads(entity.get("applied") or "{}"),
        applied_version=int(entity.get("appliedVersion") or 0),
        seen=tuple(json.loads(entity.get("seen") or "[]")),
        status=entity.get("status") or "pending",
        last_error=json.loads(entity["lastError"]) if entity.get("lastError") else None,
        first_attempt_at=entity.get("firstAttemptAt"),
        last_attempt_at=entity.get("lastAttemptAt"),
        next_attempt_at=entity.get("nextAttemptAt"),
        last_applied_at=entity.get("lastAppliedAt"),
        last_request_id=entity.get("lastRequestId"),
        etag=entity.metadata.get("etag") if hasattr(entity, "metadata") else None,
    )
