"""The native event format: the Graph update body of a learningCourseActivity, plus the fields that say which one.

The rules come from the Graph reference page (Update learningCourseActivity). Validation runs in pydantic's strict
JSON mode, so that `"20"` is not a percentage and a date-time without an offset is not a DateTimeOffset, and its
errors are turned into Graph's own wording ("Input field {name} is required / is invalid / shouldn't be empty")
with the rule that was broken, one per field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Required

from pydantic import (
    AfterValidator,
    AwareDatetime,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import ErrorDetails
from typing_extensions import TypedDict

from connector.domain import timezones

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
_COMMON_IDENTITY = (
    "learningCourseActivityId",
    "externalcourseActivityId",
    "externalCourseActivityId",
    "learnerUserId",
    "learningContentId",
    "learningProviderId",
)
IDENTITY: Mapping[str, tuple[str, ...]] = {
    ASSIGNMENT: (*_COMMON_IDENTITY, "assignerUserId", "assignmentType"),
    SELF_INITIATED: _COMMON_IDENTITY,
}
#: The identity fields a create uses: the learner and content (both types), an assignment's type and assigner.
CREATE_IDENTITY = ("learnerUserId", "learningContentId", "assignerUserId", "assignmentType")
MAX_ID_LENGTH = 400
MAX_NOTES_LENGTH = 4000
MAX_EVENTS = 100

_DATE_TIME_RULE = "must be an ISO 8601 date-time with an offset, e.g. 2021-05-11T22:57:17+00:00"
_ID_RULE = f"must be a non-empty string of at most {MAX_ID_LENGTH} characters"
_DOTS_RULE = "must not be only dots: '.' and '..' in a URL name another resource"
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
    "status": "must be notStarted, inProgress or completed",
    "assignmentType": "must be required, recommended or peerRecommended",
    "@removed": 'must be {"reason": "deleted"}: the activity is withdrawn',
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
    """The event as validated, under its JSON names (date-times parsed)."""
    removed: bool = False
    """The event withdraws the activity (`"@removed": {"reason": "deleted"}`, as Graph's delta queries say it)."""

    @property
    def identity(self) -> dict[str, Any]:
        """Who and what the activity is about, as far as the event says (what a create needs; never PATCHed)."""
        return {name: self.event[name] for name in CREATE_IDENTITY if self.event.get(name) is not None}

    @property
    def activity_key(self) -> str:
        """Names the activity within its provider: the Graph id when given, else the external id."""
        return f"id:{self.activity_id}" if self.activity_id else f"ext:{self.external_id}"

    @property
    def fingerprint(self) -> str:
        """What the event says, hashed: tells a sender's retry (same id, same content) from an id reused for other
        content. Built from the normalised values, so a queue round trip that rewrites a date's text changes nothing."""
        values = sorted((name, _normal(name, value)) for name, value in self.changes.items())
        identity = sorted(self.identity.items())
        said = [self.odata_type, self.activity_id, self.external_id, values, self.removed, identity]
        return hashlib.sha256(json.dumps(said, separators=(",", ":")).encode("utf-8", "surrogatepass")).hexdigest()[:16]


# --- The models: one per type, strict, no unknown properties. ---

# Blank and dot-only ids ("  ", "..") are caught by _cross_field_errors: one Python check per event is cheaper than
# a regex per id.
_Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH)]
_ID_FIELDS = tuple(name for name in IDENTITY[ASSIGNMENT] if name != "assignmentType")


# Also on the UTC clock: 0001-01-01T00:00:00+01:00 is not, and would fail comparisons later. Checked in pydantic-core.
_DateTimeOffset = Annotated[
    AwareDatetime, Field(gt=datetime(1, 1, 2, tzinfo=UTC), lt=datetime(9999, 12, 30, tzinfo=UTC))
]
_Notes = Annotated[str, StringConstraints(max_length=MAX_NOTES_LENGTH)]


def _strict(name: str, fields: dict[str, Any]) -> Any:
    """A strict TypedDict that forbids unknown keys. Dicts, not models: validated in Rust, out as JSON names."""
    typed: Any = TypedDict(name, fields, total=False)  # type: ignore[misc]
    typed.__pydantic_config__ = ConfigDict(extra="forbid", strict=True)  # type: ignore[attr-defined]
    return typed


def _real_date_time(text: str) -> str:
    """The pattern admits 2022-13-45T99:99; the calendar does not."""
    datetime.fromisoformat(text)  # raises ValueError, which pydantic reports as the field's error
    return text


