"""What every platform format maps to: one change to one learner's course activity, or the reason there is none.

- `MappedEvent`: the change, named by an idempotency key (`event_id`) and ordered by `event_time`, for the activity
  `external_id` names. The merge (connector.domain.merge) folds it with the activity's other events in any order.
- `Skipped`: the event carries no progress (a login, a teacher's action): acknowledged, nothing queued.
- `Unmappable`: the event is well formed but cannot name its activity (no learner reference, no content, a content
  the provider's `contentIdPattern` does not match). It is not the request's fault, and platforms retry every error
  answer (SCORM Cloud 70 times, Caliper senders until they get a 200), so the caller answers as for the others and
  dead-letters it with `field` and `reason`, where an operator sees why.
- `FormatError` (each module has its own subclass): the body is not the format, or breaks it where the mapping
  depends on it. This one is the request's fault: the caller answers 400 with the fields.

Everything here is pure: no I/O, no clock (a caller that needs "now" passes it).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError

from connector.domain.events import CHANGEABLE, STATUSES, EventValidationError, FieldError, format_graph_date_time

LearnerKind = Literal["email", "employeeId"]
#: The provider's content externalId for a resource IRI, or None when the IRI is not one of its contents. The caller
#: builds it from the provider's `contentIdPattern` (applied with a linear-time regex engine).
ContentId = Callable[[str], str | None]


def as_given(iri: str) -> str:
    """The content id when the provider has no `contentIdPattern`: the IRI itself."""
    return iri


@dataclass(frozen=True)
class MappedEvent:
    """One platform event as the change it makes to one course activity.

    `changes` holds Graph's changeable properties as Graph's JSON writes them. It may hold properties only an
    assignment has (`assignedDateTime`, `dueDateTime`, status `notStarted`) when the format says them but not the
    activity's type: `changes_for` keeps what a given type has.
    """

    event_id: str
    """The per-format idempotency key: a redelivery of the same event has the same one."""
    event_time: datetime
    """The ordering stamp (aware, UTC): when the platform says it happened, never when it arrived."""
    external_id: str
    """Graph's externalcourseActivityId: derived, stable, naming no one (a hash); a caller that maps it replaces it."""
    changes: dict[str, Any]
    learner: str | None
    """What identifies the learner to create the activity: None when the payload names the learner only by the
    platform's own id (the event then changes an activity that exists, and cannot create one)."""
    learner_kind: LearnerKind | None
    """How to look `learner` up: "email" (userPrincipalName or mail) or "employeeId" (an SIS or HR id)."""
    content: str | None
    """The provider's content externalId; None when the payload does not say (the activity must exist)."""
    odata_type: str | None
    """The activity's type as Graph knows it, or None when the format does not tell (the provider's default)."""
    removed: bool = False
    """A withdrawal (the learner was unenrolled): the activity is to be deleted, ordered like any event."""

    def changes_for(self, odata_type: str) -> dict[str, Any]:
        """The changes an activity of `odata_type` has (a self-initiated course has no `notStarted`, no dates of
        assignment)."""
        kept = {name: value for name, value in self.changes.items() if name in CHANGEABLE[odata_type]}
        if "status" in kept and kept["status"] not in STATUSES[odata_type]:
            del kept["status"]
        return kept


@dataclass(frozen=True)
class Skipped:
    """An event that carries no progress: acknowledged, nothing queued."""

    reason: str


@dataclass(frozen=True)
class Unmappable:
    """A well-formed event whose activity cannot be named: dead-lettered with the field and the reason."""

    field: str
    reason: str


Mapped = MappedEvent | Skipped | Unmappable


class FormatError(EventValidationError):
    """The body is not the format, or breaks it where the mapping depends on it; `errors` names each field."""

    @classmethod
    def one(cls, field: str, rule: str, problem: Literal["is required", "is invalid"] = "is invalid") -> FormatError:
        return cls([FieldError(field, problem, rule)])


