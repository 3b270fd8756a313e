"""Re-queues dead letters once their cause is fixed: all of them, one provider's, or one activity's."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError, ResourceNotFoundError

from connector.adapters.storage import queue_client
from connector.domain.envelope import POISON_QUEUE_NAME, QUEUE_NAME, MessageError, decode_body, is_envelope, utc_iso
from connector.settings import Settings

if TYPE_CHECKING:
    from connector.adapters.activity_store import StateStore
    from connector.domain.activity import ActivityState

_ID_FIELDS = ("learningCourseActivityId", "externalcourseActivityId", "externalCourseActivityId")


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter as the dry run lists it."""

    registration_id: str
    activity: str
    reason: str
    first_attempt: str
    last_attempt: str

    def __str__(self) -> str:
        return (
            f"{self.registration_id} {self.activity}: {self.reason}; "
            f"first attempt {self.first_attempt}, last attempt {self.last_attempt}"
        )


@dataclass
class ReplayResult:
    moved: int = 0
    kept: int = 0
    unreadable: int = 0
    moved_ids: list[str] = field(default_factory=list)
    listed: list[DeadLetter] = field(default_factory=list)
    """What the dry run would move."""
    state_problem: str | None = None
    """Why the activity state could not be read (then --activity matched the id as given only)."""


def _identity(data: Any) -> tuple[str | None, list[str]]:
    """The registrationId and activity ids a poison message is about."""
    if not isinstance(data, dict):
        return None, []
    event = data.get("event") if is_envelope(data) else data
    event = event if isinstance(event, dict) else {}
    ids = list(dict.fromkeys(str(event[name]) for name in _ID_FIELDS if event.get(name)))
    registration_id = data.get("registrationId")
    return (registration_id if isinstance(registration_id, str) else None), ids


def _fresh(data: dict[str, Any]) -> str:
    """The message as it was first queued: no dead-letter reason, attempts counted from zero."""
    for name in ("deadLetter", "attempt", "firstAttemptAt"):
        data.pop(name, None)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


class _ActivityRows:
    """The activity state, read on demand and once per activity: it knows both ids of an activity (a dead letter
    names only the one its event gave) and the last failure the worker recorded. Best effort: an operator may have
    queue access only."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._store: StateStore | None = None
        self._found: dict[tuple[str, str], ActivityState | None] = {}
        self.problem: str | None = None

    async def find(self, registration_id: str | None, activity_id: str) -> ActivityState | None:
        if registration_id is None or self.problem is not None:
            return None
        key = (registration_id.lower(), activity_id)
        if key not in self._found:
            self._found[key] = await self._read(registration_id, activity_id)
        return self._found[key]

    async def ids(self, registration_id: str | None, activity_id: str) -> set[str]:
        """The ids the activity goes by: the one given, and the other one its state row remembers."""
        row = await self.find(registration_id, activity_id)
        return {activity_id, *(i for i in (row.graph_id, row.external_id) if i)} if row else {activity_id}

    async def _read(self, registration_id: str, activity_id: str) -> ActivityState | None:
        from connector.adapters.activity_store import TABLE_NAME, StateStore
        from connector.adapters.storage import table_client
        from connector.ops.check import first_line

        if self._store is None:
            self._store = StateStore(table_client(self._settings, TABLE_NAME, retry_total=0))
        try:
            return await self._store.find(registration_id, activity_id)
        except AzureError as exc:
            self.problem = first_line(exc)
            return None

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()


async def replay(
    settings: Settings,
    *,
    registration_id: str | None = None,
    activity_id: str | None = None,
    dry_run: bool = False,
) -> ReplayResult:
    result = ReplayResult()
    held: list[tuple[str, str]] = []
    async with AsyncExitStack() as stack:
        poison = await stack.enter_async_context(queue_client(settings, POISON_QUEUE_NAME, retry_total=0))
        updates = await stack.enter_async_context(queue_client(settings, QUEUE_NAME, retry_total=0))
        rows = _ActivityRows(settings)
        stack.push_async_callback(rows.close)
        while True:
            try:
                batch = [
                    m
                    async for m in poison.receive_messages(
                        messages_per_page=32, max_messages=32, visibility_timeout=120
                    )
                ]
            except ResourceNotFoundError:  # no poison queue: nothing was ever dead-lettered
                break
            if not batch:
                break
            for message in batch:
                try:
                    data = decode_body(message.content or "")
                except MessageError:
                    data = None
                if not isinstance(data, dict) or "raw" in data:
                    result.unreadable += 1
                    held.append((message.id, message.pop_receipt or ""))
                    continue
                registration, ids = _identity(data)
                wanted = registration_id is None or (registration or "").lower() == registration_id.lower()
                if wanted and activity_id is not None:
                    wanted = not (await rows.ids(registration, activity_id)).isdisjoint(ids)
                if not wanted:
                    result.kept += 1
                    held.append((message.id, message.pop_receipt or ""))
                    continue
                if dry_run:
                    result.moved += 1
                    result.listed.append(await _listing(data, registration, ids, message.inserted_on, rows))
                    held.append((message.id, message.pop_receipt or ""))
                    continue
                await updates.send_message(_fresh(data))  # first the copy, then the delete: never lost
                await poison.delete_message(message.id, message.pop_receipt)
                result.moved += 1
                result.moved_ids.append(str(data.get("eventId") or data.get("id") or message.id))
        for message_id, receipt in held:  # visible again at once for the next reader
            await poison.update_message(message_id, receipt, visibility_timeout=0)
        result.state_problem = rows.problem
    return result


async def _listing(
    data: dict[str, Any], registration: str | None, ids: list[str], inserted: datetime | None, rows: _ActivityRows
) -> DeadLetter:
    """Which activity, why, and when: from the dead letter's reason; a message the host moved after its last
    retry carries none, so the activity's recorded failure stands in."""
    activity = " / ".join(ids) or "(no activity id)"
    dead = data["deadLetter"] if isinstance(data.get("deadLetter"), dict) else None
    last = (dead or {}).get("at") or (utc_iso(inserted) if inserted else None)
    first = data.get("firstAttemptAt") or (last if dead and dead.get("attempts") == 1 else None)
    row = await rows.find(registration, ids[0]) if ids and not (dead and first) else None
    first = first or (row.first_attempt_at if row else None)
    reason = dead or (row.last_error if row else None) or {"message": "none recorded (the host moved it after retries)"}
    said = " ".join(str(reason[name]) for name in ("status", "code") if reason.get(name))
    message = reason.get("message") or ""
    return DeadLetter(
        registration or "(no registrationId)",
        activity,
        f"{said}: {message}" if said and message else said or message,
        first or "unknown",
        last or "unknown",
    )
