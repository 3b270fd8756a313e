"""The native event format: the Graph update body of a learningCourseActivity, plus the fields that say which one.

The rules come from the Graph reference page (Update learningCourseActivity). Validation runs in pydantic's strict
JSON mode, so that `"20"` is not a percentage and a date-time without an offset is not a DateTimeOffset, and its
errors are turned into Graph's own wording ("Input field {name} is required / is invalid / shouldn't be empty")
with the rule that was broken, one per field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import ErrorDetails

ASSIGNMENT = "#microsoft.graph.learningAssignment"
SELF_INITIATED = "#microsoft.graph.learningSelfInitiatedCourse"
TYPE_NAMES = {ASSIGNMENT: "learningAssignment", SELF_INITIATED: "learningSelfInitiatedCourse"}

#: The properties the reference lists as changeable, per type: the only ones ever sent to Graph.
CHANGEABLE: Mapping[str, tuple[str, ...]] = {
    ASSIGNMENT: (
        "assignedDateTime",
        "completedDateTime",
        "completionPercentage",
        "dueDateTime",
        "notes",
        "status",
    ),
    SELF_INITIATED: ("completedDateTime", "completionPercentage", "status", "startedDateTime"),
}
STATUSES: Mapping[str, tuple[str, ...]] = {
    ASSIGNMENT: ("notStarted", "inProgress", "completed"),
    SELF_INITIATED: ("inProgress", "completed"),
}
#: Identity fields route the update (which activity, whose) and are never sent in the PATCH.
IDENTITY: Mapping[str, tuple[str, ...]] = {
    ASSIGNMENT: (
        "learningCourseActivityId",
        "externalcourseActivityId",
        "externalCourseActivityId",
        "learnerUserId",
        "learningContentId",
        "learningProviderId",
        "assignerUserId",
        "assignmentType",
    ),
    SELF_INITIATED: (
        "learningCourseActivityId",
        "externalcourseActivityId",
        "externalCourseActivityId",
        "learnerUserId",
        "learningContentId",
        "learningProviderId",
    ),
}
MAX_ID_LENGTH = 400
MAX_NOTES_LENGTH = 4000
MAX_EVENTS = 100

_DATE_TIME_RULE = "must be an ISO 8601 date-time with an offset, e.g. 2021-05-11T22:57:17+00:00"
_ID_RULE = f"must be a non-empty string of at most {MAX_ID_LENGTH} characters"
RULES: Mapping[str, str] = {
    "@odata.type": f"must be {ASSIGNMENT} or {SELF_INITIATED}",
    "completionPercentage": "must be an integer from 0 to 100",
    "assignedDateTime": _DATE_TIME_RULE,
    "completedDateTime": _DATE_TIME_RULE,
    "startedDateTime": _DATE_TIME_RULE,
    "dueDateTime": (
        f"{_DATE_TIME_RULE.removesuffix(', e.g. 2021-05-11T22:57:17+00:00')}, "
        'or {"dateTime": "2022-09-22T16:05:00.0000000", "timeZone": "UTC"}'
    ),
    "notes": f'must be a string or {{"content": "...", "contentType": "text" or "html"}}, '
    f"of at most {MAX_NOTES_LENGTH} characters",
    "assignmentType": "must be required or recommended",
    "learningProviderId": "must equal the registrationId in the URL",
}

Problem = Literal["is required", "is invalid", "shouldn't be empty"]


@dataclass(frozen=True)
class FieldError:
    """One bad field, worded as Graph words it, with the rule a provider's engineer can fix it by."""

    field: str
    problem: Problem
    rule: str
    index: int | None = None

    @property
    def message(self) -> str:
        return f"Input field {self.field} {self.problem}"

    def to_detail(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"code": "badRequest", "message": self.message, "target": self.field}
        if self.index is not None:
            detail["index"] = self.index
        detail["rule"] = self.rule
        return detail


class TooManyEvents(ValueError):
    """A batch of more than MAX_EVENTS events (found without validating them all)."""


