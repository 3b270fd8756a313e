"""Realistic bodies of the platforms' own formats (invented values, in the shapes the specs' examples and the
platforms' documentation show): IMS Caliper envelopes, SCORM Cloud registrations, Canvas Live Events. The one copy
for `devtools.send`'s examples and the tests."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

# --- IMS Caliper ---

V1P1 = "http://purl.imsglobal.org/ctx/caliper/v1p1"
V1P2 = "http://purl.imsglobal.org/ctx/caliper/v1p2"
LEARNER_IRI = "https://learn.fabrikam.example/users/u-3391"
COURSE_IRI = "https://learn.fabrikam.example/courses/sec-101"
LEARNER_EMAIL = "dana.ortiz@fabrikam.example"


def envelope(
    *data: dict[str, Any] | str, version: str = V1P2, sensor: str = "https://learn.fabrikam.example/sensors/web"
) -> dict[str, Any]:
    return {"sensor": sensor, "sendTime": "2025-03-05T09:41:02.100Z", "dataVersion": version, "data": list(data)}


def person(iri: str = LEARNER_IRI, email: str | None = LEARNER_EMAIL) -> dict[str, Any]:
    found: dict[str, Any] = {"id": iri, "type": "Person"}
    if email:
        found["otherIdentifiers"] = [
            {"type": "SystemIdentifier", "identifier": "fabrikam.example:u-3391", "identifierType": "LisSourcedId"},
            {"type": "SystemIdentifier", "identifier": email, "identifierType": "EmailAddress"},
        ]
    return found


def course(iri: str = COURSE_IRI) -> dict[str, Any]:
    return {
        "id": iri,
        "type": "AssignableDigitalResource",
        "name": "Phishing awareness",
        "dateToActivate": "2025-03-01T00:00:00.000Z",
        "dateToSubmit": "2025-03-31T23:59:59.000Z",
        "maxAttempts": 2,
    }


def caliper_event(kind: str, action: str, at: str, number: int, **fields: Any) -> dict[str, Any]:
    """A Caliper 1.2 event by the learner on the course, with `fields` replacing or adding properties."""
    event = {
        "@context": V1P2,
        "id": f"urn:uuid:c2f1e7a4-1b3d-4e9a-8f60-3d7b2a9e5c{number:02d}",
        "type": kind,
        "action": action,
        "actor": person(),
        "object": course(),
        "eventTime": at,
        "edApp": "https://learn.fabrikam.example",
        "group": {"id": "https://learn.fabrikam.example/terms/2025/sections/1", "type": "CourseSection"},
        "membership": {
            "id": "https://learn.fabrikam.example/terms/2025/sections/1/rosters/1",
            "type": "Membership",
            "member": LEARNER_IRI,
            "organization": "https://learn.fabrikam.example/terms/2025/sections/1",
            "roles": ["Learner"],
            "status": "Active",
        },
        "session": {"id": "https://learn.fabrikam.example/sessions/9c2b7e", "type": "Session"},
    }
    event.update(fields)
    return event


def attempt(started: str, ended: str | None = None, count: int = 1) -> dict[str, Any]:
    found = {
        "id": f"https://learn.fabrikam.example/attempts/a-7710{count}",
        "type": "Attempt",
        "assignee": LEARNER_IRI,
        "assignable": COURSE_IRI,
        "count": count,
        "startedAtTime": started,
    }
    if ended:
        found |= {"endedAtTime": ended, "duration": "PT38M43S"}
    return found


def units_completed(value: float, maximum: float) -> dict[str, Any]:
    """A 1.2 ToolUseEvent's AggregateMeasureCollection."""
    return {
        "id": "urn:uuid:7e10e4f3-a0d8-4430-95bd-783ffae4d912",
        "type": "AggregateMeasureCollection",
        "items": [
            {
                "id": "urn:uuid:21c3f9f2-a9ef-4f65-bf9a-0699ed85e2c7",
                "type": "AggregateMeasure",
                "metric": "MinutesOnTask",
                "metricValue": 42.0,
            },
            {
                "id": "urn:uuid:c3ba4c01-1f17-46e0-85dd-1e366e6ebb81",
                "type": "AggregateMeasure",
                "metric": "UnitsCompleted",
                "name": "Units Completed",
                "metricValue": value,
                "maxMetricValue": maximum,
                "startedAtTime": "2025-03-05T09:00:00.000Z",
                "endedAtTime": "2025-03-05T09:30:00.000Z",
            },
        ],
    }