def _graph_time_zone(name: str) -> str:
    """The time zone as Graph spells it (see connector.domain.timezones); an unknown one is invalid."""
    spelled = timezones.graph_time_zone(name)
    if spelled is None:
        raise ValueError(timezones.RULE)
    return spelled


_DateTimeTimeZone = _strict(
    "dateTimeTimeZone",
    {
        "@odata.type": str,
        "dateTime": Required[
            Annotated[
                str,
                StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})?$"),
                AfterValidator(_real_date_time),
            ]
        ],
        "timeZone": Required[
            Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(_graph_time_zone)]
        ],
    },
)
_ItemBody = _strict(
    "itemBody", {"@odata.type": str, "content": Required[_Notes], "contentType": Required[Literal["text", "html"]]}
)
_Removed = _strict("removed", {"reason": Required[Literal["deleted"]]})
_COMMON: dict[str, Any] = {
    "@removed": _Removed,
    "learningCourseActivityId": _Id,
    "externalcourseActivityId": _Id,
    "externalCourseActivityId": _Id,
    "learnerUserId": _Id,
    "learningContentId": _Id,
    "learningProviderId": _Id,
    "completedDateTime": _DateTimeOffset | None,
    "completionPercentage": Annotated[int, Field(ge=0, le=100)] | None,
}
AssignmentEvent = _strict(
    "learningAssignment",
    {
        **_COMMON,
        "@odata.type": Required[Literal["#microsoft.graph.learningAssignment"]],
        "status": Literal["notStarted", "inProgress", "completed"],  # required unless @removed: _cross_field_errors
        "assignedDateTime": _DateTimeOffset | None,
        "dueDateTime": Annotated[_DateTimeTimeZone | _DateTimeOffset | None, Field(union_mode="left_to_right")],
        "notes": _Notes | _ItemBody | None,
        "assignerUserId": _Id,
        "assignmentType": Literal["required", "recommended", "peerRecommended"],
    },
)
SelfInitiatedEvent = _strict(
    "learningSelfInitiatedCourse",
    {
        **_COMMON,
        "@odata.type": Required[Literal["#microsoft.graph.learningSelfInitiatedCourse"]],
        "status": Literal["inProgress", "completed"],
        "startedDateTime": _DateTimeOffset | None,
    },
)
_Event: Any = Annotated[AssignmentEvent | SelfInitiatedEvent, Discriminator("@odata.type")]
_ONE: TypeAdapter[dict[str, Any]] = TypeAdapter(_Event)
_MANY: TypeAdapter[list[dict[str, Any]]] = TypeAdapter(Annotated[list[_Event], Field(max_length=MAX_EVENTS)])


# --- Public entry points. ---


def parse_event_json(data: bytes | str, registration_id: str) -> CourseActivityUpdate:
    """Validates one event given as JSON text, and works out the update it makes."""
    return _to_update(validate_events_json(data, registration_id, batch=False)[0], registration_id)


def validate_events_json(data: bytes | str, registration_id: str, *, batch: bool) -> list[dict[str, Any]]:
    """Only validates (the webhook's fast path): the events as dicts of their JSON names, with parsed values."""
    adapter: TypeAdapter[Any] = _MANY if batch else _ONE
    try:
        parsed: Any = adapter.validate_json(data)
    except ValidationError as exc:
        details = exc.errors()
        if batch and details[0]["type"] == "too_long" and not details[0]["loc"]:
            raise TooManyEvents(f"A request carries at most {MAX_EVENTS} events.") from None
        raise EventValidationError(_all_errors(details, data, registration_id, batch=batch)) from None
    events: list[dict[str, Any]] = parsed if batch else [parsed]
    errors = [
        error
        for index, event in enumerate(events)
        for error in _cross_field_errors(event, registration_id, index if batch else None)
    ]
    if errors:
        raise EventValidationError(errors)
    return events


def _all_errors(
    details: list[ErrorDetails], data: bytes | str, registration_id: str, *, batch: bool
) -> list[FieldError]:
    """Every bad field of every event: the slow path, taken only for a rejection."""
    by_index: dict[int | None, dict[str, FieldError]] = {}
    for detail in details:
        loc = list(detail["loc"])
        index = loc.pop(0) if batch and loc and isinstance(loc[0], int) else None
        assert index is None or isinstance(index, int)
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
        raw_event = events[index or 0] if len(events) > (index or 0) else None
        order = {name: n for n, name in enumerate(raw_event)} if isinstance(raw_event, dict) else {}
        ordered.extend(sorted(by_index[index].values(), key=lambda e: order.get(e.field, len(order))))
    return ordered