class EventValidationError(ValueError):
    """The event (or batch) breaks the reference's rules; `errors` has one entry per bad field."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.message} ({e.rule})" for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class CourseActivityUpdate:
    """A validated event: which activity, and the changeable properties it sets (None is an explicit null)."""

    odata_type: str | None
    """None for an update whose type Graph tells when the activity is found (xAPI)."""
    registration_id: str
    activity_id: str | None
    external_id: str | None
    changes: Mapping[str, Any]
    event: Mapping[str, Any]
    """The event as validated, in its JSON form: what goes on the queue."""

    @property
    def activity_key(self) -> str:
        """Names the activity within its provider: the Graph id when given, else the external id."""
        return f"id:{self.activity_id}" if self.activity_id else f"ext:{self.external_id}"


# --- The models: one per type, strict, no unknown properties. ---

_Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"\S")]


def _representable(value: datetime) -> datetime:
    """Also on the UTC clock: 0001-01-01T00:00:00+01:00 is not, and would fail comparisons later."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    return value


_DateTimeOffset = Annotated[AwareDatetime, AfterValidator(_representable)]
_Notes = Annotated[str, StringConstraints(max_length=MAX_NOTES_LENGTH)]


class _DateTimeTimeZone(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    odata_type: str | None = Field(None, alias="@odata.type")
    date_time: Annotated[
        str,
        StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})?$"),
    ] = Field(alias="dateTime")
    time_zone: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"\S")] = Field(alias="timeZone")


class _ItemBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    odata_type: str | None = Field(None, alias="@odata.type")
    content: _Notes
    content_type: Literal["text", "html"] = Field(alias="contentType")