def load_json(body: bytes | str, error: type[FormatError]) -> Any:
    """The body's JSON, or `error` naming the body."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise error.one("body", "must be a JSON object (UTF-8)") from None


_MAX_PATH = 200


def field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    """pydantic's errors as one FieldError per field, named by its JSON path (`data[0].object.assignee.id`)."""
    found: dict[str, FieldError] = {}
    for detail in exc.errors():
        path = prefix
        for part in detail["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            elif not str(part).startswith("function-"):
                path += f".{part}" if path else str(part)
        path = path or "body"
        if len(path) > _MAX_PATH:  # a body nested a thousand deep names its field by where it starts
            path = path[:_MAX_PATH] + "..."
        problem: Literal["is required", "is invalid"] = "is required" if detail["type"] == "missing" else "is invalid"
        rule = str(detail.get("msg", "")).removeprefix("Value error, ")
        found.setdefault(path, FieldError(path, problem, rule))
    return list(found.values())


# --- Values as the formats send them, leniently. ---


class Lenient(BaseModel):
    """A payload model that reads the properties the mapping needs and ignores the rest (senders add their own)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def utc(moment: datetime) -> datetime:
    """An instant on the UTC clock; a time without an offset is taken as UTC, as senders mean it."""
    try:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("must be a date-time between the years 1 and 9999") from None
    if not _EARLIEST < moment < _LATEST:
        raise ValueError("must be a date-time between the years 1 and 9999")
    return moment


#: A date-time in any ISO 8601 form pydantic reads, as an aware UTC instant.
Instant = Annotated[datetime, AfterValidator(utc)]


def _id_text(value: Any) -> Any:
    """Ids arrive as strings or numbers (Canvas sends both): one text form."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value.strip() if isinstance(value, str) else value


#: An identifier given as a string or an integer, as text.
IdText = Annotated[str, BeforeValidator(_id_text)]


def graph_time(moment: datetime) -> str:
    """A DateTimeOffset as Graph's JSON writes it: ISO 8601 with the offset."""
    return utc(moment).isoformat()


def graph_due(moment: datetime) -> dict[str, str]:
    """A dueDateTime: Graph's dateTimeTimeZone, in UTC."""
    return {"dateTime": format_graph_date_time(moment), "timeZone": "UTC"}


def percentage(part: float, whole: float) -> int | None:
    """`part` of `whole` as Graph's integer percentage (clamped to 0-100), or None when it means nothing."""
    if not (math.isfinite(part) and math.isfinite(whole)) or whole <= 0:
        return None
    return min(100, max(0, round(100 * part / whole)))


def in_progress(started: datetime | None) -> dict[str, Any]:
    """The learner has started: status, and the start where the event tells it (the merge keeps the earliest)."""
    changes: dict[str, Any] = {"status": "inProgress"}
    if started is not None:
        changes["startedDateTime"] = graph_time(started)
    return changes


def completed(at: datetime, started: datetime | None = None) -> dict[str, Any]:
    """The learner has completed: 100 %, when, and the start where the event tells it."""
    changes = {"status": "completed", "completionPercentage": 100, "completedDateTime": graph_time(at)}
    if started is not None:
        changes["startedDateTime"] = graph_time(started)
    return changes


def email_of(text: str | None) -> str | None:
    """A learner's email (or userPrincipalName), lower-case, when `text` is one."""
    if not text:
        return None
    address = text.strip().removeprefix("mailto:")
    local, at, domain = address.partition("@")
    if not (local and at and domain) or any(char.isspace() for char in address):
        return None
    return address.lower()


def hashed_id(prefix: str, *parts: str) -> str:
    """A stable id derived from `parts` that names no one (they may hold an email or a user id)."""
    named = "\n".join(parts).encode("utf-8", "surrogatepass")
    return f"{prefix}-{hashlib.sha256(named).hexdigest()[:40]}"


def activity_external_id(learner_key: str, content: str) -> str:
    """The externalcourseActivityId of a learner's activity on a content: one per pair, whichever format (and
    whichever sensor of the platform) reports it, as the xAPI path derives its own."""
    return hashed_id("act", learner_key, content)
