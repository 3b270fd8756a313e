"""Each validation rule of the reference page, and the exact Graph properties an event turns into."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connector.domain.events import EventValidationError, parse_event_json, validate_events_json
from devtools.examples import (
    EXAMPLE_1_ASSIGNMENT,
    EXAMPLE_1_PATCH,
    EXAMPLE_2_PATCH,
    EXAMPLE_2_SELF_INITIATED,
    REGISTRATION_ID,
)

ASSIGNMENT = "#microsoft.graph.learningAssignment"
SELF = "#microsoft.graph.learningSelfInitiatedCourse"


def event(odata_type: str = ASSIGNMENT, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"@odata.type": odata_type, "externalcourseActivityId": "ext-1", "status": "inProgress"}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not _DROP}


_DROP = object()


def errors_of(body: Any) -> list[dict[str, Any]]:
    with pytest.raises(EventValidationError) as caught:
        parse_event_json(json.dumps(body), REGISTRATION_ID)
    return [e.to_detail() for e in caught.value.errors]


def messages_of(body: Any) -> list[str]:
    return [d["message"] for d in errors_of(body)]


def changes_of(body: dict[str, Any]) -> dict[str, Any]:
    return dict(parse_event_json(json.dumps(body), REGISTRATION_ID).changes)


def test_reference_example_1_passes_verbatim_and_keeps_only_changeable_properties():
    update = parse_event_json(EXAMPLE_1_ASSIGNMENT, REGISTRATION_ID)
    expected = {k: v for k, v in EXAMPLE_1_PATCH.items() if k != "@odata.type"}
    assert dict(update.changes) == expected
    assert update.odata_type == ASSIGNMENT
    assert update.external_id == "12a2228a-e020-11ec-9d64-0242ac120002"
    assert update.activity_id is None


def test_reference_example_2_passes_verbatim_and_keeps_only_changeable_properties():
    update = parse_event_json(EXAMPLE_2_SELF_INITIATED, REGISTRATION_ID)
    assert dict(update.changes) == {k: v for k, v in EXAMPLE_2_PATCH.items() if k != "@odata.type"}
    assert update.odata_type == SELF


def test_odata_type_is_required():
    body = event()
    del body["@odata.type"]
    assert messages_of(body) == ["Input field @odata.type is required"]


@pytest.mark.parametrize("value", ["#microsoft.graph.learningCourseActivity", "learningAssignment", 7])
def test_odata_type_must_be_one_of_the_two_types(value):
    assert messages_of(event(value)) == ["Input field @odata.type is invalid"]


def test_status_is_required():
    assert messages_of(event(status=_DROP)) == ["Input field status is required"]


@pytest.mark.parametrize("value", [None, ""])
def test_status_shouldnt_be_empty(value):
    assert messages_of(event(status=value)) == ["Input field status shouldn't be empty"]


@pytest.mark.parametrize("status", ["notStarted", "inProgress", "completed"])
def test_assignment_accepts_each_status(status):
    assert changes_of(event(status=status)) == {"status": status}


@pytest.mark.parametrize("status", ["inProgress", "completed"])
def test_self_initiated_accepts_in_progress_and_completed(status):
    assert changes_of(event(SELF, status=status)) == {"status": status}


def test_self_initiated_rejects_not_started_with_the_rule():
    details = errors_of(event(SELF, status="notStarted"))
    assert details[0]["message"] == "Input field status is invalid"
    assert "inProgress, completed" in details[0]["rule"]


@pytest.mark.parametrize("status", ["done", "InProgress", "unknownFutureValue", 1])
def test_status_rejects_other_values(status):
    assert messages_of(event(status=status)) == ["Input field status is invalid"]


@pytest.mark.parametrize("value", [0, 55, 100, None])
def test_completion_percentage_accepts_integers_from_0_to_100_and_null(value):
    assert changes_of(event(completionPercentage=value))["completionPercentage"] == value


@pytest.mark.parametrize("value", [-1, 101, 20.5, "20", True, 1e9])
def test_completion_percentage_rejects_anything_else(value):
    details = errors_of(event(completionPercentage=value))
    assert [d["message"] for d in details] == ["Input field completionPercentage is invalid"]
    assert details[0]["rule"] == "must be an integer from 0 to 100"


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        ("2021-05-11T22:57:17+00:00", "2021-05-11T22:57:17+00:00"),
        ("2021-05-11T22:57:17Z", "2021-05-11T22:57:17+00:00"),
        ("2021-05-11T22:57:17.5-07:00", "2021-05-11T22:57:17.500000-07:00"),
    ],
)
@pytest.mark.parametrize("field", ["assignedDateTime", "completedDateTime"])
def test_date_times_with_an_offset_are_accepted(field, value, sent):
    assert changes_of(event(**{field: value}))[field] == sent


@pytest.mark.parametrize("value", ["2021-05-11T22:57:17", "2021-05-11", "yesterday", 1620773837, ""])
@pytest.mark.parametrize("field", ["assignedDateTime", "completedDateTime"])
def test_date_times_without_an_offset_or_malformed_are_rejected(field, value):
    details = errors_of(event(**{field: value}))
    assert len(details) == 1
    assert details[0]["target"] == field
    assert details[0]["message"] in (f"Input field {field} is invalid", f"Input field {field} shouldn't be empty")


def test_started_date_time_needs_an_offset_too():
    assert messages_of(event(SELF, startedDateTime="2021-05-11T22:57:17")) == ["Input field startedDateTime is invalid"]


def test_due_date_time_as_a_date_time_offset_string_becomes_a_utc_date_time_time_zone():
    assert changes_of(event(dueDateTime="2022-09-22T18:05:00+02:00"))["dueDateTime"] == {
        "dateTime": "2022-09-22T16:05:00.0000000",
        "timeZone": "UTC",
    }


def test_due_date_time_as_date_time_time_zone_is_kept_as_given():
    due = {"dateTime": "2022-09-22T16:05:00.0000000", "timeZone": "Pacific Standard Time"}
    assert changes_of(event(dueDateTime=due))["dueDateTime"] == due


@pytest.mark.parametrize(
    "due",
    [
        {"dateTime": "2022-09-22T16:05:00"},
        {"timeZone": "UTC"},
        {"dateTime": "next week", "timeZone": "UTC"},
        {"dateTime": "2022-09-22T16:05:00", "timeZone": ""},
        {"dateTime": "2022-09-22T16:05:00", "timeZone": "UTC", "extra": 1},
        "2022-09-22T16:05:00",
        42,
    ],
)
def test_due_date_time_rejects_other_shapes(due):
    assert messages_of(event(dueDateTime=due)) == ["Input field dueDateTime is invalid"]


#: The IANA names Graph's dateTimeTimeZone reference lists besides the Windows names (v1.0 page, as published).
_GRAPH_PAGE_LIST = """
Etc/GMT+12 Etc/GMT+11 Pacific/Honolulu America/Anchorage America/Santa_Isabel America/Los_Angeles America/Phoenix
America/Chihuahua America/Denver America/Guatemala America/Chicago America/Mexico_City America/Regina America/Bogota
America/New_York America/Indiana/Indianapolis America/Caracas America/Asuncion America/Halifax America/Cuiaba
America/La_Paz America/Santiago America/St_Johns America/Sao_Paulo America/Argentina/Buenos_Aires America/Cayenne
America/Godthab America/Montevideo America/Bahia Etc/GMT+2 Atlantic/Azores Atlantic/Cape_Verde Africa/Casablanca
Etc/GMT Europe/London Atlantic/Reykjavik Europe/Berlin Europe/Budapest Europe/Paris Europe/Warsaw Africa/Lagos
Africa/Windhoek Europe/Bucharest Asia/Beirut Africa/Cairo Asia/Damascus Africa/Johannesburg Europe/Kyiv
Europe/Istanbul Asia/Jerusalem Asia/Amman Asia/Baghdad Europe/Kaliningrad Asia/Riyadh Africa/Nairobi Asia/Tehran
Asia/Dubai Asia/Baku Europe/Moscow Indian/Mauritius Asia/Tbilisi Asia/Yerevan Asia/Kabul Asia/Karachi Asia/Tashkent
Asia/Kolkata Asia/Colombo Asia/Kathmandu Asia/Almaty Asia/Dhaka Asia/Yekaterinburg Asia/Yangon Asia/Bangkok
Asia/Novosibirsk Asia/Shanghai Asia/Krasnoyarsk Asia/Singapore Australia/Perth Asia/Taipei Asia/Ulaanbaatar
Asia/Irkutsk Asia/Tokyo Asia/Seoul Australia/Adelaide Australia/Darwin Australia/Brisbane Australia/Sydney
Pacific/Port_Moresby Australia/Hobart Asia/Yakutsk Pacific/Guadalcanal Asia/Vladivostok Pacific/Auckland Etc/GMT-12
Pacific/Fiji Asia/Magadan Pacific/Tongatapu Pacific/Apia Pacific/Kiritimati
"""
GRAPH_DOCUMENTED_IANA = _GRAPH_PAGE_LIST.split()
WINDOWS_NAMES = [
    "UTC",
    "Pacific Standard Time",
    "W. Europe Standard Time",
    "India Standard Time",
    "Dateline Standard Time",
]


@pytest.mark.parametrize("time_zone", WINDOWS_NAMES + GRAPH_DOCUMENTED_IANA)
def test_due_date_time_takes_windows_names_and_the_iana_names_graph_lists(time_zone):
    due = {"dateTime": "2022-09-22T16:05:00.0000000", "timeZone": time_zone}
    assert changes_of(event(dueDateTime=due))["dueDateTime"] == due


@pytest.mark.parametrize(
    ("given", "sent"),
    [("pacific standard time", "Pacific Standard Time"), ("america/new_york", "America/New_York"), ("utc", "UTC")],
)
def test_a_time_zone_in_another_case_is_accepted_and_sent_as_graph_spells_it(given, sent):
    due = {"dateTime": "2022-09-22T16:05:00.0000000", "timeZone": given}
    assert changes_of(event(dueDateTime=due))["dueDateTime"]["timeZone"] == sent


@pytest.mark.parametrize("time_zone", ["Mars/Olympus", "Pacific Time", "GMT+2", "Europe/Atlantis", "+02:00", "Local"])
def test_an_unknown_time_zone_is_invalid_naming_due_date_time_and_the_rule(time_zone):
    (detail,) = errors_of(event(dueDateTime={"dateTime": "2022-09-22T16:05:00", "timeZone": time_zone}))
    assert (detail["message"], detail["target"]) == ("Input field dueDateTime is invalid", "dueDateTime")
    assert "Windows time zone name" in detail["rule"]
    assert "IANA" in detail["rule"]


def test_notes_as_a_string_becomes_a_text_item_body():
    assert changes_of(event(notes="hello"))["notes"] == {"content": "hello", "contentType": "text"}


@pytest.mark.parametrize("content_type", ["text", "html"])
def test_notes_as_an_item_body_is_kept(content_type):
    notes = {"contentType": content_type, "content": "<b>hi</b>"}
    assert changes_of(event(notes=notes))["notes"] == {"content": "<b>hi</b>", "contentType": content_type}


@pytest.mark.parametrize("notes", [{"contentType": "markdown", "content": "x"}, {"content": "x"}, 5, ["x"]])
def test_notes_rejects_other_shapes(notes):
    assert messages_of(event(notes=notes)) == ["Input field notes is invalid"]


def test_identity_fields_are_accepted_and_route_but_are_not_changes():
    body = event(
        learnerUserId="7ba2228a-e020-11ec-9d64-0242ac120002",
        learningContentId="57baf9dc-e020-11ec-9d64-0242ac120002",
        learningProviderId=REGISTRATION_ID,
        assignerUserId="cea1684d-57dc-438d-a9d1-e666ec1a7f3d",
        assignmentType="recommended",
    )
    update = parse_event_json(json.dumps(body), REGISTRATION_ID)
    assert dict(update.changes) == {"status": "inProgress"}
    assert update.event["assignmentType"] == "recommended"  # kept on the queue, not sent


@pytest.mark.parametrize(
    ("odata_type", "field", "value"),
    [
        (ASSIGNMENT, "startedDateTime", "2021-05-11T22:57:17+00:00"),
        (SELF, "assignedDateTime", "2021-05-11T22:57:17+00:00"),
        (SELF, "dueDateTime", "2021-05-11T22:57:17+00:00"),
        (SELF, "notes", "x"),
        (SELF, "assignmentType", "required"),
    ],
)
def test_a_property_of_the_other_type_is_rejected(odata_type, field, value):
    details = errors_of(event(odata_type, **{field: value}))
    assert [d["message"] for d in details] == [f"Input field {field} is invalid"]


@pytest.mark.parametrize("field", ["completionPercentag", "Status", "completed_date_time", "id"])
def test_an_unknown_property_is_rejected_not_dropped(field):
    details = errors_of(event(**{field: 1}))
    assert [d["message"] for d in details] == [f"Input field {field} is invalid"]
    assert "spelling" in details[0]["rule"]


def test_learning_provider_id_must_equal_the_routes_registration_id():
    details = errors_of(event(learningProviderId="11111111-1111-1111-1111-111111111111"))
    assert [d["message"] for d in details] == ["Input field learningProviderId is invalid"]


def test_learning_provider_id_compares_without_regard_to_case():
    assert changes_of(event(learningProviderId=REGISTRATION_ID.upper())) == {"status": "inProgress"}


def test_an_activity_id_is_required():
    details = errors_of(event(externalcourseActivityId=_DROP))
    assert details[0]["message"] == "Input field externalcourseActivityId is required"
    assert "learningCourseActivityId" in details[0]["rule"]


@pytest.mark.parametrize("field", ["externalcourseActivityId", "externalCourseActivityId"])
def test_the_external_id_is_accepted_in_either_casing(field):
    body = {**event(externalcourseActivityId=_DROP), field: "ext-9"}
    update = parse_event_json(json.dumps(body), REGISTRATION_ID)
    assert (update.external_id, update.activity_id) == ("ext-9", None)


def test_the_graph_id_wins_over_the_external_id():
    update = parse_event_json(json.dumps(event(learningCourseActivityId="graph-1")), REGISTRATION_ID)
    assert (update.activity_id, update.activity_key) == ("graph-1", "id:graph-1")


def test_both_casings_must_agree():
    assert messages_of(event(externalCourseActivityId="other")) == ["Input field externalCourseActivityId is invalid"]


@pytest.mark.parametrize("value", ["", "   ", None])
def test_ids_shouldnt_be_empty(value):
    assert messages_of(event(learnerUserId=value)) == ["Input field learnerUserId shouldn't be empty"]


ID_FIELDS = [
    "learningCourseActivityId",
    "externalcourseActivityId",
    "externalCourseActivityId",
    "learnerUserId",
    "learningContentId",
    "assignerUserId",
]


@pytest.mark.parametrize("field", ID_FIELDS)
@pytest.mark.parametrize("value", [".", "..", "...", " .. "])
def test_an_id_of_dots_only_is_invalid_as_it_would_name_another_resource_in_a_url(field, value):
    body = event(**{field: value})
    if field == "externalCourseActivityId":
        del body["externalcourseActivityId"]
    (detail,) = errors_of(body)
    assert (detail["message"], detail["target"]) == (f"Input field {field} is invalid", field)
    assert "dots" in detail["rule"]


def test_an_id_with_dots_and_other_characters_is_fine():
    update = parse_event_json(json.dumps(event(externalcourseActivityId="course..v2.")), REGISTRATION_ID)
    assert update.external_id == "course..v2."


def test_every_bad_field_gets_its_own_detail():
    details = errors_of(event(status="x", completionPercentage=500, notez="typo", learningProviderId="other"))
    assert sorted(d["target"] for d in details) == ["completionPercentage", "learningProviderId", "notez", "status"]


def test_a_batch_names_the_index_of_each_bad_event():
    batch = [event(), event(status="nope"), "not an object", event(completionPercentage=-5)]
    with pytest.raises(EventValidationError) as caught:
        validate_events_json(json.dumps(batch), REGISTRATION_ID, batch=True)
    found = [(e.index, e.field, e.problem) for e in caught.value.errors]
    assert found == [
        (1, "status", "is invalid"),
        (2, "event", "is invalid"),
        (3, "completionPercentage", "is invalid"),
    ]


def test_a_valid_batch_keeps_order():
    batch = [event(externalcourseActivityId=f"ext-{i}") for i in range(3)]
    events = validate_events_json(json.dumps(batch), REGISTRATION_ID, batch=True)
    assert [e["externalcourseActivityId"] for e in events] == ["ext-0", "ext-1", "ext-2"]


def test_malformed_json_names_the_body():
    with pytest.raises(EventValidationError) as caught:
        parse_event_json('{"status": ', REGISTRATION_ID)
    assert caught.value.errors[0].message == "Input field body is invalid"
    assert "JSON" in caught.value.errors[0].rule


# --- The lifecycle (issue 12): removals and the assignment types create needs. ---


@pytest.mark.parametrize("odata_type", [ASSIGNMENT, SELF])
def test_a_removal_names_the_activity_and_needs_no_status(odata_type):
    update = parse_event_json(
        json.dumps({"@odata.type": odata_type, "externalcourseActivityId": "ext-1", "@removed": {"reason": "deleted"}}),
        REGISTRATION_ID,
    )
    assert (update.removed, dict(update.changes), update.external_id) == (True, {}, "ext-1")


def test_a_removal_that_also_changes_properties_is_refused_naming_them():
    body = event(status="completed", completionPercentage=100, **{"@removed": {"reason": "deleted"}})
    details = errors_of(body)
    assert sorted(d["target"] for d in details) == ["completionPercentage", "status"]
    assert all("a removal (@removed) changes nothing" in d["rule"] for d in details)


@pytest.mark.parametrize("removed", [{"reason": "changed"}, {}, "deleted", None, {"reason": "deleted", "x": 1}])
def test_removed_must_say_deleted(removed):
    assert errors_of(event(status=_DROP, **{"@removed": removed}))[0]["target"] == "@removed"


def test_an_update_still_needs_its_status_with_the_types_rule():
    (detail,) = errors_of(event(SELF, status=_DROP))
    assert detail["message"] == "Input field status is required"
    assert detail["rule"] == "must be one of inProgress, completed for a learningSelfInitiatedCourse"


def test_peer_recommended_is_an_assignment_type():
    assert (
        parse_event_json(json.dumps(event(assignmentType="peerRecommended")), REGISTRATION_ID).event["assignmentType"]
        == "peerRecommended"
    )
    assert errors_of(event(assignmentType="optional"))[0]["rule"] == "must be required, recommended or peerRecommended"


def test_the_same_content_with_and_without_a_removal_differs():
    update = parse_event_json(json.dumps(event(status=_DROP, **{"@removed": {"reason": "deleted"}})), REGISTRATION_ID)
    other = parse_event_json(json.dumps({**event(), "status": "inProgress"}), REGISTRATION_ID)
    assert update.fingerprint != other.fingerprint
