"""Canvas Live Events in Canvas's own format (`{metadata, body}`), plain or signed, and the progress they carry.

Canvas's Caliper events go to the Caliper endpoint; only this format has course progress and completion:
| event (metadata.event_name)           | change                                                                 |
|---------------------------------------|------------------------------------------------------------------------|
| course_progress                       | inProgress, round(100*requirement_completed_count/requirement_count) %, |
|                                       | startedDateTime = event_time; completed when `completed_at` is set      |
| course_completed                      | completed, 100 %, completedDateTime = progress.completed_at ?? event_time |
| enrollment_created/_updated, a        | active, invited, creation_pending: an assignment (status notStarted,    |
|   StudentEnrollment by someone else   | assignedDateTime = created_at); deleted: a withdrawal (`removed`)       |
| anything else, other enrollment types | Skipped                                                                |
Canvas has no `enrollment_deleted` event: a deletion is `enrollment_updated` with `workflow_state` "deleted". A
self-enrollment is skipped: the learner's first progress starts the activity.

Who and what: the learner is `body.user.email` (course events), else the acting user's `user_login` /
`user_sis_id` from the metadata when the actor is that learner. Enrollment events name the enrollee only by Canvas
id, so their `learner` is None: they change an activity that exists and cannot create one. The content is the
course's IRI, `urn:instructure:canvas:course:<local id>` (the form Canvas's Caliper feed uses), through the caller's
`content_id`. Canvas sends global ids (shard * 10^13 + local id) in some bodies and local ids in others, and global
ids change when an account moves shard: ids are read as local ids, which Canvas keeps stable within an account.

Idempotency: the format has no event id, so `event_id` is a hash of the event (metadata and body); a redelivery is
the same event. The signed form ("Sign Payload") is a JWT (RS256) holding the event in its claims: `verify_jwt`
checks it against a given JWK set and tells an unknown `kid` (refresh the cached set, try again) from a bad
signature or an expired token. Unconfirmed: whether the claims are the event itself or hold it under one claim;
both are read (the event's `metadata` and `body` at the top level, else the one claim that holds them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
from pydantic import Field, ValidationError

from connector.domain.events import ASSIGNMENT, FieldError
from connector.domain.formats.mapped import (
    ContentId,
    FormatError,
    IdText,
    Instant,
    LearnerKind,
    Lenient,
    Mapped,
    MappedEvent,
    Skipped,
    Unmappable,
    activity_external_id,
    as_given,
    completed,
    email_of,
    field_errors,
    graph_time,
    hashed_id,
    in_progress,
    load_json,
    percentage,
)

_SHARD_FACTOR = 10**13
_CANVAS_IRI = re.compile(r"^(urn:instructure:canvas:[A-Za-z_]+:)([0-9]+)$")
ENROLLED_STATES = frozenset({"active", "invited", "creation_pending"})


def canvas_local_id(canvas_id: str) -> str:
    """A Canvas id as its local id: a global id (shard * 10^13 + local id) loses its shard."""
    if canvas_id.isascii() and canvas_id.isdigit() and len(canvas_id) > 13:
        return str(int(canvas_id) % _SHARD_FACTOR)
    return canvas_id


def canvas_local_iri(iri: str) -> str:
    """`urn:instructure:canvas:user:21070000000000048` as `urn:instructure:canvas:user:48`; other IRIs as given."""
    found = _CANVAS_IRI.match(iri)
    return found[1] + canvas_local_id(found[2]) if found else iri


class CanvasError(FormatError):
    """The body is not a Canvas Live Event, or breaks the format where the mapping depends on it."""


class CanvasTokenError(CanvasError):
    """The signed form does not verify (the caller answers 401)."""

    def __init__(self, rule: str) -> None:
        super().__init__([FieldError("body", "is invalid", rule)])


class BadSignatureError(CanvasTokenError):
    """Not a JWT, not RS256, or its signature does not match the key its `kid` names."""


class UnknownKeyError(CanvasTokenError):
    """The token names a key the set does not have: refresh the set (Instructure rotates keys monthly), try again."""

    def __init__(self, kid: str) -> None:
        super().__init__("the token is signed with a key that is not in Instructure's published key set")
        self.kid = kid


class ExpiredTokenError(CanvasTokenError):
    """The token's `exp` has passed."""


# --- The payload model. ---


class Metadata(Lenient):
    """What Canvas says about every event: its name and time, and the acting user on user-generated events."""

    event_name: str = Field(min_length=1)
    event_time: Instant
    user_id: IdText | None = None
    user_login: str | None = None
    user_sis_id: IdText | None = None
    root_account_uuid: str | None = None
    """The Canvas account (instance) the event comes from: Instructure signs every customer's events alike."""


