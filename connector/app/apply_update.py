"""The queue worker: folds one callback into its activity's state and brings Graph up to date with it.

Outcomes, by design:
- a repeated event (same id) or one that changes nothing sends no PATCH;
- a worker PATCHes its merge, then writes the row only if nobody wrote it since it was read (ETag); one that finds
  a newer write redoes the merge and sends again if Graph has not had it, so the last PATCH Graph receives carries
  the whole merged state (two table calls per applied callback: a read and a write);
- throttling (429/503) puts the message back on the queue with Graph's delay instead of burning dequeues, within
  THROTTLE_WINDOW; other transient failures raise RetryLater so the host retries (then moves it to the poison queue);
- permanent failures and invalid events return a dead letter for the poison queue, with the reason.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.trace import SpanKind

from connector.adapters.activity_store import ActivityState, StateConflict, StateStore
from connector.adapters.graph import GraphFailure, GraphGateway
from connector.adapters.telemetry import parent_from, record, span
from connector.domain.envelope import (
    KIND,
    MAX_MESSAGE_BYTES,
    SCHEMA_VERSION,
    Envelope,
    MessageError,
    decode_body,
    is_envelope,
    now_iso,
    parse_instant,
    read_envelope,
    utc_iso,
)
from connector.domain.events import (
    CHANGEABLE,
    SELF_INITIATED,
    TYPE_NAMES,
    CourseActivityUpdate,
    EventValidationError,
    FieldError,
    parse_event_json,
)
from connector.domain.merge import Stamp, combine, fold, graph_agrees, patch_body
from connector.settings import Settings

logger = logging.getLogger(__name__)

#: How long a throttled update keeps coming back before it is dead-lettered (then replayable).
THROTTLE_WINDOW = timedelta(hours=24)
#: The longest single wait, whatever Retry-After says; the queue allows up to 7 days.
MAX_DELAY_SECONDS = 3600
THROTTLED_STATUSES = frozenset({429, 503})
_CONTENTION_LIMIT = 50
_RESEND_LIMIT = 10


class RetryLater(Exception):
    """A transient failure: fail the invocation so the host tries the message again."""

    def __init__(self, failure: GraphFailure) -> None:
        super().__init__(str(failure))
        self.failure = failure


@dataclass(frozen=True)
class Outcome:
    """What became of a message: applied, duplicate, unchanged, throttled (re-queued) or deadLettered."""

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


Requeue = Callable[[str, int], Awaitable[None]]


class Worker:
    def __init__(
        self,
        settings: Settings,
        gateway_factory: Callable[[], Awaitable[GraphGateway]],
        store: StateStore,
        requeue: Requeue,
        max_dequeue_count: int = 5,
        retry_delay_seconds: float = 30.0,
    ) -> None:
        self._settings = settings
        self._gateway = gateway_factory
        self._store = store
        self._requeue = requeue
        self._max_dequeue_count = max_dequeue_count
        self._retry_delay = timedelta(seconds=retry_delay_seconds)
        """host.json's visibilityTimeout: when the host tries a failed message again."""

    async def handle(self, delivery: Delivery) -> Outcome:
        try:
            envelope = self._read(delivery)
        except MessageError as exc:
            outcome = self._unreadable(delivery, str(exc))
            record(outcome.status)
            return outcome
        attributes = {
            "messaging.message.id": delivery.message_id,
            "messaging.message.delivery_count": delivery.dequeue_count,
            "connector.webhook_id": envelope.webhook_id,
            "connector.registration_id": envelope.registration_id,
        }
        # A child of the webhook's span (its context came in the message): one trace per callback.
        with span("apply course activity update", SpanKind.CONSUMER, parent_from(envelope.extra), **attributes) as now:
            try:
                outcome = await self._handle(envelope, delivery)
            except RetryLater as retry:
                record("retried")
                now.set_attribute("connector.outcome", "retried")
                failure = retry.failure
            else:
                failure = None
            if failure is not None:  # raised afresh: the host logs the cause, not a chain of tracebacks
                raise RetryLater(failure) from None
            now.set_attribute("connector.outcome", outcome.status)
            if outcome.request_id:
                now.set_attribute("connector.graph_request_id", outcome.request_id)
        record(outcome.status)
        return outcome

    async def _handle(self, envelope: Envelope, delivery: Delivery) -> Outcome:
        try:
            update = self._validate(envelope)
        except EventValidationError as exc:
            return self._dead_letter(envelope, delivery, _validation_reason(exc.errors))
        try:
            return await self._process(envelope, update)
        except _Refused as refused:
            failure = None
            reason = refused.reason
        except GraphFailure as caught:
            failure = caught
        if failure is not None:  # outside the except block: no chained traceback in the logs
            return await self._failed(envelope, update, delivery, failure)
        await self._record_failure(update, reason, "failed", failing=envelope)
        return self._dead_letter(envelope, delivery, reason)

    # --- reading and validating ---

    def _read(self, delivery: Delivery) -> Envelope:
        data = decode_body(delivery.body)
        if is_envelope(data):
            return read_envelope(data)
        if not isinstance(data, dict):
            raise MessageError("the message is neither an envelope nor a bare event (a JSON object)")
        event = dict(data)
        registration_id = event.pop("registrationId", None)
        inserted = utc_iso(delivery.insertion_time or datetime.now(UTC))
        return Envelope(
            id=delivery.message_id,
            registration_id=registration_id if isinstance(registration_id, str) else "",
            event=event,
            source="queue",
            event_time=inserted,
            received_at=inserted,
        )

    def _validate(self, envelope: Envelope) -> CourseActivityUpdate:
        if not envelope.registration_id.strip():
            raise EventValidationError(
                [FieldError("registrationId", "is required", "a bare event on the queue names its provider")]
            )
        provider = self._settings.provider(envelope.registration_id)
        if provider is None:
            raise EventValidationError(
                [FieldError("registrationId", "is invalid", "must be a provider configured in CONNECTOR_PROVIDERS")]
            )
        if envelope.from_statement:
            # Mapped from a statement (LRS intake or backfill): which type the activity is, Graph says when it is found.
            update = parse_event_json(
                json.dumps({"@odata.type": SELF_INITIATED, **envelope.event}), provider.registration_id
            )
            return replace(update, odata_type=None)
        return parse_event_json(json.dumps(envelope.event), provider.registration_id)

    # --- merging and applying ---

    async def _process(self, envelope: Envelope, update: CourseActivityUpdate) -> Outcome:
        for _ in range(_CONTENTION_LIMIT):
            state = await self._load(update)
            if state.odata_type and update.odata_type and state.odata_type != update.odata_type:
                raise _type_mismatch(state.odata_type)
            _check_not_reused(state, update, envelope)
            folded = self._fold(state, update, envelope)
            if not folded.up_to_date:
                break
            # A row is unsure after a PATCH whose fate is unknown (timeout, dropped connection, 5xx): read Graph back.
            # An attempt that died without a word saved nothing, so its retry is a new event here, not a repeat.
            if state.has_seen(envelope.id) and not state.unsure:
                return _skipped(envelope, "duplicate", "duplicate, nothing sent")
            if not await self._graph_agrees(folded, update):
                break
            try:  # remember the event (and that Graph was read back), then done
                await self._store.save(replace(folded, unsure=False, status="applied") if state.unsure else folded)
            except StateConflict:
                continue  # someone wrote meanwhile: look again
            return _skipped(envelope, "unchanged", "changes nothing, no PATCH")
        return await self._apply(folded, update, envelope)

    @staticmethod
    def _fold(state: ActivityState, update: CourseActivityUpdate, envelope: Envelope) -> ActivityState:
        """The row with the event merged in (not saved); unchanged if the row has seen the event."""
        if state.has_seen(envelope.id):
            return state
        stamp = Stamp(parse_instant(envelope.event_time), envelope.sequence, envelope.id)
        merged = fold(state.merged, update.changes, stamp)
        changed = merged.values != state.merged.values  # a newer stamp on the same value is no change
        return replace(
            state.with_seen(envelope.id, update.fingerprint),
            merged=merged,
            version=state.version + 1 if changed else state.version,
            odata_type=state.odata_type or update.odata_type,
            external_id=state.external_id or update.external_id,
            status="pending" if changed else state.status,
        )

    async def _load(self, update: CourseActivityUpdate) -> ActivityState:
        """The activity's row. A callback that names it by Graph id alone uses the row of its external id when one
        exists, so that both ways of naming one activity share one merge."""
        if update.external_id is None and update.activity_id is not None:
            found = await self._store.find_by_graph_id(update.registration_id, update.activity_id)
            if found is not None:
                return found
        return await self._store.load(update.registration_id, update.activity_key)

    async def _absorb(
        self, state: ActivityState, graph_id: str, update: CourseActivityUpdate, envelope: Envelope
    ) -> ActivityState:
        """Once an external id's Graph id is known, folds in the row that callbacks naming the Graph id made."""
        if not state.key.startswith("ext:"):
            return state
        for _ in range(_CONTENTION_LIMIT):
            other = await self._store.load(state.registration_id, f"id:{graph_id}")
            if other.etag is None:
                return state
            merged = combine(state.merged, other.merged)
            joined = replace(
                state.with_seen_of(other),
                merged=merged,
                version=state.version + (1 if merged.values != state.merged.values else 0),
                graph_id=graph_id,
                odata_type=state.odata_type or other.odata_type,
            )
            try:
                state = await self._store.save(joined)
                await self._store.delete(other)
                return state
            except StateConflict:
                state = self._fold(await self._store.load(state.registration_id, state.key), update, envelope)
        return state

    async def _graph_agrees(self, state: ActivityState, update: CourseActivityUpdate) -> bool:
        """Checks Graph before skipping: the state's memory of what Graph holds may be stale (edited elsewhere)."""
        gateway = await self._gateway()
        try:
            current = await _look_up(gateway, state, update)
        except GraphFailure as failure:
            logger.info("could not read the activity back (%s); sending the update instead", failure)
            return False
        odata_type = state.odata_type or current.get("@odata.type")
        changeable = CHANGEABLE.get(odata_type or "", ())  # an xAPI startedDateTime is never an assignment's
        return graph_agrees({k: v for k, v in state.merged.values.items() if k in changeable}, current)

    async def _apply(self, state: ActivityState, update: CourseActivityUpdate, envelope: Envelope) -> Outcome:
        """PATCHes the merged state, then records it with the ETag read; a writer who got in between may have merged
        newer callbacks, so then the merge is redone and, if Graph has not had it, sent again."""
        gateway = await self._gateway()
        graph_id, odata_type = state.graph_id, state.odata_type or update.odata_type
        if graph_id is None or odata_type is None:  # a Graph id from the event is looked up too: is it this provider's?
            graph_id, odata_type = await self._resolve(gateway, state, update, envelope)
            state = await self._absorb(state, graph_id, update, envelope)
        event_changes: dict[str, Any] = dict(update.changes)
        request_id: str | None = None
        for _ in range(_RESEND_LIMIT):
            changeable = CHANGEABLE[odata_type]  # e.g. an xAPI startedDateTime does not go to an assignment
            body = {k: v for k, v in patch_body(state.merged, event_changes).items() if k in changeable}
            request_id = await gateway.update_activity(update.registration_id, graph_id, odata_type, body)
            logger.info(
                "message %s (%s) applied to %s %s (request-id %s)",
                envelope.id,
                _origin(envelope),
                update.registration_id,
                graph_id,
                request_id,
                extra=_dimensions(envelope, request_id),
            )
            state, settled = await self._record_applied(state, update, envelope, graph_id, odata_type, body, request_id)
            if settled:
                break
            event_changes = {}  # newer callbacks were merged meanwhile: send the state again
        return Outcome("applied", request_id=request_id)

    async def _resolve(
        self, gateway: GraphGateway, state: ActivityState, update: CourseActivityUpdate, envelope: Envelope
    ) -> tuple[str, str]:
        """The activity's Graph id and type, looked up once through the provider's own URL (then kept in its state):
        a Graph id an event names must belong to this provider. Created if it is missing and the provider asks."""
        try:
            found = await _look_up(gateway, state, update)
        except GraphFailure as failure:
            provider = self._settings.provider(update.registration_id)
            if failure.status != 404:
                raise
            if update.external_id is None:
                raise _not_owned(update) from None
            if envelope.source != "xapi" or provider is None or not provider.create_missing:
                raise
            found = await self._create(gateway, state, update, envelope)
        graph_id, odata_type = found.get("id"), found.get("@odata.type") or update.odata_type
        if not isinstance(graph_id, str) or not graph_id or odata_type not in CHANGEABLE:
            raise GraphFailure(200, "invalidResponse", "Graph's answer for the activity has no id or known @odata.type")
        owner = found.get("learningProviderId")
        if isinstance(owner, str) and owner.lower() != update.registration_id.lower():
            raise _not_owned(update)
        if update.odata_type and odata_type != update.odata_type:
            raise _type_mismatch(odata_type)
        return graph_id, odata_type

    async def _create(
        self, gateway: GraphGateway, state: ActivityState, update: CourseActivityUpdate, envelope: Envelope
    ) -> dict[str, Any]:
        """Creates the self-initiated course an xAPI statement is about, for the learner and content it names."""
        from connector.app.lookups import Directory

        provider = self._settings.provider(update.registration_id)
        assert provider is not None
        assert update.external_id is not None
        context = envelope.extra.get("xapi") or {}
        directory = Directory(gateway, self._store)
        learner = await directory.learner_id(context.get("actor") or {})
        content = await directory.content_id(
            update.registration_id, str(context.get("activityId") or ""), provider.content_id_pattern
        )
        identity = {
            "learnerUserId": learner,
            "learningContentId": content,
            "externalcourseActivityId": update.external_id,
        }
        values = {k: v for k, v in state.merged.values.items() if k in CHANGEABLE[SELF_INITIATED]}
        values.setdefault("status", "inProgress")
        try:
            created = await gateway.create_activity(update.registration_id, SELF_INITIATED, identity, values)
        except GraphFailure as failure:
            if failure.status != 409:  # 409: another worker created it meanwhile
                raise
            return await gateway.find_activity(update.registration_id, update.external_id)
        logger.info(
            "message %s created activity %s for provider %s",
            envelope.id,
            created.get("id"),
            update.registration_id,
            extra=_dimensions(envelope),
        )
        return created

    async def _record_applied(
        self,
        state: ActivityState,
        update: CourseActivityUpdate,
        envelope: Envelope,
        graph_id: str,
        odata_type: str,
        body: dict[str, Any],
        request_id: str | None,
    ) -> tuple[ActivityState, bool]:
        """Saves the row as applied; says False (with the row merged anew) when Graph may not hold the merge: its
        merge now holds values this PATCH did not carry, or the worker that wrote meanwhile sent other values, and
        its PATCH may have reached Graph after this one."""
        sent, applied_before = state.merged.values, state.applied
        for _ in range(_CONTENTION_LIMIT):
            done = replace(
                state,
                graph_id=graph_id,
                odata_type=odata_type,
                applied=body,
                applied_version=state.version,
                status="applied",
                failed_values=None,
                last_applied_at=now_iso(),
                last_request_id=request_id,
                last_error=None,
                first_attempt_at=None,
                last_attempt_at=now_iso(),
                next_attempt_at=None,
            )
            try:
                return await self._store.save(done), True
            except StateConflict:
                state = self._fold(await self._load(update), update, envelope)
                other_sent = state.applied if state.applied not in (applied_before, body) else None
                if state.merged.values != sent or other_sent is not None:
                    return state, False
        return state, True

    # --- failures ---

    async def _failed(
        self, envelope: Envelope, update: CourseActivityUpdate, delivery: Delivery, failure: GraphFailure
    ) -> Outcome:
        reason = failure.reason()
        if not failure.transient:
            await self._record_failure(update, reason, "failed", failing=envelope)
            return self._dead_letter(envelope, delivery, reason)
        if failure.status in THROTTLED_STATUSES:
            return await self._throttled(envelope, update, delivery, failure)
        final = delivery.dequeue_count >= self._max_dequeue_count
        next_at = None if final else utc_iso(datetime.now(UTC) + self._retry_delay)
        await self._record_failure(
            update, reason, "failed" if final else "retrying", next_attempt_at=next_at, pending=envelope
        )
        logger.warning(
            "message %s (%s) failed transiently (attempt %d of %d): %s (request-id %s)",
            envelope.id,
            _origin(envelope),
            delivery.dequeue_count,
            self._max_dequeue_count,
            failure,
            failure.request_id,
            extra=_dimensions(envelope, failure.request_id),
        )
        raise RetryLater(failure)

    async def _throttled(
        self, envelope: Envelope, update: CourseActivityUpdate, delivery: Delivery, failure: GraphFailure
    ) -> Outcome:
        now = datetime.now(UTC)
        first = _parse_time(envelope.first_attempt_at) or now
        attempt = envelope.attempt + 1
        delay = failure.retry_after
        if delay is None:  # 30 s, 1 min, 2 min … up to 15 min (by default), with jitter so a burst spreads out
            base = self._settings.throttle_backoff_seconds
            delay = min(base * 2 ** (attempt - 1), base * 30) * random.uniform(0.8, 1.2)
        delay = int(min(max(delay, 1), MAX_DELAY_SECONDS))
        reason = failure.reason()
        if now + timedelta(seconds=delay) - first > THROTTLE_WINDOW:
            reason = {
                **reason,
                "message": f"{reason['message']} (still throttled after {attempt} attempts over "
                f"{THROTTLE_WINDOW}; replay it once the cause is fixed)",
            }
            await self._record_failure(update, reason, "failed", failing=envelope)
            return self._dead_letter(envelope, delivery, reason)
        again = replace(envelope, attempt=attempt, first_attempt_at=utc_iso(first))
        await self._requeue(again.to_json(), delay)  # before this message completes, so it cannot be lost
        next_at = utc_iso(now + timedelta(seconds=delay))
        await self._record_failure(update, reason, "throttled", next_attempt_at=next_at, pending=envelope)
        logger.warning(
            "message %s (%s) throttled (%s), back on the queue in %d s (attempt %d, request-id %s)",
            envelope.id,
            _origin(envelope),
            failure.status,
            delay,
            attempt,
            failure.request_id,
            extra=_dimensions(envelope, failure.request_id),
        )
        return Outcome("throttled", request_id=failure.request_id)

    async def _record_failure(
        self,
        update: CourseActivityUpdate,
        reason: dict[str, Any],
        status: str,
        next_attempt_at: str | None = None,
        pending: Envelope | None = None,
        failing: Envelope | None = None,
    ) -> None:
        """Best effort: the message's own fate (retry, requeue, dead letter) does not depend on this write.

        A timeout, a dropped connection or a 5xx leaves it open whether Graph applied the PATCH, perhaps late and
        after a newer one: the row is marked unsure, and the next repeat reads Graph before it calls itself done.
        A `pending` event (one that will be tried again) is merged in, so the status shows what is waiting. A
        `failing` one (dead-lettered) is not: the row says `failed`, with the values that did not reach Graph, until
        a later update applies; replaying the dead letter brings them back."""
        code = reason.get("status")
        unsure = code is None or (isinstance(code, int) and code >= 500)
        try:
            for _ in range(_CONTENTION_LIMIT):
                state = await self._load(update)
                if pending is not None:
                    state = self._fold(state, update, pending)
                if failing is not None:
                    state = replace(state, failed_values=_values_with(state, update, failing))
                now = now_iso()
                keep_status = failing is None and state.up_to_date and state.etag
                failed = replace(
                    state,
                    status=state.status if keep_status else status,
                    unsure=state.unsure or unsure,
                    last_error={**reason, "at": now},
                    first_attempt_at=state.first_attempt_at or now,
                    last_attempt_at=now,
                    next_attempt_at=next_attempt_at,
                    odata_type=state.odata_type or update.odata_type,
                    external_id=state.external_id or update.external_id,
                )
                try:
                    await self._store.save(failed)
                    return
                except StateConflict:
                    continue
        except Exception:
            logger.exception("could not record the failure in the activity state")

    def _dead_letter(self, envelope: Envelope, delivery: Delivery, reason: dict[str, Any]) -> Outcome:
        reason = {
            **reason,
            "at": now_iso(),
            "attempts": delivery.dequeue_count + envelope.attempt,
            "messageId": delivery.message_id,
        }
        logger.error(
            "message %s (%s) dead-lettered: %s %s %s (request-id %s)",
            envelope.id,
            _origin(envelope),
            reason.get("status"),
            reason.get("code"),
            reason.get("message"),
            reason.get("requestId"),
            extra=_dimensions(envelope, reason.get("requestId")),
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
        keep = MAX_MESSAGE_BYTES // 8  # room for the escaping of any character, and the reason
        body = {"schemaVersion": SCHEMA_VERSION, "kind": KIND, "raw": text[:keep], "deadLetter": reason}
        if len(text) > keep:
            body["rawTruncated"] = True
        return Outcome("deadLettered", dead_letter=json.dumps(body))


class _Refused(Exception):
    """The update cannot be applied as it stands: it is dead-lettered with this reason (never retried)."""

    def __init__(self, reason: dict[str, Any]) -> None:
        super().__init__(reason["message"])
        self.reason = reason


def _type_mismatch(stored: str) -> _Refused:
    error = FieldError(
        "@odata.type", "is invalid", f"this activity is a {TYPE_NAMES.get(stored, stored)}; earlier callbacks said so"
    )
    return _Refused(_validation_reason([error]))


def _not_owned(update: CourseActivityUpdate) -> _Refused:
    return _Refused(
        {
            "source": "graph",
            "status": 404,
            "code": "activityNotFound",
            "message": f"provider {update.registration_id} has no activity {update.activity_id} in Graph (the id is "
            "unknown, or belongs to another provider)",
        }
    )


def _check_not_reused(state: ActivityState, update: CourseActivityUpdate, envelope: Envelope) -> None:
    """An event id the row has seen with other content: the sender reused an id, which is never a retry."""
    content = state.seen_content(envelope.id)
    if content and content != update.fingerprint:
        what = f"webhook-id {envelope.webhook_id}" if envelope.webhook_id else f"event id {envelope.id}"
        raise _Refused(
            {
                "source": "validation",
                "status": 409,
                "code": "eventIdReused",
                "message": f"{what} was received before with other content; a sender retries with the same content "
                "and sends new content under a new id",
            }
        )


def _values_with(state: ActivityState, update: CourseActivityUpdate, envelope: Envelope) -> dict[str, Any]:
    """The values a PATCH with this event would have carried (the row's merge with it folded in)."""
    stamp = Stamp(parse_instant(envelope.event_time), envelope.sequence, envelope.id)
    return patch_body(fold(state.merged, update.changes, stamp), update.changes)


def _origin(envelope: Envelope) -> str:
    """Where a message came from, for log lines: the webhook id, the xAPI statement id, or the queue."""
    if envelope.webhook_id:
        return f"webhook {envelope.webhook_id}"
    if envelope.source == "xapi":
        return f"statement {envelope.id}"
    return f"{envelope.source} message"


def _skipped(envelope: Envelope, status: str, why: str) -> Outcome:
    logger.info("message %s (%s): %s", envelope.id, _origin(envelope), why, extra=_dimensions(envelope))
    return Outcome(status)


def _dimensions(envelope: Envelope, request_id: str | None = None) -> dict[str, Any]:
    """Log record dimensions (customDimensions in Application Insights)."""
    return {"webhookId": envelope.webhook_id, "registrationId": envelope.registration_id, "graphRequestId": request_id}


def _validation_reason(errors: list[FieldError]) -> dict[str, Any]:
    return {
        "source": "validation",
        "status": 400,
        "code": "badRequest",
        "message": errors[0].message,
        "details": [e.to_detail() for e in errors[:20]],
    }


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parse_instant(value)
    except ValueError:
        return None


async def _look_up(gateway: GraphGateway, state: ActivityState, update: CourseActivityUpdate) -> dict[str, Any]:
    """The activity as Graph holds it, read through the provider's own URLs: by the Graph id once it is known or
    when the event gives one, else by the external id."""
    graph_id = state.graph_id or update.activity_id
    if graph_id is not None:
        return await gateway.get_activity(update.registration_id, graph_id)
    assert update.external_id is not None
    return await gateway.find_activity(update.registration_id, update.external_id)
