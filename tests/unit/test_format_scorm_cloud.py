"""SCORM Cloud postbacks: v2 JSON, the form auth type, the legacy XML (hardened), and the mapping per the notes."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.domain.events import ASSIGNMENT, SELF_INITIATED
from connector.domain.formats.mapped import MappedEvent, Unmappable
from connector.domain.formats.scorm_cloud import (
    ScormCloudError,
    map_registration,
    parse_registration,
    read_form,
)
from tests.support.formats import SCORM_REGISTRATION, SCORM_REPORT_XML, fold_shuffled, json_values, registration

RECEIVED = datetime(2025, 3, 6, 14, 6, 0, tzinfo=UTC)


def mapped(document, **options):
    return map_registration(parse_registration(document), received=RECEIVED, **options)


def refused(document) -> list[tuple[str, str]]:
    with pytest.raises(ScormCloudError) as caught:
        parse_registration(document)
    return [(e.field, e.problem) for e in caught.value.errors]


# --- The notes' example, as each auth type posts it ---


def test_the_httpbasic_json_body_maps_per_the_notes():
    result = mapped(json.dumps(SCORM_REGISTRATION))
    assert result.changes == {
        "status": "completed",
        "completionPercentage": 100,
        "completedDateTime": "2025-03-06T14:05:09+00:00",
        "startedDateTime": "2025-03-06T13:31:40+00:00",
    }
    assert (result.learner, result.learner_kind) == ("sam.patel@contoso.example", "email")
    assert result.content == "cyber-basics-2025"
    assert result.event_time == datetime(2025, 3, 6, 14, 5, 12, tzinfo=UTC)  # `updated`, not when it arrived
    assert "reg-5f2c9d1e" not in result.external_id
    assert "reg-5f2c9d1e" not in result.event_id


def test_the_form_auth_type_carries_the_same_json_in_data():
    body = urlencode({"data": json.dumps(SCORM_REGISTRATION), "userName": "viva", "password": "s3cret pass"})
    form = read_form(body.encode())
    assert (form.user_name, form.password) == ("viva", "s3cret pass")
    assert mapped(form.data) == mapped(json.dumps(SCORM_REGISTRATION))


def test_the_v1_form_posts_the_xml_report_with_lower_case_username():
    form = read_form(urlencode({"data": SCORM_REPORT_XML, "username": "viva", "password": "pw"}))
    assert form.user_name == "viva"
    result = mapped(form.data)
    assert result.changes == {
        "status": "completed",
        "completionPercentage": 100,
        "completedDateTime": RECEIVED.isoformat(),  # the report says no date: when it was received
    }
    assert (result.learner, result.content) == (None, None)  # it names neither: it updates the registration's activity
    assert result.external_id == mapped(json.dumps(SCORM_REGISTRATION)).external_id


def test_xml_reports_without_rsp_and_in_the_activity_format():
    bare = '<registrationreport format="summary" regid="reg-9" instanceid="1"><complete>incomplete</complete>'
    bare += "<success>unknown</success><totaltime>19</totaltime><score>unknown</score></registrationreport>"
    assert mapped(bare).changes == {"status": "inProgress"}
    activity = (
        '<rsp stat="ok"><registrationreport format="activity" regid="reg-9" instanceid="0">'
        '<activity id="TOC1"><title>Cyber Security Basics</title><attempts>1</attempts>'
        "<complete>complete</complete><success>failed</success><time>0000:30:43.00</time><score>40</score>"
        "<children/></activity></registrationreport></rsp>"
    )
    assert mapped(activity).changes["status"] == "completed"
    assert mapped(activity, failed_in_progress=True).changes == {"status": "inProgress"}


# --- The mapping table ---


@pytest.mark.parametrize(
    ("amount", "percent"),
    [(0.5, 50), (0.333, 33), (1, 100), (45.0, 45), ("0.25", 25), (-0.2, 0), (150, 100), ("NaN", None), (None, None)],
)
def test_completion_amount(amount, percent):
    body = registration(registrationCompletion="INCOMPLETE", completedDate=None)
    body["registrationCompletionAmount"] = amount
    assert mapped(body).changes.get("completionPercentage") == percent


def test_failed_stays_completed_unless_the_option_keeps_it_in_progress():
    failed = registration(registrationSuccess="FAILED", registrationCompletionAmount=1.0)
    assert mapped(failed).changes["status"] == "completed"
    kept = mapped(failed, failed_in_progress=True)
    assert kept.changes == {
        "status": "inProgress",
        "startedDateTime": "2025-03-06T13:31:40+00:00",
        "completionPercentage": 100,
    }
    assert mapped(registration(), failed_in_progress=True).changes["status"] == "completed"  # PASSED


def test_completed_without_completed_date_uses_the_last_access():
    body = registration(completedDate=None)
    assert mapped(body).changes["completedDateTime"] == "2025-03-06T14:05:09+00:00"


def test_a_registration_never_accessed_is_not_started_which_only_an_assignment_has():
    body = registration(
        registrationCompletion="UNKNOWN",
        registrationSuccess="UNKNOWN",
        registrationCompletionAmount="NaN",
        firstAccessDate=None,
        lastAccessDate=None,
        completedDate=None,
    )
    result = mapped(body)
    assert result.changes == {"status": "notStarted"}
    assert result.changes_for(ASSIGNMENT) == {"status": "notStarted"}
    assert result.changes_for(SELF_INITIATED) == {}
    accessed = registration(registrationCompletion="UNKNOWN", completedDate=None)
    assert mapped(accessed).changes["status"] == "inProgress"


@pytest.mark.parametrize(
    ("learner", "expected"),
    [
        ({"id": "E1001", "firstName": "Sam"}, ("E1001", "employeeId")),
        ({"id": "Sam.Patel@Contoso.example"}, ("sam.patel@contoso.example", "email")),
        ({"id": 20931}, ("20931", "employeeId")),
    ],
)
def test_the_learner_without_an_email(learner, expected):
    result = mapped(registration(learner=learner))
    assert (result.learner, result.learner_kind) == expected


def test_a_course_outside_the_providers_pattern_is_unmappable():
    result = mapped(registration(), content_id=lambda course: None)
    assert result == Unmappable("course.id", "the course is not a content of this provider (contentIdPattern)")


# --- Idempotency and staleness ---


def test_a_redelivery_has_the_same_key_and_a_new_update_another():
    first = mapped(json.dumps(SCORM_REGISTRATION))
    assert mapped(json.dumps(SCORM_REGISTRATION)).event_id == first.event_id
    assert mapped(registration(updated="2025-03-06T14:07:00.000Z")).event_id != first.event_id
    assert mapped(registration(instance=1)).event_id != first.event_id
    assert mapped(SCORM_REPORT_XML).event_id == mapped(SCORM_REPORT_XML).event_id
    assert mapped(SCORM_REPORT_XML).event_id != mapped(SCORM_REPORT_XML.replace("passed", "failed")).event_id


def test_a_session_of_postbacks_in_any_order_ends_completed_and_a_stale_one_changes_nothing():
    postbacks = [
        registration(
            updated="2025-03-02T10:00:00Z",
            registrationCompletion="UNKNOWN",
            registrationSuccess="UNKNOWN",
            registrationCompletionAmount=None,
            firstAccessDate=None,
            lastAccessDate=None,
            completedDate=None,
        ),
        registration(
            updated="2025-03-06T13:40:00Z",
            registrationCompletion="INCOMPLETE",
            registrationCompletionAmount=0.3,
            completedDate=None,
            registrationSuccess="UNKNOWN",
        ),
        registration(
            updated="2025-03-06T13:55:00Z",
            registrationCompletion="INCOMPLETE",
            registrationCompletionAmount=0.8,
            completedDate=None,
            registrationSuccess="UNKNOWN",
        ),
        SCORM_REGISTRATION,
    ]
    events = [mapped(body) for body in postbacks]
    assert len({event.external_id for event in events}) == 1
    for values in fold_shuffled(events):
        assert values == {
            "status": "completed",
            "completionPercentage": 100,
            "startedDateTime": "2025-03-06T13:31:40+00:00",
            "completedDateTime": "2025-03-06T14:05:09+00:00",
        }
    assert events[1].event_time < events[3].event_time  # a retried older postback sorts first


# --- Malformed bodies, and XML attacks ---


def test_malformed_bodies_name_the_field():
    assert refused("{") == [("body", "is invalid")]
    assert refused("[1]") == [("body", "is invalid")]
    assert refused(registration(id=None)) == [("id", "is required")]
    assert refused(registration(registrationCompletion="DONE", instance=-1)) == [
        ("instance", "is invalid"),
        ("registrationCompletion", "is invalid"),
    ]
    assert refused(registration(updated="last tuesday")) == [("updated", "is invalid")]
    assert refused('<rsp stat="ok"><registrationreport instanceid="0"/></rsp>') == [
        ("registrationreport.regid", "is required")
    ]
    assert refused('<rsp stat="fail"><err code="100" msg="x"/></rsp>') == [("rsp.stat", "is invalid")]
    assert refused("<rsp stat='ok'></rsp>") == [("registrationreport", "is required")]
    assert refused("<registrationreport regid='r'><complete>") == [("data", "is invalid")]


def test_malformed_forms_name_the_field():
    def form_refused(body):
        with pytest.raises(ScormCloudError) as caught:
            read_form(body)
        return [(e.field, e.problem) for e in caught.value.errors]

    assert form_refused("userName=viva&password=pw") == [("data", "is required")]
    assert form_refused("data=%7B%7D&data=%7B%7D") == [("data", "is invalid")]
    assert form_refused(b"data=\xff\xfe") == [("body", "is invalid")]
    assert form_refused("&".join(f"f{i}=1" for i in range(50))) == [("body", "is invalid")]


SECRET_FILE = "/etc/hostname"
ATTACKS = {
    "billion laughs": """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<registrationreport regid="&lol3;" instanceid="0"><complete>complete</complete></registrationreport>""",
    "external entity": f"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file://{SECRET_FILE}">]>
<registrationreport regid="&xxe;" instanceid="0"><complete>complete</complete></registrationreport>""",
    "external DTD": """<?xml version="1.0"?>
<!DOCTYPE registrationreport SYSTEM "http://127.0.0.1:9/evil.dtd">
<registrationreport regid="r" instanceid="0"><complete>complete</complete></registrationreport>""",
    "parameter entity": """<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]>
<registrationreport regid="r" instanceid="0"><complete>complete</complete></registrationreport>""",
    "a harmless DTD": """<?xml version="1.0"?>
<!DOCTYPE registrationreport [<!ELEMENT registrationreport ANY>]>
<registrationreport regid="r" instanceid="0"><complete>complete</complete></registrationreport>""",
}


