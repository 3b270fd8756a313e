"""The queue worker: turns one message into the Graph PATCH it stands for, or into a dead letter that says why.

Transient failures raise RetryLater so the invocation fails and the host retries it (and after maxDequeueCount
moves it to the poison queue); permanent ones return a dead letter for the poison queue at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector.events import CourseActivityUpdate, EventValidationError, parse_event_json
from connector.graph import GraphFailure, GraphGateway
from connector.messages import (
    KIND,
    SCHEMA_VERSION,
    Envelope,
    MessageError,
    decode_body,
    is_envelope,
    now_iso,
    read_envelope,
)
from connector.settings import Settings

logger = logging.getLogger(__name__)


class RetryLater(Exception):
    """A transient failure: fail the invocation so the host tries the message again."""

    def __init__(self, failure: GraphFailure) -> None:
        super().__init__(str(failure))
        self.failure = failure


@dataclass(frozen=True)
class Outcome:
    """What became of a message: applied, or dead-lettered with the poison message to write."""

    status: str
    request_id: str | None = None
    dead_letter: str | None = None


@dataclass(frozen=True)
class Delivery:
    """The queue message as the host hands it over."""

    body: bytes
    message_id: str
    dequeue_count: int = 1
    insertion_time: datetime | None = None


class Worker:
    def __init__(self, settings: Settings, gateway: Callable[[], Awaitable[GraphGateway]]) -> None:
        self._settings = settings
        self._gateway = gateway

    async def handle(self, delivery: Delivery) -> Outcome:
        try:
            envelope = self._read(delivery)
        except MessageError as exc:
            return self._unreadable(delivery, str(exc))
        try:
            update = self._validate(envelope)
        except EventValidationError as exc:
            errors = exc.errors
            reason = {
                "source": "validation",
                "status": 400,
                "code": "badRequest",
                "message": errors[0].message,
                "details": [e.to_detail() for e in errors],
            }
            return self._dead_letter(envelope, delivery, reason)
        try:
            request_id = await self._apply(update)
        except GraphFailure as failure:
            if failure.transient:
                logger.warning(
                    "message %s (webhook %s) failed transiently, attempt %d: %s (request-id %s)",
                    envelope.id,
                    envelope.webhook_id,
                    delivery.dequeue_count,
                    failure,
                    failure.request_id,
                )
                raise RetryLater(failure) from None
            return self._dead_letter(envelope, delivery, failure.reason())
        logger.info(
            "message %s (webhook %s) applied to %s (request-id %s)",
            envelope.id,
            envelope.webhook_id,
            update.activity_key,
            request_id,
        )
        return Outcome("applied", request_id=request_id)

    def _read(self, delivery: Delivery) -> Envelope:
        data = decode_body(delivery.body)
        if is_envelope(data):
            return read_envelope(data)
        if not isinstance(data, dict):
            raise MessageError("the message is neither an envelope nor a bare event (a JSON object)")
        event = dict(data)
        registration_id = event.pop("registrationId", None)
        if not isinstance(registration_id, str) or not registration_id.strip():
            registration_id = ""
        inserted = delivery.insertion_time.isoformat() if delivery.insertion_time else now_iso()
        return Envelope(
            id=delivery.message_id,
            registration_id=registration_id,
            event=event,
            source="queue",
            event_time=inserted,
            received_at=inserted,
        )

    def _validate(self, envelope: Envelope) -> CourseActivityUpdate:
        from connector.events import FieldError

        if not envelope.registration_id:
            raise EventValidationError(
                [FieldError("registrationId", "is required", "a bare event on the queue names its provider")]
            )
        if self._settings.provider(envelope.registration_id) is None:
            raise EventValidationError(
                [FieldError("registrationId", "is invalid", "must be a provider configured in CONNECTOR_PROVIDERS")]
            )
        return parse_event_json(json.dumps(envelope.event), envelope.registration_id)

    async def _apply(self, update: CourseActivityUpdate) -> str | None:
        gateway = await self._gateway()
        activity_id = update.activity_id
        if activity_id is None:
            assert update.external_id is not None
            found = await gateway.find_activity(update.registration_id, update.external_id)
            activity_id = found.get("id")
            if not isinstance(activity_id, str) or not activity_id:
                raise GraphFailure(200, "invalidResponse", "Graph's lookup by external id returned no id")
        return await gateway.update_activity(update.registration_id, activity_id, update.odata_type, update.changes)

    def _dead_letter(self, envelope: Envelope, delivery: Delivery, reason: dict[str, Any]) -> Outcome:
        reason = {**reason, "at": now_iso(), "attempts": delivery.dequeue_count, "messageId": delivery.message_id}
        logger.error(
            "message %s (webhook %s) dead-lettered: %s %s %s (request-id %s)",
            envelope.id,
            envelope.webhook_id,
            reason.get("status"),
            reason.get("code"),
            reason.get("message"),
            reason.get("requestId"),
        )
        return Outcome(
            "deadLettered", request_id=reason.get("requestId"), dead_letter=envelope.with_dead_letter(reason).to_json()
        )

    def _unreadable(self, delivery: Delivery, problem: str) -> Outcome:
        text = delivery.body.decode("utf-8", errors="replace")
        reason = {
            "source": "message",
            "code": "unreadableMessage",
            "message": problem,
            "at": now_iso(),
            "attempts": delivery.dequeue_count,
            "messageId": delivery.message_id,
        }
        logger.error("message %s dead-lettered: %s", delivery.message_id, problem)
        body = {"schemaVersion": SCHEMA_VERSION, "kind": KIND, "raw": text, "deadLetter": reason}
        return Outcome("deadLettered", dead_letter=json.dumps(body, ensure_ascii=False))
