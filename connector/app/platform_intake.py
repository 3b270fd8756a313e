"""What the platforms' own endpoints share (IMS Caliper, SCORM Cloud postbacks, Canvas Live Events): the request,
the queue message of each mapped event, the dead letter of each event that cannot be applied, and sending them all
or none.

A platform takes any answer but a 2xx as a failure and sends again (SCORM Cloud up to 70 times, Caliper senders
until they get a 200, Canvas 3 times, counting it towards switching the subscription off). So an event that is well
formed but cannot name its activity (`Unmappable`: no learner or resource reference, a content the provider's
contentIdPattern does not match) is not answered with an error: it goes to the poison queue, in the envelope's shape
with `deadLetter` {source, status, code, message, field}, where `replay --dry-run` lists it.

Personal data: a message carries the learner's email or employee id, and the content, only for a provider with
`createMissing` (the worker finds whom and what to create the activity for by them); never a display name. A dead
letter carries the field and the reason, never the platform's payload.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connector.app.logsafe import LogSampler, untrusted
from connector.app.lookups import content_in
from connector.app.ports import KeySets, KeySetUnavailable, Send
from connector.app.replies import MAX_BODY_BYTES, Reply, error_reply, first_oversized, withheld_body
from connector.app.tracing import traceparent
from connector.domain.envelope import MAX_MESSAGE_BYTES, Envelope, now_iso, utc_iso
from connector.domain.events import SELF_INITIATED, FieldError
from connector.domain.formats.canvas import CanvasTokenError, UnknownKeyError, verified_claims
from connector.domain.formats.mapped import ContentId, Mapped, MappedEvent, Skipped, Unmappable
from connector.settings import ProviderSettings

logger = logging.getLogger(__name__)

#: How many field errors a dead letter lists (the worker's own dead letters list as many).
_MAX_DETAILS = 20
#: The platforms' routes are anonymous at the platform: their rejections are logged 10 a minute at most, together.
_ANONYMOUS_REJECTIONS = LogSampler(per_window=10, window=60.0)
#: How long Canvas should wait before sending again when Instructure's key set cannot be fetched.
_RETRY_AFTER_SECONDS = 60


@dataclass(frozen=True)
class PlatformRequest:
    """What a platform's HTTP function hands over: headers with lower-case names, and the raw body."""

    registration_id: str
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name, "")

    @property
    def media_type(self) -> str:
        return self.header("content-type").split(";")[0].strip().lower()


@dataclass(frozen=True)
class Queues:
    """Where accepted events go: the update queue, and the poison queue for those that cannot be applied."""

    updates: Send
    poison: Send


def unauthorized(source: str, request: PlatformRequest, message: str, challenge: str) -> Reply:
    """401, logged sampled and escaped (the registrationId is the caller's): the same for an unknown provider."""
    _ANONYMOUS_REJECTIONS.warning(
        logger, "%s request rejected (401) for registrationId %s", source, untrusted(request.registration_id, 64)
    )
    return error_reply(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


def unreadable_size(request: PlatformRequest) -> Reply | None:
    """413 for a body over the limit, 411 for a chunked one the host withheld; None when the body is there."""
    if len(request.body) > MAX_BODY_BYTES:
        return error_reply(413, "payloadTooLarge", f"The body exceeds {MAX_BODY_BYTES} bytes.")
    return withheld_body(request.headers, request.body)


class Refused(Exception):
    """The request is refused before its events are read: the answer."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


async def instructure_claims(
    source: str, provider: ProviderSettings, key_sets: KeySets, request: PlatformRequest
) -> dict[str, Any]:
    """The claims of a body Canvas signed ("Sign Payload": a Live Event, or its Caliper envelope), verified against
    the provider's canvasJwksUrl; the set is fetched again when the token names a key it lacks (Instructure rotates
    its keys monthly). Raises Refused: 401 when it does not verify, 503 when the key set cannot be fetched."""
    challenge = f'Bearer realm="{source}"'
    url = provider.canvas_jwks_url
    if url is None:
        message = "Signed events cannot be verified for this provider: it has no canvasJwksUrl."
        raise Refused(unauthorized(source, request, message, challenge))
    try:
        try:
            return verified_claims(request.body, await key_sets.key_set(url))
        except UnknownKeyError:
            return verified_claims(request.body, await key_sets.key_set(url, refresh=True))
    except CanvasTokenError as exc:
        message = f"The signed event does not verify: {exc.errors[0].rule}."
        raise Refused(unauthorized(source, request, message, challenge)) from None
    except KeySetUnavailable as exc:
        reply = error_reply(
            503,
            "keySetUnavailable",
            f"Instructure's key set cannot be fetched now ({exc}); send the event again later.",
            headers={"Retry-After": str(_RETRY_AFTER_SECONDS)},
        )
        raise Refused(reply) from None


def other_canvas_account(provider: ProviderSettings, accounts: list[str | None]) -> Reply | None:
    """403 when the provider names its Canvas accounts (canvasRootAccountUuids) and an event comes from another."""
    own = provider.canvas_root_account_uuids
    if not own or all(account in own for account in accounts):
        return None
    return error_reply(
        403,
        "forbidden",
        "The event comes from a Canvas account this provider does not name in canvasRootAccountUuids "
        "(the event's root_account_uuid).",
    )


def content_id_for(provider: ProviderSettings) -> ContentId:
    """The provider's content externalId in a resource's IRI (its contentIdPattern), for the formats' mappers."""
    pattern = provider.content_id_pattern
    return lambda iri: content_in(pattern, iri)