class _EventBase(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    learning_course_activity_id: _Id = Field(None, alias="learningCourseActivityId")  # type: ignore[assignment]
    externalcourse_activity_id: _Id = Field(None, alias="externalcourseActivityId")  # type: ignore[assignment]
    external_course_activity_id: _Id = Field(None, alias="externalCourseActivityId")  # type: ignore[assignment]
    learner_user_id: _Id = Field(None, alias="learnerUserId")  # type: ignore[assignment]
    learning_content_id: _Id = Field(None, alias="learningContentId")  # type: ignore[assignment]
    learning_provider_id: _Id = Field(None, alias="learningProviderId")  # type: ignore[assignment]
    completed_date_time: _DateTimeOffset | None = Field(None, alias="completedDateTime")
    completion_percentage: Annotated[int, Field(ge=0, le=100)] | None = Field(None, alias="completionPercentage")


class AssignmentEvent(_EventBase):
    odata_type: Literal["#microsoft.graph.learningAssignment"] = Field(alias="@odata.type")
    status: Literal["notStarted", "inProgress", "completed"]
    assigned_date_time: _DateTimeOffset | None = Field(None, alias="assignedDateTime")
    due_date_time: _DateTimeOffset | _DateTimeTimeZone | None = Field(None, alias="dueDateTime")
    notes: _Notes | _ItemBody | None = None
    assigner_user_id: _Id = Field(None, alias="assignerUserId")  # type: ignore[assignment]
    assignment_type: Literal["required", "recommended"] = Field(None, alias="assignmentType")  # type: ignore[assignment]


class SelfInitiatedEvent(_EventBase):
    odata_type: Literal["#microsoft.graph.learningSelfInitiatedCourse"] = Field(alias="@odata.type")
    status: Literal["inProgress", "completed"]
    started_date_time: _DateTimeOffset | None = Field(None, alias="startedDateTime")


_Event = Annotated[AssignmentEvent | SelfInitiatedEvent, Discriminator("odata_type")]
_ONE = TypeAdapter(_Event)
_MANY = TypeAdapter(Annotated[list[_Event], Field(max_length=MAX_EVENTS)])
_ALIASES = {
    model: {name: info.alias or name for name, info in model.model_fields.items()}
    for model in (AssignmentEvent, SelfInitiatedEvent)
}


# --- Public entry points. ---


def parse_event_json(data: bytes | str, registration_id: str) -> CourseActivityUpdate:
    """Validates one event given as JSON text."""
    return _parse(_ONE, data, registration_id, batch=False)[0]


def parse_batch_json(data: bytes | str, registration_id: str) -> list[CourseActivityUpdate]:
    """Validates a JSON array of events; errors name the event's index."""
    return _parse(_MANY, data, registration_id, batch=True)


def _parse(
    adapter: TypeAdapter[Any], data: bytes | str, registration_id: str, *, batch: bool
) -> list[CourseActivityUpdate]:
    try:
        parsed = adapter.validate_json(data)
    except ValidationError as exc:
        details = exc.errors()
        if batch and details[0]["type"] == "too_long" and not details[0]["loc"]:
            raise TooManyEvents(f"A request carries at most {MAX_EVENTS} events.") from None
        raise EventValidationError(_all_errors(details, data, registration_id, batch=batch)) from None
    models: list[AssignmentEvent | SelfInitiatedEvent] = parsed if batch else [parsed]
    errors = [
        error
        for index, model in enumerate(models)
        for error in _cross_field_errors(model.model_dump(by_alias=True), registration_id, index if batch else None)
    ]
    if errors:
        raise EventValidationError(errors)
    return [_to_update(model, registration_id) for model in models]


def _all_errors(
    details: list[ErrorDetails], data: bytes | str, registration_id: str, *, batch: bool
) -> list[FieldError]:
    """Every bad field of every event: the slow path, taken only for a rejection."""
    by_index: dict[int | None, dict[str, FieldError]] = {}
    for detail in details:
        loc = list(detail["loc"])
        index = loc.pop(0) if batch and loc and isinstance(loc[0], int) else None
        error = _field_error(detail, loc, index)
        by_index.setdefault(index, {}).setdefault(error.field, error)
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):  # pydantic already said what is wrong with the JSON
        raw = None
    events = (raw if isinstance(raw, list) else []) if batch else [raw]
    for position, event in enumerate(events):
        if isinstance(event, dict):
            index = position if batch else None
            for error in _cross_field_errors(event, registration_id, index):
                by_index.setdefault(index, {}).setdefault(error.field, error)
    ordered: list[FieldError] = []  # in the order the fields appear in the request
    for index in sorted(by_index, key=lambda i: -1 if i is None else i):
        event = events[index or 0] if len(events) > (index or 0) else None
        position = {name: n for n, name in enumerate(event)} if isinstance(event, dict) else {}
        ordered.extend(sorted(by_index[index].values(), key=lambda e: position.get(e.field, len(position))))
    return ordered


def _cross_field_errors(event: Mapping[str, Any], registration_id: str, at: int | None) -> list[FieldError]:
    """The rules that span fields; `event` holds the JSON names."""
    errors: list[FieldError] = []
    provider = event.get("learningProviderId")
    if isinstance(provider, str) and provider.lower() != registration_id.lower():
        errors.append(FieldError("learningProviderId", "is invalid", RULES["learningProviderId"], at))
    lower, upper = event.get("externalcourseActivityId"), event.get("externalCourseActivityId")
    if isinstance(lower, str) and isinstance(upper, str) and lower != upper:
        errors.append(
            FieldError(
                "externalCourseActivityId",
                "is invalid",
                "must equal externalcourseActivityId when both spellings are given",
                at,
            )
        )
    if all(
        event.get(name) is None
        for name in ("learningCourseActivityId", "externalcourseActivityId", "externalCourseActivityId")
    ):
        errors.append(
            FieldError(
                "externalcourseActivityId",
                "is required",
                "give the activity's Graph id (learningCourseActivityId) or its external id (externalcourseActivityId)",
                at,
            )
        )
    return errors


