"""In-memory stand-ins for the use cases' ports (connector/app/ports.py), for the fast tier: every rule of applying an
update runs in microseconds, and the moments that are hard to reach through Azurite and the sandbox (another worker
writing between a read and a write, a timeout after Graph applied a PATCH, a day of throttling) are a line each."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.app.ports import StateConflict
from connector.domain.activity import ActivityState
from connector.domain.failures import GraphFailure, Kind


class FakeStore:
    """Activity rows with ETags. `before_save` runs before each write, to play another worker writing meanwhile."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], ActivityState] = {}
        self.lookups: dict[tuple[str, str], str] = {}
        self.before_save: Callable[[ActivityState], None] | None = None
        self.saves = 0
        self._etags = itertools.count(1)

    def row(self, registration_id: str, key: str) -> ActivityState | None:
        return self.rows.get((registration_id.lower(), key))

    def put(self, state: ActivityState) -> ActivityState:
        """Writes a row as another worker would, whatever it held."""
        stored = replace(state, etag=str(next(self._etags)))
        self.rows[(state.registration_id.lower(), state.key)] = stored
        return stored

    async def load(self, registration_id: str, activity_key: str) -> ActivityState:
        return self.row(registration_id, activity_key) or ActivityState(registration_id, activity_key)

    async def find(self, registration_id: str, activity_id: str) -> ActivityState | None:
        return self.row(registration_id, f"ext:{activity_id}") or await self.find_by_graph_id(
            registration_id, activity_id
        )

    async def find_by_graph_id(self, registration_id: str, graph_id: str) -> ActivityState | None:
        found = [s for (reg, _), s in self.rows.items() if reg == registration_id.lower() and s.graph_id == graph_id]
        found.sort(key=lambda state: not state.key.startswith("ext:"))
        return found[0] if found else None

    async def save(self, state: ActivityState) -> ActivityState:
        if self.before_save is not None:
            hook, self.before_save = self.before_save, None  # once: the other worker writes once
            hook(state)
        current = self.row(state.registration_id, state.key)
        if (current.etag if current else None) != state.etag:
            raise StateConflict("the row changed")
        self.saves += 1
        return self.put(state)

    async def delete(self, state: ActivityState) -> None:
        current = self.row(state.registration_id, state.key)
        if current is None or current.etag != state.etag:
            raise StateConflict("the row changed")
        del self.rows[(state.registration_id.lower(), state.key)]

    async def cached(self, kind: str, key: str) -> str | None:
        return self.lookups.get((kind, key))

    async def cache(self, kind: str, key: str, value: str) -> None:
        self.lookups[(kind, key)] = value


@dataclass
class Call:
    method: str
    registration_id: str
    target: str
    body: Mapping[str, Any] | None = None


@dataclass
class FakeGraph:
    """Graph's activities, users and contents. `fail(method, failure)` makes the next such call fail so; a PATCH that
    `applies_then_fails` is applied and then reported as failed (a timeout after Graph did the work)."""

    activities: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: list[dict[str, Any]] = field(default_factory=list)
    contents: list[dict[str, Any]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    failures: dict[str, list[GraphFailure]] = field(default_factory=dict)
    applies_then_fails: list[GraphFailure] = field(default_factory=list)
    before_patch: Callable[[], None] | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def add(self, registration_id: str, odata_type: str, external_id: str, **values: Any) -> dict[str, Any]:
        graph_id = f"graph-{next(self._ids)}"
        activity = {
            "id": graph_id,
            "@odata.type": odata_type,
            "learningProviderId": registration_id,
            "externalcourseActivityId": external_id,
            **values,
        }
        self.activities[graph_id] = activity
        return activity

    def fail(self, method: str, failure: GraphFailure, times: int = 1) -> None:
        self.failures.setdefault(method, []).extend([failure] * times)

    def patches(self) -> list[Call]:
        return [c for c in self.calls if c.method == "PATCH"]

    def _called(self, method: str, registration_id: str, target: str, body: Mapping[str, Any] | None = None) -> None:
        self.calls.append(Call(method, registration_id, target, body))
        pending = self.failures.get(method)
        if pending:
            raise pending.pop(0)

    def _owned(self, registration_id: str, graph_id: str) -> dict[str, Any]:
        activity = self.activities.get(graph_id)
        if activity is None or activity["learningProviderId"].lower() != registration_id.lower():
            raise GraphFailure(404, "notFound", "The assignment ID requested doesn't exist.")
        return activity

    async def find_activity(self, registration_id: str, external_id: str) -> dict[str, Any]:
        self._called("GET", registration_id, f"ext:{external_id}")
        for activity in self.activities.values():
            mine = activity["learningProviderId"].lower() == registration_id.lower()
            if mine and activity["externalcourseActivityId"] == external_id:
                return dict(activity)
        raise GraphFailure(404, "notFound", "The assignment ID requested doesn't exist.")

    async def get_activity(self, registration_id: str, activity_id: str) -> dict[str, Any]:
        self._called("GET", registration_id, activity_id)
        return dict(self._owned(registration_id, activity_id))

    async def update_activity(
        self, registration_id: str, activity_id: str, odata_type: str, changes: Mapping[str, Any]
    ) -> str | None:
        self._called("PATCH", registration_id, activity_id, changes)
        if self.before_patch is not None:
            hook, self.before_patch = self.before_patch, None
            hook()
        self._owned(registration_id, activity_id).update(changes)
        if self.applies_then_fails:
            raise self.applies_then_fails.pop(0)
        return f"request-{len(self.calls)}"

    async def create_activity(
        self, registration_id: str, odata_type: str, identity: Mapping[str, str], changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        self._called("POST", registration_id, identity["externalcourseActivityId"], {**identity, **changes})
        external = identity["externalcourseActivityId"]
        if any(a["externalcourseActivityId"] == external for a in self.activities.values()):
            raise GraphFailure(409, "conflict", "An activity with this external id exists.")
        fields = {k: v for k, v in identity.items() if k != "externalcourseActivityId"}
        return dict(self.add(registration_id, odata_type, external, **fields, **changes))

    async def delete_activity(self, registration_id: str, activity_id: str) -> str | None:
        self._called("DELETE", registration_id, activity_id)
        self._owned(registration_id, activity_id)
        del self.activities[activity_id]
        return f"request-{len(self.calls)}"

    def by_external(self, external_id: str) -> list[dict[str, Any]]:
        return [a for a in self.activities.values() if a["externalcourseActivityId"] == external_id]

    async def find_users(self, odata_filter: str, *, advanced: bool = False) -> list[dict[str, Any]]:
        self._called("GET", "", f"users?$filter={odata_filter}")
        return [u for u in self.users if any(f"'{v}'" in odata_filter for v in u.values() if isinstance(v, str))]

    async def find_content(self, registration_id: str, external_id: str) -> dict[str, Any]:
        self._called("GET", registration_id, f"content:{external_id}")
        for content in self.contents:
            if content["externalId"] == external_id:
                return dict(content)
        raise GraphFailure(404, "notFound", "The learning content requested doesn't exist.")


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


THROTTLED = GraphFailure(429, "tooManyRequests", "Retry after 2 minutes", retry_after=120)
UNSURE = GraphFailure(None, "timeout", "Graph did not answer in time", kind=Kind.UNSURE)
FORBIDDEN = GraphFailure(403, "Forbidden", "Your account doesn't have access to this report or data.")