def mapped_envelope(
    provider: ProviderSettings,
    mapped: MappedEvent,
    *,
    source: str,
    received_at: str,
    sequence: int = 0,
    extra: Mapping[str, Any] | None = None,
) -> Envelope | None:
    """The queue message of one platform event (live, or backfilled), or None when it changes nothing the worker can
    apply: an event that does not know its activity's type leaves the type to Graph, and carries only what both
    types take (a status of notStarted, and the dates of an assignment, need the event to know it is one)."""
    changes = mapped.changes_for(mapped.odata_type or SELF_INITIATED)
    if not changes and not mapped.removed:
        return None
    event: dict[str, Any] = {"externalcourseActivityId": mapped.external_id, **changes}
    if mapped.odata_type is not None:
        event["@odata.type"] = mapped.odata_type
    if mapped.removed:
        event["@removed"] = {"reason": "deleted"}
    context = dict(extra or {})
    if provider.create_missing:  # what finds the learner and the content to create the activity for, and only then
        if mapped.learner is not None and mapped.learner_kind is not None:
            event["learnerUserId"] = mapped.learner
            context["learnerMatch"] = mapped.learner_kind
        if mapped.content is not None:
            event["learningContentId"] = mapped.content
    return Envelope(
        id=mapped.event_id,
        registration_id=provider.registration_id,
        event=event,
        source=source,
        event_time=utc_iso(mapped.event_time),
        sequence=sequence,
        received_at=received_at,
        extra=context,
    )


def dead_letter(
    provider: ProviderSettings,
    errors: list[FieldError],
    *,
    source: str,
    event_id: str,
    event_time: datetime,
    received_at: str,
    code: str,
    status: int,
) -> Envelope:
    """A platform event that cannot be applied, as the worker writes its own dead letters: the envelope, no event
    values, and `deadLetter` naming the field and the rule."""
    first = errors[0]
    reason: dict[str, Any] = {
        "source": source,
        "status": status,
        "code": code,
        "message": f"{first.message} ({first.rule})",
        "field": first.field,
        "at": received_at,
        "attempts": 0,
    }
    if len(errors) > 1:
        reason["details"] = [error.to_detail() for error in errors[:_MAX_DETAILS]]
    return Envelope(
        id=event_id,
        registration_id=provider.registration_id,
        event={},
        source=source,
        event_time=utc_iso(event_time),
        received_at=received_at,
        dead_letter=reason,
    )


@dataclass
class Intake:
    """The messages one request makes: each event mapped and queued, skipped, or dead-lettered; sent all or none."""

    provider: ProviderSettings
    source: str
    received_at: str = field(default_factory=now_iso)
    trace: dict[str, str] = field(default_factory=traceparent)
    """The request's trace context: the worker's spans join it across the queue."""
    updates: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    """The event ids of the updates, in order."""
    dead_letters: list[str] = field(default_factory=list)
    skipped: int = 0

    def add(self, mapped: Mapped, *, event_id: str, event_time: datetime, sequence: int = 0) -> None:
        """One mapped event: queued, skipped (no progress in it), or dead-lettered (it cannot name its activity)."""
        if isinstance(mapped, Skipped):
            self.skipped += 1
        elif isinstance(mapped, Unmappable):
            errors = [FieldError(mapped.field, "is invalid", mapped.reason)]
            self.refuse(errors, event_id=event_id, event_time=event_time, code="unmappable", status=422)
        else:
            envelope = mapped_envelope(
                self.provider,
                mapped,
                source=self.source,
                received_at=self.received_at,
                sequence=sequence,
                extra=self.trace,
            )
            if envelope is None:
                self.skipped += 1
            else:
                self.updates.append(envelope.to_json())
                self.ids.append(mapped.event_id)

    def refuse(
        self,
        errors: list[FieldError],
        *,
        event_id: str,
        event_time: datetime,
        code: str = "badRequest",
        status: int = 400,
    ) -> None:
        """An event (or a whole body) that cannot be applied, from a sender who may post: a dead letter."""
        letter = dead_letter(
            self.provider,
            errors,
            source=self.source,
            event_id=event_id,
            event_time=event_time,
            received_at=self.received_at,
            code=code,
            status=status,
        )
        self.dead_letters.append(letter.to_json())

    @property
    def counts(self) -> dict[str, int]:
        return {"accepted": len(self.updates), "skipped": self.skipped, "deadLettered": len(self.dead_letters)}

    async def send(self, queues: Queues) -> Reply | None:
        """Every message, each measured before the first is sent (all or none): a 413 when one is too large."""
        if first_oversized([*self.updates, *self.dead_letters]) is not None:
            return error_reply(
                413,
                "payloadTooLarge",
                f"An event is too large for the queue once mapped ({MAX_MESSAGE_BYTES} bytes at most).",
            )
        for message in self.updates:
            await queues.updates(message)
        for message in self.dead_letters:
            await queues.poison(message)
        registration_id = self.provider.registration_id
        logger.info(
            "%s: %d event(s) queued, %d skipped (no progress), %d dead-lettered for provider %s",
            self.source,
            len(self.updates),
            self.skipped,
            len(self.dead_letters),
            registration_id,
            extra={"registrationId": registration_id},
        )
        return None
