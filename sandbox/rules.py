"""The rules of the Graph reference page, and Graph's error bodies.

Source: the "Update learningCourseActivity" v1.0 reference page (changeable-properties tables, status values,
error table). Every check raises :class:`GraphError`; the server turns it into Graph's error shape. Messages
are copied verbatim from the page (with a real apostrophe where the page shows mojibake).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

ASSIGNMENT: Final = "#microsoft.graph.learningAssignment"
SELF_INITIATED: Final = "#microsoft.graph.learningSelfInitiatedCourse"
ACTIVITY_TYPES: Final = (ASSIGNMENT, SELF_INITIATED)

ROLE_ASSIGNED_RW: Final = "LearningAssignedCourse.ReadWrite.All"
ROLE_SELF_RW: Final = "LearningSelfInitiatedCourse.ReadWrite.All"
WRITE_ROLE: Final = {ASSIGNMENT: ROLE_ASSIGNED_RW, SELF_INITIATED: ROLE_SELF_RW}
READ_ROLES: Final = {
    ASSIGNMENT: frozenset({"LearningAssignedCourse.Read.All", ROLE_ASSIGNED_RW}),
    SELF_INITIATED: frozenset({"LearningSelfInitiatedCourse.Read.All", ROLE_SELF_RW}),
}
CONTENT_READ_ROLES: Final = frozenset({"LearningContent.Read.All", "LearningContent.ReadWrite.All"})
USER_READ_ROLES: Final = frozenset(
    {"User.Read.All", "User.ReadBasic.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
APP_READ_ROLES: Final = frozenset(
    {
        "Application.Read.All",
        "Application.ReadWrite.All",
        "AppRoleAssignment.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
APP_ROLE_GRANT_ROLES: Final = frozenset(
    {"AppRoleAssignment.ReadWrite.All", "Application.ReadWrite.All", "Directory.ReadWrite.All"}
)

# Changeable properties per type (the two tables of the reference page).
CHANGEABLE: Final = {
    ASSIGNMENT: frozenset(
        {"assignedDateTime", "completedDateTime", "completionPercentage", "dueDateTime", "notes", "status"}
    ),
    SELF_INITIATED: frozenset({"completedDateTime", "completionPercentage", "status", "startedDateTime"}),
}
# Properties that identify an activity: a PATCH may repeat them (the reference examples do) but not change them.
IDENTITY_FIELDS: Final = {
    ASSIGNMENT: frozenset(
        {
            "id",
            "learnerUserId",
            "learningContentId",
            "learningProviderId",
            "externalcourseActivityId",
            "externalCourseActivityId",
            "assignerUserId",
            "assignmentType",
        }
    ),
    SELF_INITIATED: frozenset(
        {
            "id",
            "learnerUserId",
            "learningContentId",
            "learningProviderId",
            "externalcourseActivityId",
            "externalCourseActivityId",
        }
    ),
}
STATUS_VALUES: Final = {
    ASSIGNMENT: frozenset({"notStarted", "inProgress", "completed"}),
    SELF_INITIATED: frozenset({"inProgress", "completed"}),
}
ASSIGNMENT_TYPES: Final = frozenset({"required", "recommended"})
# Graph's evolvable enums: members after the sentinel are usable only by clients that send
# ``Prefer: include-unknown-enum-members``; others read the sentinel instead.
UNKNOWN_FUTURE_VALUE: Final = "unknownFutureValue"
EVOLVED_ASSIGNMENT_TYPES: Final = frozenset({"peerRecommended"})
PREFER_UNKNOWN_ENUMS: Final = "include-unknown-enum-members"
# Every property of each type, in the order Graph lists them; stored activities carry all of them.
PROPERTIES: Final = {
    ASSIGNMENT: (
        "id",
        "externalcourseActivityId",
        "learnerUserId",
        "learningContentId",
        "learningProviderId",
        "status",
        "completionPercentage",
        "completedDateTime",
        "assignedDateTime",
        "assignmentType",
        "assignerUserId",
        "dueDateTime",
        "notes",
    ),
    SELF_INITIATED: (
        "id",
        "externalcourseActivityId",
        "learnerUserId",
        "learningContentId",
        "learningProviderId",
        "status",
        "completionPercentage",
        "completedDateTime",
        "startedDateTime",
    ),
}
DATETIME_OFFSET_FIELDS: Final = ("assignedDateTime", "completedDateTime", "startedDateTime")

MSG_BAD_REGISTRATION: Final = (
    "There was an issue with your request. Make sure the registrationId you entered is valid or registered "
    "for your tenant."
)
MSG_PROVIDER_DISABLED: Final = "This provider isn't enabled for the given tenant."
MSG_FORBIDDEN: Final = (
    "Your account doesn't have access to this report or data. Contact your global administrator to request access."
)
MSG_NOT_FOUND: Final = "The assignment ID requested doesn\u2019t exist."
MSG_METHOD_NOT_ALLOWED: Final = (
    "This method isn't supported for this entity type. See the Microsoft Graph documentation for the methods "
    "applicable to this entity."
)
MSG_CONTENT_PROVIDER_MISMATCH: Final = (
    "The provider isn't valid to create course activity for the given learning content"
)
MSG_BAD_JSON: Final = (
    "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format."
)
MSG_INSUFFICIENT_PRIVILEGES: Final = "Insufficient privileges to complete the operation."

# Default code and message of a status, used by faults and by anything that answers with a bare status.
DEFAULT_ERRORS: Final[dict[int, tuple[str, str]]] = {
    400: ("badRequest", "Bad request."),
    401: ("InvalidAuthenticationToken", "Access token validation failure."),
    403: ("Forbidden", MSG_FORBIDDEN),
    404: ("notFound", MSG_NOT_FOUND),
    405: ("methodNotAllowed", MSG_METHOD_NOT_ALLOWED),
    409: ("conflict", "Conflict."),
    429: ("tooManyRequests", "Retry after {n} minutes"),
    500: ("internalServerError", "Internal server error."),
    502: ("badGateway", "Bad gateway."),
    503: ("serviceUnavailable", "Retry after {n} minutes"),
    504: ("gatewayTimeout", "Gateway timeout."),
}


class GraphError(Exception):
    """An error answer in Graph's shape; raised anywhere in request handling, rendered by the server."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def bad_request(message: str) -> GraphError:
    return GraphError(400, "badRequest", message)


