"""IMS Caliper Analytics 1.1 and 1.2 envelopes, as LMSs send them, and the learner progress their events carry.

An envelope is `{sensor, sendTime, dataVersion, data[]}`; `data` mixes events and entity "describes", and any
entity may be an object or just its IRI (resolved here through the envelope's describes). `parse_envelope` raises
`CaliperError` naming the field: `status` 400 for a malformed envelope, 422 for a `dataVersion` other than 1.1/1.2.

Leniency, for senders seen bending the spec: a bare UUID as `sensor` or event `id` (Blackboard), ids given as
numbers, `dataVersion` with `https` or a trailing slash, type and action terms given as full IRIs, times without an
offset (taken as UTC), durations as seconds or `HH:MM:SS` as well as ISO 8601, unknown properties ignored.

Mapping (`map_event`), per the project notes; `completion` is the provider's `caliperCompletion`:
| event                                    | change                                                               |
|------------------------------------------|----------------------------------------------------------------------|
| Assignable/AssessmentEvent Started,      | inProgress; startedDateTime = the Attempt's startedAtTime ?? eventTime |
|   Resumed, Restarted, Paused             |                                                                      |
| Assignable/AssessmentEvent Submitted     | completed when `completion` is Submitted, else inProgress             |
| AssignableEvent Completed                | completed unless `completion` is Graded (then inProgress)             |
|   (completed: 100 %, completedDateTime = the Attempt's endedAtTime ?? eventTime)                                |
| GradeEvent Graded                        | completed at eventTime when `completion` is Graded or Submitted (a   |
|                                          | grade implies the submission); skipped under Completed. The learner  |
|                                          | is `object.assignee`, not the actor (a grader or an autograder)      |
| ToolUseEvent with a UnitsCompleted       | inProgress with round(100*metricValue/maxMetricValue) %; completed    |
|   measure (1.2 AggregateMeasureCollection) | at eventTime when the value reaches the maximum                   |
| MediaEvent                               | inProgress; % = target.currentTime / object.duration when both given |
|                                          | (Ended does not complete: no setting asks for it)                    |
| NavigationEvent, ViewEvent               | inProgress, startedDateTime = eventTime ("first touch": the merge    |
|                                          | keeps the earliest, so later views change nothing)                   |
| SessionEvent, Activated/Deactivated/     | Skipped with the reason                                              |
|   Reviewed/Reset, anything else          |                                                                      |
The resource's `dateToActivate` / `dateToSubmit`, when an event carries them, become assignedDateTime / dueDateTime
(kept only for assignments: `MappedEvent.changes_for`).

Who and what: the learner's identity for creating the activity comes from Caliper 1.2 `otherIdentifiers`
(EmailAddress, AccountUserName holding an address → email; SisSourcedId, LisSourcedId, OneRosterSourcedId →
employeeId), Canvas's `extensions["com.instructure.canvas"]` (`user_login` → email; `user_sis_id`, `sis_id` →
employeeId) or Blackboard's `bb:user.externalId` (→ employeeId); emails first. Without one, `learner` is None: the
learner's IRI still names the activity, so the event updates it once another event (or the provider) created it.
The content is the resource's IRI (`object.id`, or `object.assignable.id` when the object is an Attempt) through
the caller's `content_id`. A progress event whose learner or resource has no IRI, or whose IRI is not a content of
the provider, is Unmappable; a view or media event on a resource that is not a content is Skipped (pages and videos
that are not courses would otherwise fill the dead letters).

The activity is named by (learner IRI, content), not by sensor: a platform may run several sensors. Canvas's global
ids (`urn:instructure:canvas:user:21070000000000048`) are read as their local ids, which survive shard migrations.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator, Field, ValidationError

from connector.domain.events import FieldError
from connector.domain.formats.canvas import canvas_local_iri
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
    graph_due,
    graph_time,
    in_progress,
    load_json,
    percentage,
)

V1P1 = "http://purl.imsglobal.org/ctx/caliper/v1p1"
V1P2 = "http://purl.imsglobal.org/ctx/caliper/v1p2"
SUPPORTED_VERSIONS = (V1P1, V1P2)

Completion = Literal["Completed", "Submitted", "Graded"]
COMPLETIONS: tuple[str, ...] = get_args(Completion)
#: The actions that complete the activity under each `caliperCompletion`.
_COMPLETING: Mapping[str, frozenset[str]] = {
    "Completed": frozenset({"Completed"}),
    "Submitted": frozenset({"Submitted", "Completed", "Graded"}),
    "Graded": frozenset({"Graded"}),
}
#: The changes an event makes, and whether it counts as progress (a content miss is then Unmappable, not Skipped).
Progress = tuple[dict[str, Any], bool]
_STARTING = frozenset({"Started", "Resumed", "Restarted", "Paused"})
_EMAIL_TYPES = ("EmailAddress", "AccountUserName")
_EMPLOYEE_ID_TYPES = ("SisSourcedId", "LisSourcedId", "OneRosterSourcedId")


class CaliperError(FormatError):
    """A malformed envelope (`status` 400) or one of a Caliper version the connector does not read (422)."""

    def __init__(self, errors: list[FieldError], status: Literal[400, 422] = 400) -> None:
        super().__init__(errors)
        self.status = status


def endpoint_configuration(max_payload_kilobytes: int) -> dict[str, Any]:
    """What the endpoint answers to GET, as the spec's §6 shows it."""
    return {
        "caliperMaximumPayloadSize": max_payload_kilobytes,
        "caliperSupportedVersions": list(SUPPORTED_VERSIONS),
        "caliperSupportedExtensions": {},
    }


