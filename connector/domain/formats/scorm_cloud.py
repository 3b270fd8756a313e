"""Rustici SCORM Cloud (and Engine) registration postbacks, and the progress they carry.

What arrives (always a POST):
- auth type `httpbasic`: the v2 registration JSON (GetRegistrationProgress's RegistrationSchema) as the body,
  credentials in `Authorization: Basic`; the legacy v1 API posts its XML registration report the same way;
- auth type `form`: `application/x-www-form-urlencoded` with `data` (that JSON, or the legacy XML), `userName` and
  `password` (`username` in v1). `read_form` returns the three; the caller checks the credentials, then
  `parse_registration` reads `data` (JSON or XML, told apart by their first character).
The XML is parsed with defusedxml: a DTD, entities and external references are refused, whatever they hold.

Leniency: enums in either case (`COMPLETED`, v1's `complete`); `registrationCompletionAmount` as a number, a numeric
string, `"NaN"` or null (both omitted); ids as numbers; times without an offset (taken as UTC).

Mapping (`map_registration`), per the project notes:
| registration                                      | change                                                    |
|---------------------------------------------------|-----------------------------------------------------------|
| registrationCompletion COMPLETED                  | completed, 100 %, completedDateTime = completedDate ??    |
|                                                   | lastAccessDate ?? the postback's time                     |
| INCOMPLETE, or UNKNOWN with a firstAccessDate     | inProgress                                                |
| UNKNOWN, never accessed                           | notStarted (assignments only: `changes_for`)              |
| registrationCompletionAmount                      | completionPercentage: a ratio up to 1 (0.5 → 50), a larger |
|                                                   | value as a percentage (the range is unconfirmed), clamped  |
| registrationSuccess FAILED                        | no change, or with `failed_in_progress` a COMPLETED        |
|                                                   | registration stays inProgress (Graph has no success field) |
| firstAccessDate                                   | startedDateTime                                           |
| learner.email, else learner.id                    | the learner: an id that is an address is an email, another |
|                                                   | an employee id                                            |
| course.id                                         | the content, through the caller's `content_id`            |
`score` and `totalSecondsTracked` have no Graph property and are not read.

Naming and ordering: the activity is the registration (`external_id` derived from its id alone: a new instance, made
when the learner relaunches a new course version, is the same learner on the same course; and the legacy XML names
nothing else). The idempotency key is registration + instance + `updated`, and `updated` is the event's time, so a
retried older postback sorts before a newer one and, under the forward-only merge, changes nothing. The legacy XML
has no `updated`: its key is registration + instance + what it reports, its time the time it was received.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as parse_xml
from pydantic import BeforeValidator, Field, ValidationError

from connector.domain.events import FieldError
from connector.domain.formats.mapped import (
    ContentId,
    FormatError,
    IdText,
    Instant,
    LearnerKind,
    Lenient,
    Mapped,
    MappedEvent,
    Unmappable,
    as_given,
    completed,
    email_of,
    field_errors,
    graph_time,
    hashed_id,
    in_progress,
    load_json,
    percentage,
    utc,
)

_MAX_FORM_FIELDS = 20
_XML_NAMES = {
    "id": "registrationreport.regid",
    "instance": "registrationreport.instanceid",
    "registrationCompletion": "registrationreport.complete",
    "registrationSuccess": "registrationreport.success",
}


class ScormCloudError(FormatError):
    """The postback is not a SCORM Cloud registration (JSON) or registration report (XML)."""


class FormDataError(ScormCloudError):
    """A form postback without a readable `data` field: its credentials, so that the caller can tell a sender who
    may post (and gets the error recorded) from one who may not."""

    def __init__(self, errors: list[FieldError], user_name: str | None, password: str | None) -> None:
        super().__init__(errors)
        self.user_name = user_name
        self.password = password


def _enum(value: Any) -> Any:
    """`COMPLETED` (v2) and `complete` (v1) alike."""
    if not isinstance(value, str):
        return value
    upper = value.strip().upper()
    return "COMPLETED" if upper == "COMPLETE" else upper


def _amount(value: Any) -> Any:
    """A number, a numeric string, or `"NaN"` / null / infinity (nothing known)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError("must be a number from 0 to 1") from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    return value


class Course(Lenient):
    id: IdText | None = None


class Learner(Lenient):
    id: IdText | None = None
    email: str | None = None


class Registration(Lenient):
    """The registration as a postback reports it (v2 names; the legacy XML is read into them)."""

    id: IdText = Field(min_length=1)
    instance: int = Field(0, ge=0)
    updated: Instant | None = None
    completion: Annotated[Literal["COMPLETED", "INCOMPLETE", "UNKNOWN"], BeforeValidator(_enum)] = Field(
        "UNKNOWN", alias="registrationCompletion"
    )
    completion_amount: Annotated[float | None, BeforeValidator(_amount)] = Field(
        None, alias="registrationCompletionAmount"
    )
    success: Annotated[Literal["PASSED", "FAILED", "UNKNOWN"], BeforeValidator(_enum)] = Field(
        "UNKNOWN", alias="registrationSuccess"
    )
    first_access: Instant | None = Field(None, alias="firstAccessDate")
    last_access: Instant | None = Field(None, alias="lastAccessDate")
    completed_at: Instant | None = Field(None, alias="completedDate")
    course: Course | None = None
    learner: Learner | None = None


@dataclass(frozen=True)
class FormPostback:
    """The `form` auth type's fields: the credentials to check, and the registration document to read."""

    user_name: str | None
    password: str | None
    data: str


