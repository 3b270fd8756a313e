"""Re-queues dead letters once their cause is fixed: all of them, one provider's, or one activity's."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from connector.messages import POISON_QUEUE_NAME, QUEUE_NAME, MessageError, decode_body, is_envelope
from connector.settings import Settings
from connector.storage import queue_client

_ID_FIELDS = ("learningCourseActivityId", "externalcourseActivityId", "externalCourseActivityId")


@dataclass
class ReplayResult:
    moved: int = 0
    kept: int = 0
    unreadable: int = 0
    moved_ids: list[str] = field(default_factory=list)


def _identity(data: Any) -> tuple[str | None, set[str]]:
    """The registrationId and activity ids a poison message is about."""
    if not isinstance(data, dict):
        return None, set()
    event = data.get("event") if is_envelope(data) else data
    event = event if isinstance(event, dict) else {}
    ids = {str(event[name]) for name in _ID_FIELDS if event.get(name)}
    registration_id = data.get("registrationId")
    return (registration_id if isinstance(registration_id, str) else None), ids


def _fresh(data: dict[str, Any]) -> str:
    """The message as it was first queued: no dead-letter reason, attempts counted from zero."""
    for name in ("deadLetter", "attempt", "firstAttemptAt"):
        data.pop(name, None)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


async def replay(
    settings: Settings,
    *,
    registration_id: str | None = None,
    activity_id: str | None = None,
    dry_run: bool = False,
) -> ReplayResult:
    result = ReplayResult()
    held: list[tuple[str, str]] = []
    async with (
        queue_client(settings, POISON_QUEUE_NAME, retry_total=0) as poison,
        queue_client(settings, QUEUE_NAME, retry_total=0) as updates,
    ):
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
                    held.append((message.id, message.pop_receipt))
                    continue
                registration, ids = _identity(data)
                wanted = (registration_id is None or (registration or "").lower() == registration_id.lower()) and (
                    activity_id is None or activity_id in ids
                )
                if not wanted:
                    result.kept += 1
                    held.append((message.id, message.pop_receipt))
                    continue
                if dry_run:
                    result.moved += 1
                    held.append((message.id, message.pop_receipt))
                    continue
                await updates.send_message(_fresh(data))  # first the copy, then the delete: never lost
                await poison.delete_message(message.id, message.pop_receipt)
                result.moved += 1
                result.moved_ids.append(str(data.get("eventId") or data.get("id") or message.id))
        for message_id, receipt in held:  # visible again at once for the next reader
            await poison.update_message(message_id, receipt, visibility_timeout=0)
    return result
