"""What the use cases need from the outside world, as small interfaces. The adapters implement them for Azure and
Microsoft Graph; tests implement them in memory (tests/unit/fakes.py) to run every rule in milliseconds.

Graph answers in domain terms: a call returns what Graph said, or raises connector.domain.failures.GraphFailure with
its Kind (notFound, conflict, throttled, transient, unsure, permanent), never an HTTP library's exception.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from connector.domain.activity import ActivityState


class StateConflict(Exception):
    """Another worker changed the row since it was read: read it again and redo the change."""


class ActivityStore(Protocol):
    """The activities' rows, written only if unchanged since read (an ETag): concurrent workers never overwrite."""

    async def load(self, registration_id: str, activity_key: str) -> ActivityState:
        """The row, or a new (unsaved) state when there is none."""

    async def find(self, registration_id: str, activity_id: str) -> ActivityState | None:
        """By external id, or by Graph id (as given, or as resolved for an external id)."""

    async def find_by_graph_id(self, registration_id: str, graph_id: str) -> ActivityState | None:
        """The row of the activity with this Graph id: the one keyed by its external id when there is one."""

    async def save(self, state: ActivityState) -> ActivityState:
        """Writes the row if nobody changed it since it was read (raises StateConflict otherwise); the new ETag."""

    async def delete(self, state: ActivityState) -> None:
        """Removes a row nobody changed since it was read; raises StateConflict otherwise."""


class LookupCache(Protocol):
    """Remembered lookups (a learner's or a content's Graph id), so that each is asked of Graph once."""

    async def cached(self, kind: str, key: str) -> str | None: ...

    async def cache(self, kind: str, key: str, value: str) -> None: ...


class PaceStore(Protocol):
    """The fleet's shared hold per registration: after a 429, no instance sends that registration's requests until
    it is over (connector/app/pacing.py)."""

    async def not_before(self, registration_id: str) -> datetime | None: ...

    async def hold(self, registration_id: str, until: datetime) -> None:
        """Holds the registration's requests until then, unless a longer hold is kept already."""


class StatementRecords(Protocol):
    """The xAPI statement ids a provider has sent, with a hash of their content (xAPI's same id, other content: 409)."""

    async def hashes(self, registration_id: str, ids: Iterable[str]) -> dict[str, str]:
        """The content hash of each of these ids that was sent before."""

    async def add(self, registration_id: str, statements: Iterable[tuple[str, str]]) -> None:
        """Records (id, hash) pairs; a row another request wrote meanwhile is left as it is."""


class Graph(Protocol):
    """Microsoft Graph's learning course activities, users and contents, for one tenant."""

    async def find_activity(self, registration_id: str, external_id: str) -> dict[str, Any]: ...

    async def get_activity(self, registration_id: str, activity_id: str) -> dict[str, Any]: ...

    async def update_activity(
        self, registration_id: str, activity_id: str, odata_type: str, changes: Mapping[str, Any]
    ) -> str | None:
        """PATCHes the changes; returns Graph's request id."""

    async def create_activity(
        self, registration_id: str, odata_type: str, identity: Mapping[str, str], changes: Mapping[str, Any]
    ) -> dict[str, Any]: ...

    async def delete_activity(self, registration_id: str, activity_id: str) -> str | None:
        """DELETEs the activity; returns Graph's request id."""

    async def find_users(self, odata_filter: str, *, advanced: bool = False) -> list[dict[str, Any]]: ...

    async def find_content(self, registration_id: str, external_id: str) -> dict[str, Any]: ...


#: Puts a message back on the update queue, invisible for the given seconds.
Requeue = Callable[[str, int], Awaitable[None]]
#: The current time (UTC); tests move it.
Clock = Callable[[], datetime]