def field_required(name: str) -> GraphError:
    return bad_request(f"Input field {name} is required")


def field_invalid(name: str) -> GraphError:
    return bad_request(f"Input field {name} is invalid")


def field_empty(name: str) -> GraphError:
    return bad_request(f"Input field {name} shouldn't be empty")


def forbidden() -> GraphError:
    return GraphError(403, "Forbidden", MSG_FORBIDDEN)


def not_found() -> GraphError:
    return GraphError(404, "notFound", MSG_NOT_FOUND)


def delete_not_found(activity_id: str) -> GraphError:
    """The 404 of a DELETE, which names the id (the delete page's wording, not the update page's)."""
    return GraphError(404, "notFound", f"The requested assignment {activity_id} doesn't exist")


def method_not_allowed() -> GraphError:
    return GraphError(405, "methodNotAllowed", MSG_METHOD_NOT_ALLOWED)


def directory_forbidden() -> GraphError:
    """What Graph's directory routes (users, service principals) answer without the permission."""
    return GraphError(403, "Authorization_RequestDenied", MSG_INSUFFICIENT_PRIVILEGES)


def directory_not_found(key: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{key}' does not exist or one of its queried reference-property objects are not present.",
    )


_MISSING_REFERENCE: Final = {
    "learnerUserId": "The learner requested doesn\u2019t exist.",
    "assignerUserId": "The assigner requested doesn\u2019t exist.",
    "learningContentId": "The learning content requested doesn\u2019t exist.",
}
_CREATE_ANSWER_CHOICES: Final = {
    "duplicateExternalId": ("conflict", "badRequest"),
    "unknownReference": ("badRequest", "notFound"),
}


@dataclass
class CreateAnswers:
    """How a create fails where Graph's docs leave the answer unconfirmed; the first choice of each is the default.

    ``duplicateExternalId``: ``conflict`` (409 ``conflict``) or ``badRequest`` (400 "Input field
    externalcourseActivityId is invalid"). ``unknownReference`` (a learner, assigner or content the tenant does
    not have): ``badRequest`` (400 "Input field {field} is invalid", the documented field validation) or
    ``notFound`` (404 ``notFound`` "The learner requested doesn't exist." and alike).
    """

    duplicate_external_id: str = "conflict"
    unknown_reference: str = "badRequest"

    def describe(self) -> dict[str, str]:
        return {"duplicateExternalId": self.duplicate_external_id, "unknownReference": self.unknown_reference}

    def configure(self, settings: Any) -> None:
        """Apply ``{"duplicateExternalId", "unknownReference"}`` (each optional); nothing changes on an error."""
        if not isinstance(settings, dict):
            raise ValueError("create answers must be a JSON object")
        for key, value in settings.items():
            choices = _CREATE_ANSWER_CHOICES.get(key)
            if choices is None:
                raise ValueError(f"unknown create answer {key!r}; known: {sorted(_CREATE_ANSWER_CHOICES)}")
            if value not in choices:
                raise ValueError(f"{key} must be one of {list(choices)}")
        self.duplicate_external_id = settings.get("duplicateExternalId", self.duplicate_external_id)
        self.unknown_reference = settings.get("unknownReference", self.unknown_reference)

    def duplicate(self, external_id: str) -> GraphError:
        if self.duplicate_external_id == "badRequest":
            return field_invalid("externalcourseActivityId")
        return GraphError(
            409,
            "conflict",
            f"A learning course activity with externalcourseActivityId '{external_id}' already exists for this "
            "provider.",
        )

    def missing(self, field: str) -> GraphError:
        if self.unknown_reference == "notFound":
            return GraphError(404, "notFound", _MISSING_REFERENCE[field])
        return field_invalid(field)