def _to_update(model: AssignmentEvent | SelfInitiatedEvent, registration_id: str) -> CourseActivityUpdate:
    external = model.externalcourse_activity_id or model.external_course_activity_id
    aliases = _ALIASES[type(model)]
    present = {aliases[name] for name in model.model_fields_set}
    values = model.model_dump(by_alias=True, exclude_unset=True)
    changes = {name: _graph_value(name, values[name]) for name in CHANGEABLE[model.odata_type] if name in present}
    return CourseActivityUpdate(
        odata_type=model.odata_type,
        registration_id=registration_id,
        activity_id=model.learning_course_activity_id,
        external_id=external,
        changes=changes,
        event=model.model_dump(mode="json", by_alias=True, exclude_unset=True),
    )


def _graph_value(name: str, value: Any) -> Any:
    """The property's value as Graph's JSON writes it."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if name == "dueDateTime":
            return {"dateTime": format_graph_date_time(value), "timeZone": "UTC"}
        return value.isoformat()
    if name == "notes":
        if isinstance(value, str):
            return {"content": value, "contentType": "text"}
        return {"content": value["content"], "contentType": value["contentType"]}
    if name == "dueDateTime":
        return {"dateTime": value["dateTime"], "timeZone": value["timeZone"]}
    return value


def format_graph_date_time(value: datetime) -> str:
    """A dateTimeTimeZone's dateTime: UTC wall time with Graph's seven fractional digits."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0"


# --- Turning pydantic's errors into Graph's wording. ---


def _field_error(detail: ErrorDetails, loc: list[Any], index: int | None) -> FieldError:
    kind = detail["type"]
    value = detail.get("input")
    if kind == "json_invalid":
        return FieldError(
            "body",
            "is invalid",
            f"must be valid JSON ({detail['msg'].removeprefix('Invalid JSON: ')})",
            index,
        )
    if kind == "list_type" and not loc:
        return FieldError("body", "is invalid", "must be a JSON array of events", index)
    if kind in ("dict_type", "model_attributes_type") and not loc:
        return FieldError("body" if index is None else "event", "is invalid", "each event must be a JSON object", index)
    if kind == "union_tag_not_found":
        return FieldError("@odata.type", "is required", RULES["@odata.type"], index)
    if kind == "union_tag_invalid":
        tag = value.get("@odata.type") if isinstance(value, dict) else None
        problem: Problem = "shouldn't be empty" if tag in (None, "") else "is invalid"
        return FieldError("@odata.type", problem, RULES["@odata.type"], index)
    odata_type = loc.pop(0) if loc and loc[0] in CHANGEABLE else None
    field = str(loc[0]) if loc else "body"
    if kind == "missing" and len(loc) == 1:
        return FieldError(field, "is required", _rule(field, odata_type), index)
    if kind == "extra_forbidden":
        return FieldError(field, "is invalid", _unknown_rule(field, odata_type), index)
    if len(loc) == 1 and (value is None or (isinstance(value, str) and not value.strip())):
        return FieldError(field, "shouldn't be empty", _rule(field, odata_type), index)
    return FieldError(field, "is invalid", _rule(field, odata_type), index)


def _rule(field: str, odata_type: str | None) -> str:
    if field == "status" and odata_type:
        return f"must be one of {', '.join(STATUSES[odata_type])} for a {TYPE_NAMES[odata_type]}"
    return RULES.get(field, _ID_RULE)


def _unknown_rule(field: str, odata_type: str | None) -> str:
    if odata_type is None:
        return "is not a property of a course activity"
    own = TYPE_NAMES[odata_type]
    other = SELF_INITIATED if odata_type == ASSIGNMENT else ASSIGNMENT
    if field in CHANGEABLE[other]:
        return f"can be changed only on a {TYPE_NAMES[other]}, not on a {own}"
    if field in IDENTITY[other]:
        return f"belongs to a {TYPE_NAMES[other]}, not to a {own}"
    return f"is not a property of a {own}: check its spelling (names are case-sensitive)"