@pytest.mark.parametrize("name", ATTACKS)
def test_xml_with_a_dtd_or_entities_is_refused(name):
    with pytest.raises(ScormCloudError) as caught:
        parse_registration(ATTACKS[name])
    [error] = caught.value.errors
    assert (error.field, error.rule) == ("data", "XML with a DTD, entities or external references is refused")
    if Path(SECRET_FILE).exists():
        assert Path(SECRET_FILE).read_text().strip() not in str(caught.value)


# --- Fuzzing: bodies never seen raise ScormCloudError and nothing else ---

VALUES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["COMPLETED", "complete", "FAILED", "NaN", "2025-03-06T14:05:09Z", "a@b.c", "0.5"])
    | st.dictionaries(st.sampled_from(["id", "email", "scaled"]), st.text(max_size=10) | st.integers(), max_size=2)
)


def _map_or_refuse(document) -> None:
    try:
        parsed = parse_registration(document)
    except ScormCloudError as error:
        errors = error.errors
    else:
        errors = []
    if errors:
        return
    for keep in (False, True):
        result = map_registration(parsed, received=RECEIVED, failed_in_progress=keep)
        assert isinstance(result, MappedEvent | Unmappable)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_fuzz_raw_bodies(body):
    _map_or_refuse(body)
    with contextlib.suppress(ScormCloudError):
        read_form(body)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_fuzz_any_json(value):
    _map_or_refuse(json.dumps(value))


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(sorted(SCORM_REGISTRATION)), VALUES, max_size=5))
def test_fuzz_mutated_registrations(mutations):
    _map_or_refuse({**SCORM_REGISTRATION, **mutations})


XML_PARTS = st.sampled_from(
    [
        "<rsp stat='ok'>",
        "</rsp>",
        "<registrationreport regid='r' instanceid='0'>",
        "</registrationreport>",
        "<complete>complete</complete>",
        "<success>failed</success>",
        "<activity>",
        "</activity>",
        "<!DOCTYPE a>",
        "&amp;",
        "&x;",
        "<![CDATA[x]]>",
        "<?xml version='1.0'?>",
        "<score>",
        "</score>",
        "<instanceid>",
        "x",
    ]
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(XML_PARTS, min_size=1, max_size=10))
def test_fuzz_xml_shaped(parts):
    _map_or_refuse("".join(parts))