def error_body(code: str, message: str, request_id: str, client_request_id: str) -> dict[str, Any]:
    """Graph's error envelope, with the innerError fields Graph adds to every error."""
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": client_request_id,
            },
        }
    }


def check_provider(provider: dict[str, Any] | None) -> None:
    """Rule 1: the registrationId must be known and the provider enabled for activity sync."""
    if provider is None:
        raise bad_request(MSG_BAD_REGISTRATION)
    if not provider.get("isCourseActivitySyncEnabled"):
        raise bad_request(MSG_PROVIDER_DISABLED)


def check_write_role(roles: frozenset[str], odata_type: str | None) -> None:
    """Rule 2: the token must hold the ReadWrite role of the activity's type.

    When the type is not known yet (unknown id), either learning role lets the request go on to the 404.
    """
    if odata_type is None:
        if ROLE_ASSIGNED_RW not in roles and ROLE_SELF_RW not in roles:
            raise forbidden()
    elif WRITE_ROLE[odata_type] not in roles:
        raise forbidden()


def check_read_role(roles: frozenset[str], odata_type: str) -> None:
    if roles.isdisjoint(READ_ROLES[odata_type]):
        raise forbidden()


# OData DateTimeOffset: offset mandatory (Z or +hh:mm), seconds and fraction optional.
_DTO_RE: Final = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(?::(\d{2})(?:\.(\d{1,12}))?)?(Z|[+-]\d{2}:\d{2})")
# A DateTimeTimeZone.dateTime: Graph writes it without an offset and with 7 fractional digits.
_DT_RE: Final = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(?::(\d{2})(?:\.(\d{1,12}))?)?(Z|[+-]\d{2}:\d{2})?")


def _valid_datetime(value: Any, pattern: re.Pattern[str]) -> bool:
    if not isinstance(value, str):
        return False
    m = pattern.fullmatch(value)
    if m is None:
        return False
    date, hhmm, seconds, _fraction, offset = m.groups()
    text = f"{date}T{hhmm}:{seconds or '00'}"
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    if offset and offset != "Z":
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 14 or minutes > 59:
            return False
    return True


def is_datetime_offset(value: Any) -> bool:
    """True for an ISO 8601 date-time string with an explicit offset (what Graph's DateTimeOffset needs)."""
    return _valid_datetime(value, _DTO_RE)


def is_date_time_time_zone(value: Any) -> bool:
    """True for ``{"dateTime": "...", "timeZone": "..."}`` (an optional ``@odata.type`` is tolerated)."""
    if not isinstance(value, dict) or not set(value) <= {"dateTime", "timeZone", "@odata.type"}:
        return False
    time_zone = value.get("timeZone")
    return _valid_datetime(value.get("dateTime"), _DT_RE) and isinstance(time_zone, str) and bool(time_zone.strip())


def is_item_body(value: Any) -> bool:
    """True for ``{"content": "...", "contentType": "text"|"html"}`` (an optional ``@odata.type`` is tolerated)."""
    if not isinstance(value, dict) or not set(value) <= {"content", "contentType", "@odata.type"}:
        return False
    return isinstance(value.get("content"), str) and value.get("contentType") in ("text", "html")


def is_percentage(value: Any) -> bool:
    return type(value) is int and 0 <= value <= 100


def check_odata_type(body: dict[str, Any]) -> str:
    """Rule 4 (first half): @odata.type must be present and name one of the two activity types."""
    if "@odata.type" not in body:
        raise field_required("@odata.type")
    odata_type = body["@odata.type"]
    if odata_type not in ACTIVITY_TYPES:
        raise field_invalid("@odata.type")
    return odata_type


def _check_status(body: dict[str, Any], odata_type: str) -> None:
    if "status" not in body:
        raise field_required("status")
    status = body["status"]
    if status is None or status == "":
        raise field_empty("status")
    if status not in STATUS_VALUES[odata_type]:
        raise field_invalid("status")


