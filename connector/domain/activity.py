"""An activity as the connector knows it: the merge of its events, what Graph was last sent, the events seen and
the last failure. The row the activity store keeps, and the status endpoint's view of it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

from connector.domain.merge import MergedState

SEEN_LIMIT = 500
RECENT_LIMIT = 10


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
    deleted_at: str | None = None
    """When the connector withdrew the activity from Graph (status "deleted"), and why (the event's @removed)."""
    deletion_reason: str | None = None
    tenant_id: str | None = None
    """The customer tenant whose Graph holds the activity (its provider's tenantId); None: the managed identity's."""
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

    def in_tenant(self, tenant_id: str | None) -> ActivityState:
        """The row as its provider's tenant sees it: a Graph id remembered in another tenant (the provider's tenantId
        changed since) is looked up again in this one, never sent to it."""
        if tenant_id == self.tenant_id:
            return self
        return replace(self, tenant_id=tenant_id, graph_id=None)

    def public(self) -> dict[str, Any]:
        """The state as the status endpoint shows it."""
        return {
            "registrationId": self.registration_id,
            "tenantId": self.tenant_id,
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
            "deletedAt": self.deleted_at,
            "deletionReason": self.deletion_reason,
            "recentEventIds": list(self.recent),
        }

    def pending_values(self) -> dict[str, Any] | None:
        """The values that have not reached Graph: those of a failed update, or the merge not yet sent."""
        if self.status == "failed" and self.failed_values is not None:
            return self.failed_values
        return None if self.up_to_date else dict(self.merged.values)


def event_hash(event_id: str) -> str:
    """How a row remembers an event id it has seen."""
    return hashlib.sha256(event_id.encode("utf-8", "surrogatepass")).hexdigest()[:20]
