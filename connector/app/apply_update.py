"""Applying one queued update: folds the event into its activity's state and brings Graph up to date with it.

Outcomes, by design:
- a repeated event (same id) or one that changes nothing sends no PATCH;
- a worker PATCHes its merge, then writes the row only if nobody wrote it since it was read (ETag); one that finds
  a newer write redoes the merge and sends again if Graph may not hold it, so the last PATCH Graph receives carries
  the whole merged state (two table calls per applied callback: a read and a write);
- throttling puts the message back on the queue with Graph's delay instead of burning dequeues, within the throttle
  window; other failures worth retrying raise RetryLater so the host retries (then moves it to the poison queue);
- permanent failures and invalid events return a dead letter for the poison queue, with the reason.

It sees the world through ports (connector.app.ports): an activity store, Graph, a lookup cache, a requeue and a
clock; bootstrap gives it the real ones, tests/unit/fakes.py in-memory ones.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic_core import PydanticSerializationError, to_json

from connector.app import tracing
from connector.app.lookups import Directory, LookupFailed
from connector.app.pacing import Held
from connector.app.ports import ActivityStore, Clock, Graph, LookupCache, Requeue, StateConflict
from connector.app.reconcile import Reconciler
from connector.app.tenancy import current_tenant, lookups_in, serving, tenant_of
from connector.domain.activity import ActivityState
from connector.domain.envelope import (
    KIND,
    MAX_MESSAGE_BYTES,
    SCHEMA_VERSION,
    Envelope,
    MessageError,
    decode_body,
    is_envelope,
    parse_instant,
    read_envelope,
    read_reconcile_slice,
    utc_iso,
)
from connector.domain.events import (
    ASSIGNMENT,
    CHANGEABLE,
    SELF_INITIATED,
    STATUSES,
    TYPE_NAMES,
    CourseActivityUpdate,
    EventValidationError,
    FieldError,
    missing_for_create,
    parse_event_json,
)
from connector.domain.failures import GraphFailure, Kind, beyond_window, throttle_delay
from connector.domain.merge import Stamp, combine, fold, graph_agrees, patch_body, remove
from connector.settings import Settings

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_CONTENTION_LIMIT = 50
_RESEND_LIMIT = 10
#: The Graph port for a registration (its tenant's client), made on first use.
GraphFor = Callable[[str], Awaitable[Graph]]


class RetryLater(Exception):
    """A failure worth another try: fail the invocation so the host tries the message again."""

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


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Worker:
    """The queue function's use case; one per process, shared by every invocation."""

    def __init__(
        self,
        settings: Settings,
        graph_for: GraphFor,
        store: ActivityStore,
        cache: LookupCache,
        requeue: Requeue,
        *,
        max_dequeue_count: int = 5,
        retry_delay_seconds: float = 30.0,
        clock: Clock = _utc_now,
        reconciler: Reconciler | None = None,
    ) -> None:
        self._settings = settings
        self._graph_for = graph_for
        self._store = store
        self._cache = cache
        self._requeue = requeue
        self._max_dequeue_count = max_dequeue_count
        self._retry_delay = timedelta(seconds=retry_delay_seconds)
        """host.json's visibilityTimeout: when the host tries a failed message again."""
        self._clock = clock
        self._reconciler = reconciler

    async def handle(self, delivery: Delivery) -> Outcome:
        try:
            data = decode_body(delivery.body)
            work = read_reconcile_slice(data) if isinstance(data, dict) else None
            if work is not None and self._reconciler is not None:
                tally = await self._reconciler.run_slice(work)
                tracing.record("reconciled", max(tally.checked, 1))
                return Outcome("reconciled")
            envelope = self._read(data, delivery)
        except MessageError as exc:
            outcome = self._unreadable(delivery, str(exc))
            tracing.record(outcome.status)
            return outcome
        with serving(self._settings, envelope.registration_id):
            return await self._traced(envelope, delivery)

    async def _traced(self, envelope: Envelope, delivery: Delivery) -> Outcome:
        attributes = {
            "messaging.message.id": delivery.message_id,
            "messaging.message.delivery_count": delivery.dequeue_count,
            "connector.webhook_id": envelope.webhook_id,
            "connector.registration_id": envelope.registration_id,
            "connector.tenant_id": current_tenant.get(),
        }
        # A child of the webhook's span (its context came in the message): one trace per callback.
        parent = tracing.parent_from(envelope.extra)
        with tracing.span("apply course activity update", attributes, kind=tracing.CONSUMER, parent=parent) as current:
            try:
                outcome = await self._handle(envelope, delivery)
            except RetryLater as retry:
                failure: GraphFailure | None = retry.failure
            else:
                failure = None
            outcome_name = "retried" if failure is not None else outcome.status
            current.set_attribute("connector.outcome", outcome_name)
            tracing.record(outcome_name)
            if failure is not None:  # raised afresh: the host logs the cause, not a chain of tracebacks
                raise RetryLater(failure) from None
            if outcome.request_id:
                current.set_attribute("connector.graph_request_id", outcome.request_id)
        return outcome

    async def _handle(self, envelope: Envelope, delivery: Delivery) -> Outcome:
        try:
            update = self._validate(envelope)
        except EventValidationError as exc:
            return self._dead_letter(envelope, delivery, _validation_reason(exc.errors))
        try:
            return await self._process(envelope, update)
        except Held as held:  # a 429's wait for this provider, learned here or by another instance
            delay = held.delay_seconds(self._clock())
            await self._requeue(envelope.to_json(), delay)
            logger.info(
                "message %s (%s) held %d s after a 429",
                envelope.id,
                _origin(envelope),
                delay,
                extra=_dimensions(envelope),
            )
            return Outcome("held")
        except _Refused as refused:
            failure, reason, merged = None, refused.reason, refused.keep_merged
        except GraphFailure as caught:
            failure, reason, merged = caught, caught.reason(), False
        if failure is not None:  # outside the except block: no chained traceback in the logs
            return await self._failed(envelope, update, delivery, failure)
        if merged:  # its values are fine: a later event that can create the activity carries them
            await self._record_failure(update, reason, "failed", pending=envelope)
        else:
            await self._record_failure(update, reason, "failed", failing=envelope)
        return self._dead_letter(envelope, delivery, reason)

    # --- reading and validating ---

    def _read(self, data: Any, delivery: Delivery) -> Envelope:
        if is_envelope(data):
            return read_envelope(data)
        if not isinstance(data, dict):
            raise MessageError("the message is neither an envelope nor a bare event (a JSON object)")
        event = dict(data)
        registration_id = event.pop("registrationId", None)
        inserted = utc_iso(delivery.insertion_time or self._clock())
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
        # Validation runs in pydantic's strict JSON mode (no "20" for 20, dates as ISO text), so the event goes back
        # to JSON text first (pydantic-core, microseconds). An event the connector mapped itself (a statement, a
        # platform's event) may name no type: Graph tells it when the activity is found.
        if envelope.typed_by_graph:
            typed = _json_text({"@odata.type": SELF_INITIATED, **envelope.event})
            return replace(parse_event_json(typed, provider.registration_id), odata_type=None)
        return parse_event_json(_json_text(envelope.event), provider.registration_id)

    # --- merging and applying ---

    async def _process(self, envelope: Envelope, update: CourseActivityUpdate) -> Outcome:
        for _ in range(_CONTENTION_LIMIT):
            state = await self._load(update)
            if state.odata_type and update.odata_type and state.odata_type != update.odata_type:
                raise _type_mismatch(state.odata_type)
            _check_not_reused(state, update, envelope)
            folded = _fold(state, update, envelope)
            if not folded.merged.exists:  # withdrawn: the newest event is a removal
                if folded.status != "deleted":
                    return await self._withdraw(folded, update, envelope)
                if state.has_seen(envelope.id):
                    return _skipped(envelope, "duplicate", "duplicate, nothing sent")
                try:  # an older update, or a removal again: the activity stays withdrawn
                    await self._store.save(folded)
                except StateConflict:
                    continue
                return _skipped(envelope, "unchanged", "the activity is withdrawn; nothing sent")
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

    async def _load(self, update: CourseActivityUpdate) -> ActivityState:
        """The activity's row. A callback that names it by Graph id alone uses the row of its external id when one
        exists, so that both ways of naming one activity share one merge."""
        tenant = tenant_of(self._settings, update.registration_id)
        if update.external_id is None and update.activity_id is not None:
            found = await self._store.find_by_graph_id(update.registration_id, update.activity_id)
            if found is not None:
                return found.in_tenant(tenant)
        return (await self._store.load(update.registration_id, update.activity_key)).in_tenant(tenant)

    async def _rewrite(
        self,
        update: CourseActivityUpdate,
        change: Callable[[ActivityState], ActivityState | None],
        first: ActivityState | None = None,
    ) -> ActivityState | None:
        """Writes `change(row)` if nobody wrote the row since it was read (`first`, else a fresh read); after a
        conflict, reads the row again and redoes the change. `change` gives None to write nothing."""
        state = first or await self._load(update)
        for _ in range(_CONTENTION_LIMIT):
            changed = change(state)
            if changed is None:
                return None
            try:
                return await self._store.save(changed)
            except StateConflict:
                state = await self._load(update)
        raise StateConflict(f"the activity's row kept changing under {_CONTENTION_LIMIT} attempts to write it")

    async def _absorb(
        self, state: ActivityState, graph_id: str, update: CourseActivityUpdate, envelope: Envelope
    ) -> ActivityState:
        """Once an external id's Graph id is known, folds in the row that callbacks naming the Graph id made, then
        removes that row; if it changed meanwhile, what it holds now is folded in again (combining is idempotent)."""
        if not state.key.startswith("ext:"):
            return state
        for _ in range(_CONTENTION_LIMIT):
            other = await self._store.load(state.registration_id, f"id:{graph_id}")
            if other.etag is None:
                return state
            first = state

            def join(row: ActivityState, other: ActivityState = other, first: ActivityState = first) -> ActivityState:
                row = row if row is first else _fold(row, update, envelope)
                merged = combine(row.merged, other.merged)
                return replace(
                    row.with_seen_of(other),
                    merged=merged,
                    version=row.version + (1 if merged.values != row.merged.values else 0),
                    graph_id=graph_id,
                    odata_type=row.odata_type or other.odata_type,
                )

            state = await self._rewrite(update, join, first=state) or state
            try:
                await self._store.delete(other)
                return state
            except StateConflict:
                continue
        return state

    async def _graph_agrees(self, state: ActivityState, update: CourseActivityUpdate) -> bool:
        """Checks Graph before skipping: the state's memory of what Graph holds may be stale (edited elsewhere)."""
        graph = await self._graph_for(update.registration_id)
        try:
            current = await _look_up(graph, state, update)
        except GraphFailure as failure:
            logger.info("could not read the activity back (%s); sending the update instead", failure)
            return False
        odata_type = state.odata_type or current.get("@odata.type")
        changeable = CHANGEABLE.get(odata_type or "", ())  # an xAPI startedDateTime is never an assignment's
        return graph_agrees({k: v for k, v in state.merged.values.items() if k in changeable}, current)

    async def _apply(self, state: ActivityState, update: CourseActivityUpdate, envelope: Envelope) -> Outcome:
        """PATCHes the merged state (or creates the activity with it), then records it with the ETag read; a writer
        who got in between may have merged newer callbacks, so then the merge is redone and, if Graph may not hold
        it, sent again."""
        graph = await self._graph_for(update.registration_id)
        graph_id, odata_type = state.graph_id, state.odata_type or update.odata_type
        event_changes: dict[str, Any] = dict(update.changes)
        created: dict[str, Any] | None = None  # what a create carried, if it came to that
        if graph_id is None or odata_type is None:  # a Graph id from the event is looked up too: is it this provider's?
            found = await self._find(graph, state, update)
            if found is None:
                odata_type = odata_type or SELF_INITIATED  # an xAPI statement's course, when there is none
                created = _body(state, event_changes, odata_type)
                found, made = await self._create(graph, state, update, envelope, odata_type, created)
                created = created if made else None  # another worker's create: ours is an update
            graph_id, odata_type = _identified(found, update)
            state = await self._absorb(state, graph_id, update, envelope)
        request_id: str | None = None
        for _ in range(_RESEND_LIMIT):
            body = _body(state, event_changes, odata_type)
            if body != created:
                request_id = await graph.update_activity(update.registration_id, graph_id, odata_type, body)
                logger.info(
                    "message %s (%s) applied to %s %s (request-id %s)",
                    envelope.id,
                    _origin(envelope),
                    update.registration_id,
                    graph_id,
                    request_id,
                    extra=_dimensions(envelope, request_id),
                )
            applied = _Applied(graph_id, odata_type, body, request_id, utc_iso(self._clock()))
            resend = await self._record_applied(state, update, envelope, applied)
            if resend is None:
                break
            state, event_changes, created = resend, {}, None  # newer callbacks were merged meanwhile: send again
        return Outcome("applied", request_id=request_id)

    async def _find(self, graph: Graph, state: ActivityState, update: CourseActivityUpdate) -> dict[str, Any] | None:
        """The activity as Graph holds it, through the provider's own URL (a Graph id an event names must be this
        provider's), or None when it is missing and may be created."""
        try:
            return await _look_up(graph, state, update)
        except GraphFailure as failure:
            if failure.kind is not Kind.NOT_FOUND:
                raise
            if update.external_id is None and state.external_id is None:
                raise _not_owned(update) from None
            provider = self._settings.provider(update.registration_id)
            if provider is None or not provider.create_missing:
                raise
            return None

    async def _create(
        self,
        graph: Graph,
        state: ActivityState,
        update: CourseActivityUpdate,
        envelope: Envelope,
        odata_type: str,
        values: dict[str, Any],
    ) -> tuple[dict[str, Any], bool]:
        """Creates the missing activity with the merged values, for the learner and content the events name (an
        xAPI statement: its actor and activity); says whether it did. Another worker's create of it (a conflict)
        gives that activity instead, to be updated."""
        external_id = update.external_id or state.external_id
        assert external_id is not None
        try:
            identity = await self._identity_for_create(graph, state, update, envelope, odata_type)
        except LookupFailed as missing:
            raise _Refused(missing.reason(), keep_merged=True) from None
        values = {**values, "status": values.get("status") or STATUSES[odata_type][0]}
        try:
            created = await graph.create_activity(
                update.registration_id, odata_type, {**identity, "externalcourseActivityId": external_id}, values
            )
        except GraphFailure as failure:
            if not _exists_already(failure):
                raise
            return await graph.find_activity(update.registration_id, external_id), False
        logger.info(
            "message %s (%s) created activity %s for provider %s",
            envelope.id,
            _origin(envelope),
            created.get("id"),
            update.registration_id,
            extra=_dimensions(envelope),
        )
        return created, True

    async def _identity_for_create(
        self, graph: Graph, state: ActivityState, update: CourseActivityUpdate, envelope: Envelope, odata_type: str
    ) -> dict[str, str]:
        """Entra's and Viva Learning's ids for the learner, the content and an assignment's assigner."""
        provider = self._settings.provider(update.registration_id)
        assert provider is not None
        # A platform's event may say how it names the learner (an employee or SIS id rather than an email).
        learner_match = str(envelope.extra.get("learnerMatch") or provider.learner_match)
        tenant_lookups = lookups_in(self._cache, tenant_of(self._settings, update.registration_id))
        directory = Directory(graph, tenant_lookups, learner_match=learner_match)
        if envelope.from_statement:
            context = envelope.extra.get("xapi") or {}
            learner = await directory.learner_id(context.get("actor") or {})
            iri = str(context.get("activityId") or "")
            content = await directory.statement_content_id(update.registration_id, iri, provider.content_id_pattern)
            return {"learnerUserId": learner, "learningContentId": content}
        named = state.merged.identity
        missing = missing_for_create(named, odata_type)
        if missing:
            raise _cannot_create(missing)
        identity = {
            "learnerUserId": await directory.user_id(named["learnerUserId"], "learnerUserId"),
            "learningContentId": await directory.content_id(update.registration_id, named["learningContentId"]),
        }
        if odata_type == ASSIGNMENT:
            identity["assignmentType"] = named["assignmentType"]
            if named.get("assignerUserId"):
                identity["assignerUserId"] = await directory.user_id(named["assignerUserId"], "assignerUserId")
        return identity

    async def _withdraw(self, folded: ActivityState, update: CourseActivityUpdate, envelope: Envelope) -> Outcome:
        """Deletes the activity in Graph (already gone counts as done) and records it as deleted. Should a newer
        event have brought the activity back meanwhile, it is applied (created again) instead."""
        graph = await self._graph_for(update.registration_id)
        graph_id = folded.graph_id or update.activity_id
        external_id = update.external_id or folded.external_id
        if graph_id is None and external_id is not None:
            found = await _unless_missing(graph.find_activity(update.registration_id, external_id))
            graph_id = found.get("id") if found else None
        request_id = None
        if graph_id is not None:
            request_id = await _unless_missing(graph.delete_activity(update.registration_id, graph_id))
        now = utc_iso(self._clock())
        reason = str((update.event.get("@removed") or {}).get("reason") or "deleted")
        back: list[ActivityState] = []

        def withdrawn(row: ActivityState) -> ActivityState:
            row = row if row is folded else _fold(row, update, envelope)
            if row.merged.exists:  # a newer event came in meanwhile: the activity is to exist, created anew
                back.append(row)
                return replace(row, graph_id=None, status="pending")
            return replace(
                row,
                status="deleted",
                graph_id=None,
                deleted_at=now,
                deletion_reason=reason,
                applied={},
                applied_version=row.version,
                failed_values=None,
                unsure=False,
                last_error=None,
                next_attempt_at=None,
                last_attempt_at=now,
                last_request_id=request_id,
            )

        saved = await self._rewrite(update, withdrawn, first=folded)
        if back and saved is not None:
            return await self._apply(saved, update, envelope)
        logger.info(
            "message %s (%s) withdrew activity %s of provider %s",
            envelope.id,
            _origin(envelope),
            graph_id,
            update.registration_id,
            extra=_dimensions(envelope),
        )
        return Outcome("withdrawn", request_id=request_id)

    async def _record_applied(
        self, state: ActivityState, update: CourseActivityUpdate, envelope: Envelope, applied: _Applied
    ) -> ActivityState | None:
        """Saves the row as applied. Gives the row merged anew (to send again) when Graph may not hold the merge: it
        now holds values this PATCH did not carry, or the worker that wrote meanwhile sent other values, and its PATCH
        may have reached Graph after this one."""
        sent, applied_before = state.merged.values, state.applied
        resend: list[ActivityState] = []

        def mark_applied(row: ActivityState) -> ActivityState | None:
            if row is not state:  # read again after a conflict: merge the event in again and look
                row = _fold(row, update, envelope)
                other_sent = row.applied not in (applied_before, applied.body)
                if row.merged.values != sent or other_sent:
                    resend.append(row)
                    return None
            return applied.recorded_in(row)

        await self._rewrite(update, mark_applied, first=state)
        return resend[0] if resend else None

    # --- failures ---

    async def _failed(
        self, envelope: Envelope, update: CourseActivityUpdate, delivery: Delivery, failure: GraphFailure
    ) -> Outcome:
        reason = failure.reason()
        if not failure.retried:
            await self._record_failure(update, reason, "failed", failing=envelope)
            return self._dead_letter(envelope, delivery, reason)
        if failure.kind is Kind.THROTTLED:
            return await self._throttled(envelope, update, delivery, failure)
        final = delivery.dequeue_count >= self._max_dequeue_count
        next_at = None if final else utc_iso(self._clock() + self._retry_delay)
        await self._record_failure(
            update, reason, "failed" if final else "retrying", next_attempt_at=next_at, pending=envelope,
            unsure=failure.kind is Kind.UNSURE,
        )  # fmt: skip
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
        now = self._clock()
        first = _parse_time(envelope.first_attempt_at) or now
        attempt = envelope.attempt + 1
        delay = throttle_delay(attempt, failure.retry_after, self._settings.throttle_backoff_seconds)
        reason = failure.reason()
        if beyond_window(first, now, delay):
            reason["message"] += (
                f" (still throttled after {attempt} attempts over 24 hours; replay it once the cause is fixed)"
            )
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
        *,
        next_attempt_at: str | None = None,
        pending: Envelope | None = None,
        failing: Envelope | None = None,
        unsure: bool = False,
    ) -> None:
        """Best effort: the message's own fate (retry, requeue, dead letter) does not depend on this write.

        A timeout, a dropped connection or a 5xx leaves it open whether Graph applied the PATCH, perhaps late and
        after a newer one (`unsure`): the row is marked, and the next repeat reads Graph before it calls itself done.
        A `pending` event (one that will be tried again) is merged in, so the status shows what is waiting. A
        `failing` one (dead-lettered) is not: the row says `failed`, with the values that did not reach Graph, until
        a later update applies; replaying the dead letter brings them back."""
        now = utc_iso(self._clock())

        def failed(state: ActivityState) -> ActivityState:
            if pending is not None:
                state = _fold(state, update, pending)
            if failing is not None:
                state = replace(state, failed_values=_values_with(state, update, failing))
            keep_status = failing is None and state.up_to_date and state.etag
            return replace(
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
            await self._rewrite(update, failed)
        except Exception:
            logger.exception("could not record the failure in the activity state")

    def _dead_letter(self, envelope: Envelope, delivery: Delivery, reason: dict[str, Any]) -> Outcome:
        reason = {
            **reason,
            "at": utc_iso(self._clock()),
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
            "at": utc_iso(self._clock()),
            "attempts": delivery.dequeue_count,
            "messageId": delivery.message_id,
        }
        logger.error("message %s dead-lettered: %s", delivery.message_id, problem)
        keep = MAX_MESSAGE_BYTES // 8  # room for the escaping of any character, and the reason
        body = {"schemaVersion": SCHEMA_VERSION, "kind": KIND, "raw": text[:keep], "deadLetter": reason}
        if len(text) > keep:
            body["rawTruncated"] = True
        return Outcome("deadLettered", dead_letter=json.dumps(body))


@dataclass(frozen=True)
class _Applied:
    """A PATCH Graph accepted: where, what, its request id and when."""

    graph_id: str
    odata_type: str
    body: dict[str, Any]
    request_id: str | None
    at: str

    def recorded_in(self, state: ActivityState) -> ActivityState:
        return replace(
            state,
            graph_id=self.graph_id,
            odata_type=self.odata_type,
            applied=self.body,
            applied_version=state.version,
            status="applied",
            failed_values=None,
            last_applied_at=self.at,
            last_request_id=self.request_id,
            last_error=None,
            first_attempt_at=None,
            last_attempt_at=self.at,
            next_attempt_at=None,
        )


def _fold(state: ActivityState, update: CourseActivityUpdate, envelope: Envelope) -> ActivityState:
    """The row with the event merged in (not saved); unchanged if the row has seen the event."""
    if state.has_seen(envelope.id):
        return state
    if update.removed:
        merged = remove(state.merged, _stamp(envelope))
    else:
        merged = fold(state.merged, {**update.changes, **update.identity}, _stamp(envelope))
    # A newer stamp on the same value is no change; who the activity is about changes nothing in Graph.
    changed = merged.values != state.merged.values or merged.exists != state.merged.exists
    return replace(
        state.with_seen(envelope.id, update.fingerprint),
        merged=merged,
        version=state.version + 1 if changed else state.version,
        odata_type=state.odata_type or update.odata_type,
        external_id=state.external_id or update.external_id,
        status="pending" if changed else state.status,
    )


def _json_text(event: dict[str, Any]) -> bytes | str:
    """The event as JSON text again; json escapes the lone surrogates a bare event may hold, pydantic-core does not."""
    try:
        return to_json(event)
    except PydanticSerializationError:
        return json.dumps(event)


def _stamp(envelope: Envelope) -> Stamp:
    return Stamp(parse_instant(envelope.event_time), envelope.sequence, envelope.id)


async def _look_up(graph: Graph, state: ActivityState, update: CourseActivityUpdate) -> dict[str, Any]:
    """The activity as Graph holds it, read through the provider's own URLs: by the Graph id once it is known or
    when the event gives one, else by the external id."""
    graph_id = state.graph_id or update.activity_id
    if graph_id is not None:
        return await graph.get_activity(update.registration_id, graph_id)
    assert update.external_id is not None
    return await graph.find_activity(update.registration_id, update.external_id)


class _Refused(Exception):
    """The update cannot be applied as it stands: it is dead-lettered with this reason (never retried). Its values
    are merged all the same (`keep_merged`) where only the activity could not be created: a later event that can
    create it then carries them."""

    def __init__(self, reason: dict[str, Any], *, keep_merged: bool = False) -> None:
        super().__init__(reason["message"])
        self.reason = reason
        self.keep_merged = keep_merged


def _cannot_create(missing: list[str]) -> _Refused:
    names = " and ".join(missing)
    return _Refused(
        {
            "source": "graph",
            "status": 404,
            "code": "activityNotFound",
            "message": f"Graph has no such activity for this provider; it would be created (createMissing) with "
            f"{names}, which no event for it has given",
            "missing": missing,
        },
        keep_merged=True,
    )


def _exists_already(failure: GraphFailure) -> bool:
    """A create answered as a duplicate: 409 (unconfirmed for Graph), or 400 naming the external id."""
    if failure.kind is Kind.CONFLICT:
        return True
    return failure.kind is Kind.PERMANENT and "externalcourseActivityId" in failure.message


async def _unless_missing(call: Awaitable[_T]) -> _T | None:
    """The call's answer, or None where Graph has no such activity (for a withdrawal: already gone)."""
    try:
        return await call
    except GraphFailure as failure:
        if failure.kind is not Kind.NOT_FOUND:
            raise
        return None


def _identified(found: Mapping[str, Any], update: CourseActivityUpdate) -> tuple[str, str]:
    """The Graph id and type of an activity Graph gave, checked: this provider's, of the event's type."""
    graph_id, odata_type = found.get("id"), found.get("@odata.type") or update.odata_type
    if not (isinstance(graph_id, str) and graph_id and isinstance(odata_type, str) and odata_type in CHANGEABLE):
        message = "Graph's answer for the activity has no id or known @odata.type"
        raise GraphFailure(None, "invalidResponse", message, kind=Kind.PERMANENT)
    owner = found.get("learningProviderId")
    if isinstance(owner, str) and owner.lower() != update.registration_id.lower():
        raise _not_owned(update)
    if update.odata_type and odata_type != update.odata_type:
        raise _type_mismatch(odata_type)
    return graph_id, odata_type


def _body(state: ActivityState, event_changes: Mapping[str, Any], odata_type: str) -> dict[str, Any]:
    """What Graph is sent: the type's changeable properties of the merge (an xAPI startedDateTime never goes to an
    assignment), and the event's explicit nulls."""
    changeable = CHANGEABLE[odata_type]
    return {k: v for k, v in patch_body(state.merged, event_changes).items() if k in changeable}


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
    if update.removed:
        return {}
    return patch_body(fold(state.merged, update.changes, _stamp(envelope)), update.changes)


def _origin(envelope: Envelope) -> str:
    """Where a message came from, for log lines: the webhook id, the xAPI statement id, or the queue."""
    if envelope.webhook_id:
        return f"webhook {envelope.webhook_id}"
    if envelope.from_statement:
        return f"statement {envelope.id}"
    return f"{envelope.source} message"


def _skipped(envelope: Envelope, status: str, why: str) -> Outcome:
    logger.info("message %s (%s): %s", envelope.id, _origin(envelope), why, extra=_dimensions(envelope))
    return Outcome(status)


def _dimensions(envelope: Envelope, request_id: str | None = None) -> dict[str, Any]:
    """Log record dimensions (customDimensions in Application Insights)."""
    return {
        "webhookId": envelope.webhook_id,
        "registrationId": envelope.registration_id,
        "tenantId": current_tenant.get(),
        "graphRequestId": request_id,
    }


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