# --- The payload model. ---

_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


def _seconds(value: Any) -> Any:
    """A duration or media position: ISO 8601 (`PT5M21S`) as the spec says, or seconds, or `HH:MM:SS`."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return value
    text = value.strip().upper()
    found = _DURATION.match(text)
    if found and text not in ("P", "PT") and not text.endswith("T"):
        days, hours, minutes, seconds = (float(found[part] or 0) for part in "dhms")
        return ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    clock = _CLOCK.match(text)
    if clock:
        return (float(clock[1] or 0) * 60 + float(clock[2])) * 60 + float(clock[3])
    raise ValueError("must be an ISO 8601 duration, e.g. PT5M21S")


def _entity_object(value: Any) -> Any:
    """An entity given as just its IRI."""
    return {"id": value} if isinstance(value, str) else value


Seconds = Annotated[float, BeforeValidator(_seconds)]


class SystemIdentifier(Lenient):
    """Caliper 1.2's other identifiers of an entity (an email address, an SIS id...)."""

    identifier: IdText
    identifier_type: str = Field(alias="identifierType")


class Entity(Lenient):
    """Any Caliper entity: only the properties the mapping reads (Person, Attempt, AssignableDigitalResource,
    MediaObject, MediaLocation, AggregateMeasure...). One model, because senders differ in which type they name."""

    id: IdText | None = None
    type: str | None = None
    assignee: EntityRef | None = None
    assignable: EntityRef | None = None
    started_at: Instant | None = Field(None, alias="startedAtTime")
    ended_at: Instant | None = Field(None, alias="endedAtTime")
    date_to_activate: Instant | None = Field(None, alias="dateToActivate")
    date_to_submit: Instant | None = Field(None, alias="dateToSubmit")
    duration: Seconds | None = None
    current_time: Seconds | None = Field(None, alias="currentTime")
    items: list[EntityRef] | None = None
    metric: str | None = None
    metric_value: float | None = Field(None, alias="metricValue")
    max_metric_value: float | None = Field(None, alias="maxMetricValue")
    other_identifiers: list[SystemIdentifier] | None = Field(None, alias="otherIdentifiers")
    extensions: dict[str, Any] | None = None

    @property
    def reference_only(self) -> bool:
        """Given as just its IRI: its description, if any, is elsewhere in the envelope."""
        return self.model_fields_set == {"id"}


EntityRef = Annotated[Entity, BeforeValidator(_entity_object)]
Entity.model_rebuild()


class Event(Lenient):
    """A Caliper event: the properties the mapping reads."""

    id: IdText = Field(min_length=1)
    type: str = Field(min_length=1)
    action: str = Field(min_length=1)
    actor: EntityRef
    object: EntityRef
    event_time: Instant = Field(alias="eventTime")
    generated: EntityRef | None = None
    target: EntityRef | None = None
    extensions: dict[str, Any] | None = None

    @property
    def canvas_root_account(self) -> str | None:
        """The Canvas account a Canvas event comes from (its `com.instructure.canvas` extension's
        root_account_uuid), or None."""
        canvas = (self.extensions or {}).get("com.instructure.canvas")
        account = canvas.get("root_account_uuid") if isinstance(canvas, Mapping) else None
        return account if isinstance(account, str) else None


class _EnvelopeFields(Lenient):
    sensor: IdText = Field(min_length=1)
    send_time: Instant = Field(alias="sendTime")
    data_version: str = Field(alias="dataVersion")
    data: list[Any] = Field(min_length=1)


@dataclass(frozen=True)
class Envelope:
    sensor: str
    send_time: datetime
    data_version: str
    events: tuple[Event, ...]
    entities: Mapping[str, Entity] = field(default_factory=dict)
    """The envelope's entity describes, by IRI: what events that name an entity by IRI alone refer to."""