def read_form(body: bytes | str) -> FormPostback:
    """The fields of a form postback (`data`, `userName` / v1 `username`, `password`); raises ScormCloudError."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        fields = parse_qs(text, keep_blank_values=True, max_num_fields=_MAX_FORM_FIELDS)
    except ValueError:  # not UTF-8, or more fields than a postback has
        raise ScormCloudError.one("body", "must be a form with the fields data, userName and password") from None
    user_name = (fields.get("userName") or fields.get("username") or [""])[0] or None
    password = (fields.get("password") or [""])[0] or None
    data = fields.get("data", [])
    if len(data) != 1 or not data[0].strip():
        problem: Literal["is required", "is invalid"] = "is invalid" if data else "is required"
        rule = "must be given once: the registration as JSON (or the v1 XML)"
        raise FormDataError([FieldError("data", problem, rule)], user_name, password)
    return FormPostback(user_name, password, data[0])


def parse_registration(document: bytes | str | Mapping[str, Any]) -> Registration:
    """The registration a postback reports: v2 JSON (or its decoded object), or the legacy v1 XML report."""
    if isinstance(document, Mapping):
        return _validated(document, {})
    text = document.decode("utf-8", "replace") if isinstance(document, bytes) else document
    if text.lstrip().startswith("<"):
        return _validated(_from_xml(text), _XML_NAMES)
    data = load_json(text, ScormCloudError)
    if not isinstance(data, Mapping):
        raise ScormCloudError.one("body", "must be a SCORM Cloud registration: a JSON object")
    return _validated(data, {})


def _validated(data: Mapping[str, Any], names: Mapping[str, str]) -> Registration:
    try:
        return Registration.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc)
        raise ScormCloudError([FieldError(names.get(e.field, e.field), e.problem, e.rule) for e in errors]) from None


def _from_xml(text: str) -> dict[str, Any]:
    """The legacy registration report (`<rsp stat="ok"><registrationreport regid instanceid>` with `complete`
    and `success`, directly or in its top `activity`), in the v2 JSON's names."""
    try:
        root = parse_xml(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise ScormCloudError.one("data", "XML with a DTD, entities or external references is refused") from None
    except (ParseError, ValueError):
        raise ScormCloudError.one("data", "must be a registration as JSON, or the v1 XML registration report") from None
    if root.tag == "rsp" and root.get("stat", "ok") != "ok":
        raise ScormCloudError.one("rsp.stat", 'must be "ok": the postback reports an error, not a registration')
    report = root if root.tag == "registrationreport" else root.find("registrationreport")
    if report is None:
        raise ScormCloudError.one("registrationreport", "the XML holds no registration report", "is required")
    summary = report if report.find("complete") is not None else report.find("activity")
    found = {
        "id": report.get("regid"),
        "instance": report.get("instanceid"),
        "registrationCompletion": _text(summary, "complete"),
        "registrationSuccess": _text(summary, "success"),
    }
    return {name: value for name, value in found.items() if value is not None}


def _text(element: Element | None, tag: str) -> str | None:
    found = element.find(tag) if element is not None else None
    return found.text.strip() if found is not None and found.text else None


# --- The mapping. ---


def map_registration(
    registration: Registration,
    *,
    received: datetime,
    failed_in_progress: bool = False,
    content_id: ContentId = as_given,
) -> Mapped:
    """The change a postback makes. `received` orders a report that carries no `updated` (the legacy XML);
    `failed_in_progress` keeps a FAILED registration in progress although SCORM Cloud says COMPLETED."""
    content = None
    if registration.course is not None and registration.course.id:
        content = content_id(registration.course.id)
        if content is None:
            return Unmappable("course.id", "the course is not a content of this provider (contentIdPattern)")
    when = registration.updated or utc(received)
    learner, kind = _learner(registration.learner)
    return MappedEvent(
        event_id=registration_event_id(registration),
        event_time=when,
        external_id=hashed_id("scorm-registration", registration.id),
        changes=_changes(registration, when, failed_in_progress),
        learner=learner,
        learner_kind=kind,
        content=content,
        odata_type=None,
    )


def _changes(registration: Registration, when: datetime, failed_in_progress: bool) -> dict[str, Any]:
    held_back = failed_in_progress and registration.success == "FAILED"
    if registration.completion == "COMPLETED" and not held_back:
        finished = registration.completed_at or registration.last_access or when
        return completed(finished, registration.first_access)
    if registration.completion == "UNKNOWN" and registration.first_access is None:
        return {"status": "notStarted"}
    changes = in_progress(registration.first_access)
    amount = registration.completion_amount
    if amount is not None:
        share = percentage(amount, 1 if amount <= 1 else 100)
        if share is not None:
            changes["completionPercentage"] = share
    return changes


def _learner(learner: Learner | None) -> tuple[str | None, LearnerKind | None]:
    if learner is None:
        return None, None
    email = email_of(learner.email) or email_of(learner.id)
    if email:
        return email, "email"
    return (learner.id, "employeeId") if learner.id else (None, None)


def registration_event_id(registration: Registration) -> str:
    """Registration + instance + `updated`; without `updated`, + what the report says."""
    if registration.updated is not None:
        return hashed_id("scorm", registration.id, str(registration.instance), graph_time(registration.updated))
    said = registration.model_dump_json(exclude={"id", "instance"})
    return hashed_id("scorm", registration.id, str(registration.instance), said)