def _cross_field_errors(event: Mapping[str, Any], registration_id: str, at: int | None) -> list[FieldError]:
    """The rules that span fields; `event` holds the JSON names. Cheap when all is well: this runs per event."""
    provider = event.get("learningProviderId")
    lower, upper = event.get("externalcourseActivityId"), event.get("externalCourseActivityId")
    removal = "@removed" in event
    if (
        (provider is None or (isinstance(provider, str) and provider.lower() == registration_id.lower()))
        and (lower is None or upper is None or lower == upper)
        and (lower is not None or upper is not None or event.get("learningCourseActivityId") is not None)
        and not any(_blank_or_dots(value) for value in map(event.get, _ID_FIELDS))
        and ("status" in event) != removal
    ):
        return []
    errors = [
        FieldError(name, "shouldn't be empty", _ID_RULE, at)
        if event[name].isspace()
        else FieldError(name, "is invalid", _DOTS_RULE, at)
        for name in _ID_FIELDS
        if _blank_or_dots(event.get(name))
    ]
    if isinstance(provider, str) and provider.strip() and provider.lower() != registration_id.lower():
        errors.append(FieldError("learningProviderId", "is invalid", RULES["learningProviderId"], at))
    if isinstance(lower, str) and isinstance(upper, str) and lower != upper:
        errors.append(
            FieldError(
                "externalCourseActivityId",
                "is invalid",
                "must equal externalcourseActivityId when both spellings are given",
                at,
            )
        )
    errors.extend(_lifecycle_errors(event, at))
    if lower is None and upper is None and event.get("learningCourseActivityId") is None:
        errors.append(
            FieldError(
                "externalcourseActivityId",
                "is required",
                "give the activity's Graph id (learningCourseActivityId) or its external id (externalcourseActivityId)",
                at,
            )
        )
    return errors


def _lifecycle_errors(event: Mapping[str, Any], at: int | None) -> list[FieldError]:
    """An update needs its status; a removal (@removed) names the activity and changes nothing else."""
    odata_type = event.get("@odata.type")
    if "@removed" not in event:
        rule = _rule("status", odata_type if odata_type in STATUSES else None)
        return [] if "status" in event else [FieldError("status", "is required", rule, at)]
    changeable = CHANGEABLE.get(odata_type, ()) if isinstance(odata_type, str) else ()
    changing = [name for name in event if name in changeable]
    rule = "a removal (@removed) changes nothing: send the activity's id and @odata.type only"
    return [FieldError(name, "is invalid", rule, at) for name in changing]


def _blank_or_dots(value: object) -> bool:
    """Blank, or only dots: "." and ".." are removed from URL paths, so such an id would name another resource."""
    return isinstance(value, str) and not value.strip().strip(".")


def _to_update(event: dict[str, Any], registration_id: str) -> CourseActivityUpdate:
    odata_type = event["@odata.type"]
    changes = {name: _graph_value(name, event[name]) for name in CHANGEABLE[odata_type] if name in event}
    return CourseActivityUpdate(
        removed="@removed" in event,
        odata_type=odata_type,
        registration_id=registration_id,
        activity_id=event.get("learningCourseActivityId"),
        external_id=event.get("externalcourseActivityId") or event.get("externalCourseActivityId"),
        changes=changes,
        event=event,
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


def _normal(name: str, value: Any) -> Any:
    """One form per value, whatever text it came in: the Functions host may rewrite a queued date's text
    (`…:31.000000Z` as `…:31Z`, an offset as UTC)."""
    if value is None:
        return None
    if name == "dueDateTime":
        return {"dateTime": _wall_time(value["dateTime"]), "timeZone": value["timeZone"]}
    if name.endswith("DateTime"):
        return datetime.fromisoformat(value).astimezone(UTC).isoformat()
    return value


def _wall_time(text: str) -> str:
    """A dateTimeTimeZone's dateTime with seven fractional digits; one with an offset as that instant in UTC."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        return format_graph_date_time(moment) + "Z"
    minutes, _, fraction = text.partition(".")
    seconds = minutes if minutes.count(":") == 2 else f"{minutes}:00"
    return f"{seconds}.{fraction:0<7}"


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
    if kind == "value_error" and loc[-1:] == ["timeZone"]:
        return FieldError(field, "is invalid", timezones.RULE, index)
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


def missing_for_create(identity: Mapping[str, Any], odata_type: str | None) -> list[str]:
    """What creating an activity takes that the events seen have not named: the learner, the content, and an
    assignment's type."""
    needed = ("learnerUserId", "learningContentId", *(("assignmentType",) if odata_type == ASSIGNMENT else ()))
    return [name for name in needed if not identity.get(name)]