def parse_envelope(body: bytes | str | Mapping[str, Any]) -> Envelope:
    """Reads one envelope (the request body, or its JSON already decoded); raises CaliperError naming every bad
    field, with `status` 422 when the `dataVersion` is one the connector does not read."""
    data = body if isinstance(body, Mapping) else load_json(body, CaliperError)
    if not isinstance(data, Mapping):
        raise CaliperError.one("body", "must be a Caliper envelope: {sensor, sendTime, dataVersion, data}")
    version = data.get("dataVersion")
    if isinstance(version, str) and _supported(version) is None:
        rule = f"must be {V1P1} or {V1P2}"
        raise CaliperError([FieldError("dataVersion", "is invalid", rule)], status=422)
    try:
        fields = _EnvelopeFields.model_validate(data)
    except ValidationError as exc:
        raise CaliperError(field_errors(exc)) from None
    events: list[Event] = []
    entities: dict[str, Entity] = {}
    errors: list[FieldError] = []
    for index, item in enumerate(fields.data):
        at = f"data[{index}]"
        if isinstance(item, str):  # an entity given by IRI alone describes nothing
            continue
        if not isinstance(item, Mapping):
            errors.append(FieldError(at, "is invalid", "must be an event or an entity (a JSON object, or an IRI)"))
            continue
        try:
            if _is_event(item):
                events.append(Event.model_validate(item))
            else:
                entity = Entity.model_validate(item)
                if entity.id:
                    entities[entity.id] = entity
        except ValidationError as exc:
            errors.extend(field_errors(exc, at))
    if errors:
        raise CaliperError(errors)
    return Envelope(fields.sensor, fields.send_time, _supported(fields.data_version) or V1P2, tuple(events), entities)


def _supported(version: str) -> str | None:
    """The supported version `version` names (`https` and a trailing slash allowed), or None."""
    normal = version.strip().rstrip("/").lower().replace("https://", "http://", 1)
    return normal if normal in SUPPORTED_VERSIONS else None


def _is_event(item: Mapping[str, Any]) -> bool:
    return "action" in item or "eventTime" in item or _term(item.get("type")).endswith("Event")


def _term(value: Any) -> str:
    """A type or action term: `AssignableEvent` also when given as its IRI (`http://purl.imsglobal.org/...#Event`)."""
    if not isinstance(value, str):
        return ""
    return value.rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1]


# --- The mapping. ---


def map_envelope(
    envelope: Envelope, *, completion: Completion = "Completed", content_id: ContentId = as_given
) -> list[Mapped]:
    """Each event of the envelope mapped (entity describes are not events): in the envelope's order."""
    return [
        map_event(event, completion=completion, content_id=content_id, entities=envelope.entities)
        for event in envelope.events
    ]


def map_event(
    event: Event,
    *,
    completion: Completion = "Completed",
    content_id: ContentId = as_given,
    entities: Mapping[str, Entity] | None = None,
) -> Mapped:
    """The change one event makes, or why it makes none."""
    described = entities or {}
    progress = _progress(event, completion, described)
    if isinstance(progress, Skipped):
        return progress
    changes, counts = progress
    learner_field, learner = _learner(event, described)
    if learner is None or not learner.id:
        return Unmappable(f"{learner_field}.id", f"the event names no learner ({learner_field} has no IRI)")
    resource_field, resource = _resource(event, described)
    if resource is None or not resource.id:
        return Unmappable(f"{resource_field}.id", f"the event names no resource ({resource_field} has no IRI)")
    content = content_id(canvas_local_iri(resource.id))
    if content is None:
        reason = f"{resource_field}.id is not a content of this provider (its contentIdPattern does not match)"
        return Unmappable(f"{resource_field}.id", reason) if counts else Skipped(reason)
    changes.update(_assignment_dates(resource))
    identity = _identity(learner)
    return MappedEvent(
        event_id=normal_event_id(event.id),
        event_time=event.event_time,
        external_id=activity_external_id(canvas_local_iri(learner.id), content),
        changes=changes,
        learner=identity[0] if identity else None,
        learner_kind=identity[1] if identity else None,
        content=content,
        odata_type=None,
    )


def _progress(event: Event, completion: Completion, described: Mapping[str, Entity]) -> Skipped | Progress:
    """The changes the event makes, or why it makes none."""
    kind, action = _term(event.type), _term(event.action)
    attempt = _attempt(event, described)
    started = attempt.started_at if attempt else None
    if kind in ("AssignableEvent", "AssessmentEvent") and action in _STARTING:
        return in_progress(started or event.event_time), True
    if kind in ("AssignableEvent", "AssessmentEvent") and action in ("Submitted", "Completed"):
        if action in _COMPLETING[completion]:
            return completed((attempt.ended_at if attempt else None) or event.event_time, started), True
        return in_progress(started or event.event_time), True
    if kind == "GradeEvent" and action == "Graded":
        if action in _COMPLETING[completion]:
            return completed(event.event_time, started), True
        return Skipped("a grade completes the activity only under caliperCompletion Graded or Submitted")
    if kind == "ToolUseEvent":
        return _units_completed(event, described)
    if kind == "MediaEvent":
        return _media_position(event, described), False
    if kind in ("NavigationEvent", "ViewEvent"):
        return in_progress(event.event_time), False
    return Skipped(f"{kind or 'an event'} {action} carries no learner progress")