def _check_values(body: dict[str, Any]) -> None:
    """Rules 7 and 8: type checks of the changeable properties present in the body."""
    if "completionPercentage" in body:
        value = body["completionPercentage"]
        if value is not None and not is_percentage(value):
            raise field_invalid("completionPercentage")
    for name in DATETIME_OFFSET_FIELDS:
        if name in body:
            value = body[name]
            if value is not None and not is_datetime_offset(value):
                raise field_invalid(name)
    if "dueDateTime" in body:
        value = body["dueDateTime"]
        if value is not None and not is_date_time_time_zone(value):
            raise field_invalid("dueDateTime")
    if "notes" in body:
        value = body["notes"]
        if value is not None and not is_item_body(value):
            raise field_invalid("notes")


def _stored_value(activity: dict[str, Any], name: str) -> Any:
    if name == "externalCourseActivityId":
        name = "externalcourseActivityId"
    return activity.get(name)


def check_assignment_type(value: Any, include_unknown_enums: bool) -> None:
    """Known members always; evolved ones (``peerRecommended``) only with the Prefer header; never the sentinel."""
    if value in ASSIGNMENT_TYPES or (include_unknown_enums and value in EVOLVED_ASSIGNMENT_TYPES):
        return
    raise field_invalid("assignmentType")


def as_read(activity: dict[str, Any], include_unknown_enums: bool) -> dict[str, Any]:
    """The activity as a client sees it: an evolved assignmentType reads as the sentinel unless asked for."""
    if include_unknown_enums or activity.get("assignmentType") not in EVOLVED_ASSIGNMENT_TYPES:
        return activity
    return {**activity, "assignmentType": UNKNOWN_FUTURE_VALUE}


def validate_patch(activity: dict[str, Any], body: Any, include_unknown_enums: bool = False) -> dict[str, Any]:
    """Rules 4 to 8 for a PATCH of ``activity``; returns the changes to merge (explicit nulls included).

    A repeated ``assignmentType`` of ``unknownFutureValue`` counts as absent (Graph's evolvable-enum rule for
    PATCH), so a client may send back what it read."""
    if not isinstance(body, dict):
        raise bad_request(MSG_BAD_JSON)
    odata_type = check_odata_type(body)
    if odata_type != activity["@odata.type"]:
        raise field_invalid("@odata.type")
    changeable = CHANGEABLE[odata_type]
    identity = IDENTITY_FIELDS[odata_type]
    changes: dict[str, Any] = {}
    for name, value in body.items():
        if name == "@odata.type":
            continue
        if name in changeable:
            changes[name] = value
        elif name in identity:
            if name == "assignmentType":
                if value == UNKNOWN_FUTURE_VALUE:
                    continue
                if value in EVOLVED_ASSIGNMENT_TYPES and not include_unknown_enums:
                    raise field_invalid(name)
            if value != _stored_value(activity, name):
                raise field_invalid(name)
        else:
            raise field_invalid(name)
    _check_status(body, odata_type)
    _check_values(body)
    return changes


def _check_required_string(body: dict[str, Any], name: str) -> str:
    if name not in body:
        raise field_required(name)
    value = body[name]
    if value is None or value == "":
        raise field_empty(name)
    if not isinstance(value, str):
        raise field_invalid(name)
    return value


def validate_create(
    registration_id: str, body: dict[str, Any], odata_type: str, include_unknown_enums: bool = False
) -> dict[str, Any]:
    """Property rules of a POST (after the provider, @odata.type and role checks).

    Returns the new activity without ``id``; reference checks (users, contents, duplicates) are the store's.
    """
    allowed = set(PROPERTIES[odata_type]) - {"id"}
    allowed.add("externalCourseActivityId")
    for name in body:
        if name != "@odata.type" and name not in allowed:
            raise field_invalid(name)
    lower, upper = body.get("externalcourseActivityId"), body.get("externalCourseActivityId")
    if "externalcourseActivityId" in body and "externalCourseActivityId" in body and lower != upper:
        raise field_invalid("externalCourseActivityId")
    if "externalcourseActivityId" not in body and "externalCourseActivityId" in body:
        body = {**body, "externalcourseActivityId": upper}
        del body["externalCourseActivityId"]
    for name in ("learnerUserId", "learningContentId", "learningProviderId", "externalcourseActivityId"):
        _check_required_string(body, name)
    if body["learningProviderId"] != registration_id:
        raise field_invalid("learningProviderId")
    _check_status(body, odata_type)
    if odata_type == ASSIGNMENT:
        check_assignment_type(_check_required_string(body, "assignmentType"), include_unknown_enums)
        assigner = body.get("assignerUserId")
        if assigner is not None and not isinstance(assigner, str):
            raise field_invalid("assignerUserId")
    _check_values(body)
    activity: dict[str, Any] = {"@odata.type": odata_type}
    for name in PROPERTIES[odata_type]:
        activity[name] = body.get(name)
    activity.pop("id")
    return activity