class Course(Lenient):
    id: IdText | None = None


class Progress(Lenient):
    completed_at: Instant | None = None
    requirement_count: int | None = None
    requirement_completed_count: int | None = None


class User(Lenient):
    id: IdText | None = None
    email: str | None = None


class ProgressBody(Lenient):
    """`course_progress` and `course_completed`."""

    course: Course = Course()
    progress: Progress = Progress()
    user: User = User()


class EnrollmentBody(Lenient):
    """`enrollment_created` and `enrollment_updated`."""

    course_id: IdText | None = None
    user_id: IdText | None = None
    type: str | None = None
    workflow_state: str | None = None
    created_at: Instant | None = None


PROGRESS_EVENTS = frozenset({"course_progress", "course_completed"})
ENROLLMENT_EVENTS = frozenset({"enrollment_created", "enrollment_updated"})


class _Event(Lenient):
    metadata: Metadata
    body: dict[str, Any]


@dataclass(frozen=True)
class CanvasEvent:
    metadata: Metadata
    body: ProgressBody | EnrollmentBody | Mapping[str, Any]
    """The typed body of an event the mapping reads; other events' bodies as given."""
    event_id: str

    @property
    def name(self) -> str:
        return self.metadata.event_name

    @property
    def time(self) -> datetime:
        return self.metadata.event_time


def parse_event(body: bytes | str | Mapping[str, Any]) -> CanvasEvent:
    """Reads one unsigned event (the request body, or its JSON already decoded); raises CanvasError naming every
    bad field."""
    data = body if isinstance(body, Mapping) else load_json(body, CanvasError)
    if not isinstance(data, Mapping):
        raise CanvasError.one("body", "must be a Canvas Live Event: {metadata, body}")
    try:
        event = _Event.model_validate(data)
    except ValidationError as exc:
        raise CanvasError(field_errors(exc)) from None
    try:
        typed = _typed_body(event.metadata.event_name, event.body)
    except ValidationError as exc:
        raise CanvasError(field_errors(exc, "body")) from None
    said = json.dumps([data["metadata"], data["body"]], sort_keys=True, separators=(",", ":"), default=str)
    return CanvasEvent(event.metadata, typed, hashed_id("canvas", said))


def _typed_body(name: str, body: dict[str, Any]) -> ProgressBody | EnrollmentBody | dict[str, Any]:
    if name in PROGRESS_EVENTS:
        return ProgressBody.model_validate(body)
    if name in ENROLLMENT_EVENTS:
        return EnrollmentBody.model_validate(body)
    return body


_JWT = re.compile(r'^"?[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"?$')


def is_jwt(body: bytes | str) -> bool:
    """Whether the body is the signed form (a compact JWT, bare or as a JSON string) rather than JSON."""
    text = body.decode("ascii", "replace") if isinstance(body, bytes) else body
    return _JWT.match(text.strip()) is not None


def verify_jwt(token: bytes | str, jwks: Mapping[str, Any], *, leeway_seconds: float = 60) -> CanvasEvent:
    """The event a signed body holds, once its RS256 signature verifies against the key its `kid` names in `jwks`
    (a JWK set: `{"keys": [...]}`). Raises UnknownKeyError, ExpiredTokenError or BadSignatureError, and CanvasError
    when the verified claims are not an event."""
    return parse_event(held(verified_claims(token, jwks, leeway_seconds=leeway_seconds), ("metadata", "body")))


def verified_claims(token: bytes | str, jwks: Mapping[str, Any], *, leeway_seconds: float = 60) -> dict[str, Any]:
    """The claims of a token Instructure signed (a Live Event in Canvas's format, or Canvas's Caliper envelope),
    once its RS256 signature verifies against the key its `kid` names in `jwks`. Raises UnknownKeyError,
    ExpiredTokenError or BadSignatureError."""
    text = (token.decode("ascii", "replace") if isinstance(token, bytes) else token).strip().strip('"')
    try:
        header = jwt.get_unverified_header(text)
    except jwt.PyJWTError:
        raise BadSignatureError("must be a JSON Live Event or a JWT signed by Instructure (RS256)") from None
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise BadSignatureError("the token names no signing key (kid)")
    keys = jwks.get("keys")
    found = [k for k in keys if isinstance(k, Mapping) and k.get("kid") == kid] if isinstance(keys, list) else []
    if not found:
        raise UnknownKeyError(kid)
    try:
        key = jwt.PyJWK(dict(found[0]), algorithm="RS256").key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        raise BadSignatureError(f"the key set's key {kid!r} is not a usable RSA key") from None
    try:
        return dict(jwt.decode(text, key, algorithms=["RS256"], options={"verify_aud": False}, leeway=leeway_seconds))
    except jwt.ExpiredSignatureError:
        raise ExpiredTokenError("the token has expired (exp)") from None
    except jwt.PyJWTError:
        raise BadSignatureError("the token's signature does not verify with Instructure's key (RS256)") from None