def _units_completed(event: Event, described: Mapping[str, Entity]) -> Skipped | Progress:
    generated = _resolved(event.generated, described)
    measures = [_resolved(item, described) for item in (generated.items or [])] if generated else []
    units = next((m for m in measures if m and _term(m.metric) == "UnitsCompleted"), None)
    if units is None or units.metric_value is None:
        return Skipped("a ToolUseEvent without a UnitsCompleted measure carries no progress")
    value, maximum = units.metric_value, units.max_metric_value
    if maximum is not None and 0 < maximum <= value:
        return completed(event.event_time, units.started_at), True
    changes = in_progress(units.started_at or event.event_time)
    share = percentage(value, maximum) if maximum is not None else None
    if share is not None:
        changes["completionPercentage"] = share
    return changes, True


def _media_position(event: Event, described: Mapping[str, Entity]) -> dict[str, Any]:
    changes = in_progress(event.event_time)
    media, location = _resolved(event.object, described), _resolved(event.target, described)
    if media and media.duration is not None and location and location.current_time is not None:
        share = percentage(location.current_time, media.duration)
        if share is not None:
            changes["completionPercentage"] = share
    return changes


def _resolved(entity: Entity | None, described: Mapping[str, Entity]) -> Entity | None:
    """The entity, or its description in the envelope when the event gives only its IRI."""
    if entity is not None and entity.reference_only and entity.id is not None and entity.id in described:
        return described[entity.id]
    return entity


def _attempt(event: Event, described: Mapping[str, Entity]) -> Entity | None:
    """The Attempt the event is about (Canvas: the object) or produced (the spec: `generated`)."""
    for candidate in (event.object, event.generated):
        entity = _resolved(candidate, described)
        if entity is not None and _term(entity.type) == "Attempt":
            return entity
    return None


def _learner(event: Event, described: Mapping[str, Entity]) -> tuple[str, Entity | None]:
    """Where the learner is: a grade's learner is the Attempt's assignee; the actor is the grader."""
    if _term(event.type) == "GradeEvent":
        attempt = _resolved(event.object, described)
        return "object.assignee", _resolved(attempt.assignee if attempt else None, described)
    return "actor", _resolved(event.actor, described)


def _resource(event: Event, described: Mapping[str, Entity]) -> tuple[str, Entity | None]:
    """The learning resource: the object, or what the Attempt in the object is an attempt of."""
    target = _resolved(event.object, described)
    if target is not None and _term(target.type) == "Attempt":
        return "object.assignable", _resolved(target.assignable, described)
    return "object", target


def _assignment_dates(resource: Entity) -> dict[str, Any]:
    dates: dict[str, Any] = {}
    if resource.date_to_activate is not None:
        dates["assignedDateTime"] = graph_time(resource.date_to_activate)
    if resource.date_to_submit is not None:
        dates["dueDateTime"] = graph_due(resource.date_to_submit)
    return dates


def _identity(learner: Entity) -> tuple[str, LearnerKind] | None:
    """The learner's email, else an employee (SIS) id, from whichever the sender gives."""
    emails: list[str | None] = []
    employee_ids: list[Any] = []
    for other in learner.other_identifiers or []:
        if other.identifier_type in _EMAIL_TYPES:
            emails.append(email_of(other.identifier))
        elif other.identifier_type in _EMPLOYEE_ID_TYPES:
            employee_ids.append(other.identifier)
    extensions = learner.extensions or {}
    canvas = extensions.get("com.instructure.canvas")
    if isinstance(canvas, Mapping):
        login = canvas.get("user_login")
        emails.append(email_of(login) if isinstance(login, str) else None)
        employee_ids.extend((canvas.get("user_sis_id"), canvas.get("sis_id")))
    employee_ids.append(extensions.get("bb:user.externalId"))
    email = next((address for address in emails if address), None)
    if email:
        return email, "email"
    employee_id = next((text.strip() for text in employee_ids if isinstance(text, str) and text.strip()), None)
    return (employee_id, "employeeId") if employee_id else None


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


def normal_event_id(event_id: str) -> str:
    """The event's id as one text: `urn:uuid:` and a bare UUID (Blackboard) are the same id."""
    bare = event_id.removeprefix("urn:uuid:")
    return bare.lower() if _UUID.match(bare) else event_id