#: The notes' example A: Canvas's Caliper 1.1 submission, whose object is an Attempt.
CANVAS_SUBMISSION = {
    "sensor": "https://contoso.instructure.com/",
    "sendTime": "2025-03-04T15:20:11.512Z",
    "dataVersion": V1P1,
    "data": [
        {
            "@context": V1P1,
            "id": "urn:uuid:5b0c3a1e-7d2f-4c1b-9a55-0e8f2d6c4b71",
            "type": "AssignableEvent",
            "action": "Submitted",
            "actor": {
                "id": "urn:instructure:canvas:user:10000000000042",
                "type": "Person",
                "extensions": {
                    "com.instructure.canvas": {
                        "entity_id": "10000000000042",
                        "user_login": "avery.lee@contoso.edu",
                        "user_sis_id": "S-88121",
                    }
                },
            },
            "object": {
                "id": "urn:instructure:canvas:submission:10000000000731",
                "type": "Attempt",
                "count": 1,
                "assignee": {"id": "urn:instructure:canvas:user:10000000000042", "type": "Person"},
                "assignable": {
                    "id": "urn:instructure:canvas:assignment:10000000000217",
                    "type": "AssignableDigitalResource",
                },
            },
            "eventTime": "2025-03-04T15:20:10.987Z",
            "group": {"id": "urn:instructure:canvas:course:10000000000055", "type": "CourseOffering"},
        }
    ],
}

# --- SCORM Cloud ---

#: The notes' example: a v2 registration as the httpbasic postback's body.
SCORM_REGISTRATION = {
    "id": "reg-5f2c9d1e",
    "instance": 0,
    "updated": "2025-03-06T14:05:12.000Z",
    "registrationCompletion": "COMPLETED",
    "registrationCompletionAmount": 1.0,
    "registrationSuccess": "PASSED",
    "score": {"scaled": 86.0},
    "totalSecondsTracked": 1843.0,
    "firstAccessDate": "2025-03-06T13:31:40.000Z",
    "lastAccessDate": "2025-03-06T14:05:09.000Z",
    "completedDate": "2025-03-06T14:05:09.000Z",
    "createdDate": "2025-03-02T10:00:00.000Z",
    "course": {"id": "cyber-basics-2025", "title": "Cyber Security Basics", "version": 1},
    "learner": {"id": "lrn-20931", "email": "sam.patel@contoso.example", "firstName": "Sam", "lastName": "Patel"},
}

SCORM_REPORT_XML = """<?xml version="1.0" encoding="utf-8" ?>
<rsp stat="ok">
  <registrationreport format="course" regid="reg-5f2c9d1e" instanceid="0">
    <complete>complete</complete>
    <success>passed</success>
    <totaltime>1843</totaltime>
    <score>86</score>
  </registrationreport>
</rsp>"""


def registration(**fields: Any) -> dict[str, Any]:
    """The example registration with `fields` replacing (None removes one)."""
    found = copy.deepcopy(SCORM_REGISTRATION)
    for name, value in fields.items():
        if value is None:
            found.pop(name, None)
        else:
            found[name] = value
    return found


# --- Canvas Live Events (Canvas format) ---

CANVAS_ROOT = {
    "producer": "canvas",
    "root_account_id": "21070000000000001",
    "root_account_lti_guid": "Kq2uJ4oTy8wB1cR5dXe7F3gH9iL0mN6pS2tV4.contoso.instructure.com",
    "root_account_uuid": "Kq2uJ4oTy8wB1cR5dXe7F3gH9iL0mN6pS2tV4",
}


def course_progress(done: int, total: int, at: str, completed_at: str | None = None) -> dict[str, Any]:
    """A `course_progress` (a system job's event: no acting user in the metadata)."""
    return {
        "metadata": {
            "event_name": "course_progress",
            "event_time": at,
            "job_id": "1020020528469291",
            "job_tag": "ContextModuleProgression#evaluate!",
            **CANVAS_ROOT,
        },
        "body": {
            "course": {"account_id": "79", "id": "565", "name": "Data Privacy 101", "sis_source_id": "DP-101-2025"},
            "progress": {
                "completed_at": completed_at,
                "next_requirement_url": "https://contoso.instructure.com/courses/565/modules/items/8812",
                "requirement_completed_count": done,
                "requirement_count": total,
            },
            "user": {"email": "noor.haddad@contoso.example", "id": "123", "name": "Noor Haddad"},
        },
    }