def held(claims: Mapping[str, Any], names: tuple[str, ...]) -> Mapping[str, Any]:
    """What the claims carry (unconfirmed how Canvas nests it): the claims themselves when they have `names`, or the
    one claim that does."""
    if all(name in claims for name in names):
        return claims
    inside = [value for value in claims.values() if isinstance(value, Mapping) and names[0] in value]
    return inside[0] if len(inside) == 1 else claims


# --- The mapping. ---


def map_event(event: CanvasEvent, *, content_id: ContentId = as_given) -> Mapped:
    """The change one event makes, or why it makes none."""
    if isinstance(event.body, ProgressBody):
        return _course_progress(event, event.body, content_id)
    if isinstance(event.body, EnrollmentBody):
        return _enrollment(event, event.body, content_id)
    return Skipped(f"the Canvas event {event.name} carries no course progress")


def _course_progress(event: CanvasEvent, body: ProgressBody, content_id: ContentId) -> Mapped:
    named = _activity(body.user.id, "body.user.id", body.course.id, "body.course.id", content_id)
    if isinstance(named, Unmappable):
        return named
    external_id, content = named
    progress = body.progress
    if event.name == "course_completed" or progress.completed_at is not None:
        changes = completed(progress.completed_at or event.time)
    else:
        changes = in_progress(event.time)
        share = percentage(progress.requirement_completed_count or 0, progress.requirement_count or 0)
        if share is not None:
            changes["completionPercentage"] = share
    learner, kind = _learner(event, body.user)
    return MappedEvent(event.event_id, event.time, external_id, changes, learner, kind, content, None)


def _enrollment(event: CanvasEvent, body: EnrollmentBody, content_id: ContentId) -> Mapped:
    if body.type != "StudentEnrollment":
        return Skipped(f"a {body.type or 'typeless'} enrollment is not a learner's")
    if body.workflow_state != "deleted" and _is_actor(event, body.user_id):
        return Skipped("a self-enrollment: the learner's first progress starts the activity")
    named = _activity(body.user_id, "body.user_id", body.course_id, "body.course_id", content_id)
    if isinstance(named, Unmappable):
        return named
    external_id, content = named
    if body.workflow_state == "deleted":
        return MappedEvent(event.event_id, event.time, external_id, {}, None, None, content, None, removed=True)
    if body.workflow_state in ENROLLED_STATES:
        changes = {"status": "notStarted", "assignedDateTime": graph_time(body.created_at or event.time)}
        return MappedEvent(event.event_id, event.time, external_id, changes, None, None, content, ASSIGNMENT)
    return Skipped(f"an enrollment {body.workflow_state or 'without a state'} changes no activity")


def _activity(
    user_id: str | None, user_field: str, course_id: str | None, course_field: str, content_id: ContentId
) -> Unmappable | tuple[str, str]:
    """The activity's external id and content, or why the event cannot name it."""
    if not user_id:
        return Unmappable(user_field, "the event names no learner")
    if not course_id:
        return Unmappable(course_field, "the event names no course")
    content = content_id(f"urn:instructure:canvas:course:{canvas_local_id(course_id)}")
    if content is None:
        return Unmappable(course_field, "the course is not a content of this provider (contentIdPattern)")
    return activity_external_id(f"urn:instructure:canvas:user:{canvas_local_id(user_id)}", content), content


def _learner(event: CanvasEvent, user: User) -> tuple[str | None, LearnerKind | None]:
    """The learner's email, else the acting user's login or SIS id when the actor is the learner."""
    email = email_of(user.email)
    if email:
        return email, "email"
    if not _is_actor(event, user.id):
        return None, None
    login = email_of(event.metadata.user_login)
    if login:
        return login, "email"
    sis_id = (event.metadata.user_sis_id or "").strip()
    return (sis_id, "employeeId") if sis_id else (None, None)


def _is_actor(event: CanvasEvent, user_id: str | None) -> bool:
    actor = event.metadata.user_id
    return bool(actor and user_id) and canvas_local_id(actor or "") == canvas_local_id(user_id or "")