def course_completed(at: str, completed_at: str) -> dict[str, Any]:
    """A `course_completed` raised by the learner's own request (global ids in the metadata, local in the body)."""
    return {
        "metadata": {
            "client_ip": "203.0.113.7",
            "context_id": "21070000000000565",
            "context_role": "StudentEnrollment",
            "context_type": "Course",
            "event_name": "course_completed",
            "event_time": at,
            "hostname": "contoso.instructure.com",
            "http_method": "GET",
            "request_id": "0b6f3b42-1a9e-4d7c-9f0e-2c1d5a7e8b90",
            "time_zone": "Europe/Berlin",
            "user_account_id": "21070000000000001",
            "user_id": "21070000000000123",
            "user_login": "noor.haddad@contoso.example",
            "user_sis_id": "E-40512",
            **CANVAS_ROOT,
        },
        "body": {
            "course": {"account_id": "79", "id": "565", "name": "Data Privacy 101", "sis_source_id": "DP-101-2025"},
            "progress": {
                "completed_at": completed_at,
                "next_requirement_url": None,
                "requirement_completed_count": 6,
                "requirement_count": 6,
            },
            "user": {"email": "noor.haddad@contoso.example", "id": "123", "name": "Noor Haddad"},
        },
    }


def enrollment(
    event_name: str, state: str, at: str, kind: str = "StudentEnrollment", actor: str = "1"
) -> dict[str, Any]:
    """An enrollment event made by an admin (user 1) for learner 123, with the body's global ids."""
    return {
        "metadata": {
            "event_name": event_name,
            "event_time": at,
            "hostname": "contoso.instructure.com",
            "http_method": "POST",
            "user_id": f"2107000000000000{actor}" if len(actor) == 1 else actor,
            "user_login": "registrar@contoso.example",
            "context_type": "Course",
            "context_id": "21070000000000565",
            **CANVAS_ROOT,
        },
        "body": {
            "course_id": "21070000000000565",
            "course_section_id": "21070000000004811",
            "created_at": "2025-02-20T08:00:00Z",
            "enrollment_id": "21070000000046825",
            "limit_privileges_to_course_section": False,
            "type": kind,
            "updated_at": at,
            "user_id": "21070000000000123",
            "user_name": "Noor Haddad",
            "workflow_state": state,
        },
    }


# --- The local examples (devtools.send): the sandbox's learner on the sandbox's contents, new ids each time ---

#: The sandbox's contents the local examples name, by externalId (seeded with the reference page's example tenant);
#: the local provider's contentIdPattern takes an IRI's last segment.
LOCAL_CONTENTS = {
    "caliper-101": "6ab0f9dc-e020-11ec-9d64-0242ac120005",
    "scorm-101": "6bb0f9dc-e020-11ec-9d64-0242ac120006",
    "565": "6cb0f9dc-e020-11ec-9d64-0242ac120007",
}
LOCAL_LEARNER = "ada.learner@contoso.example"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def local_caliper_example() -> dict[str, Any]:
    """A Caliper 1.2 envelope as a sensor sends it: the learner completed the course (a new event id each time)."""
    now = _now()
    completed = caliper_event(
        "AssignableEvent",
        "Completed",
        now,
        0,
        id=f"urn:uuid:{uuid.uuid4()}",
        actor=person("https://learning.contoso.example/users/ada", LOCAL_LEARNER),
        object={**course("https://learning.contoso.example/courses/caliper-101"), "name": "Caliper course 101"},
        generated={**attempt(now, now), "assignee": "https://learning.contoso.example/users/ada"},
    )
    return {**envelope(completed, sensor="https://learning.contoso.example/sensors/web"), "sendTime": now}


def local_scorm_example() -> dict[str, Any]:
    """A SCORM Cloud registration postback: the learner is 60 % through the course (`updated` is now)."""
    return registration(
        id="reg-local-ada-scorm-101",
        updated=_now(),
        registrationCompletion="INCOMPLETE",
        registrationCompletionAmount=0.6,
        registrationSuccess="UNKNOWN",
        completedDate=None,
        score=None,
        course={"id": "scorm-101", "title": "SCORM course 101", "version": 0},
        learner={"id": "ada", "email": LOCAL_LEARNER, "firstName": "Ada", "lastName": "Learner"},
    )


def local_canvas_example() -> dict[str, Any]:
    """A Canvas `course_progress`: the learner has done 3 of the course's 6 module requirements."""
    event = course_progress(3, 6, _now())
    event["body"]["user"] = {"email": LOCAL_LEARNER, "id": "1001", "name": "Ada Learner"}
    return event
