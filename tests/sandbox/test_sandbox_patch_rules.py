"""PATCH learningCourseActivity: each rule of the reference page, in order, with Graph's exact error bodies."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from devtools.examples import EXAMPLE_1_ASSIGNMENT, EXAMPLE_2_SELF_INITIATED
from sandbox.rules import MSG_BAD_JSON, MSG_BAD_REGISTRATION, MSG_FORBIDDEN, MSG_PROVIDER_DISABLED
from sandbox.seed import (
    EXAMPLE_ASSIGNMENT_EXTERNAL_ID,
    EXAMPLE_ASSIGNMENT_ID,
    EXAMPLE_SELF_INITIATED_EXTERNAL_ID,
    EXAMPLE_SELF_INITIATED_ID,
)

from .conftest import ACTIVITIES, ASSIGNMENT_URL, REG, SELF_URL, assert_graph_error, graph_client

ASSIGNMENT = "#microsoft.graph.learningAssignment"
SELF = "#microsoft.graph.learningSelfInitiatedCourse"
NOT_FOUND = "The assignment ID requested doesn\u2019t exist."

# The two request bodies of the reference page, verbatim.
EXAMPLE_1 = json.loads(EXAMPLE_1_ASSIGNMENT)
EXAMPLE_2 = json.loads(EXAMPLE_2_SELF_INITIATED)


def bad(message: str) -> tuple[int, str, str]:
    return 400, "badRequest", message


def patch(client: httpx.Client, url: str, body: Any) -> httpx.Response:
    return client.patch(url, json=body)


# --- the reference examples ----------------------------------------------------------------------------------
def test_example_1_verbatim_updates_the_assignment(sandbox, graph):
    response = patch(graph, ASSIGNMENT_URL, EXAMPLE_1)
    assert response.status_code == 204, response.text
    assert response.content == b""
    stored = sandbox.admin.activity(EXAMPLE_ASSIGNMENT_ID)
    assert stored["status"] == "inProgress"
    assert stored["completionPercentage"] == 20
    assert stored["assignedDateTime"] == "2021-05-11T22:57:17+00:00"
    assert stored["dueDateTime"] == {"dateTime": "2022-09-22T16:05:00.0000000", "timeZone": "UTC"}
    assert stored["notes"] == {"contentType": "text", "content": "required assignment added for user"}
    assert stored["completedDateTime"] is None


def test_example_2_at_its_documented_url_hits_the_assignment_and_is_refused(graph):
    # The page sends the self-initiated body to the assignment's id (and with the assignment's external id):
    # a type change, which the sandbox refuses like any other.
    assert_graph_error(patch(graph, ASSIGNMENT_URL, EXAMPLE_2), *bad("Input field @odata.type is invalid"))


def test_example_2_verbatim_on_the_self_initiated_activity_trips_on_its_external_id(sandbox, graph):
    assert_graph_error(patch(graph, SELF_URL, EXAMPLE_2), *bad("Input field externalcourseActivityId is invalid"))
    assert sandbox.admin.activity(EXAMPLE_SELF_INITIATED_ID)["completionPercentage"] is None


def test_example_2_with_the_activitys_own_external_id_updates_it(sandbox, graph):
    body = {**EXAMPLE_2, "externalcourseActivityId": EXAMPLE_SELF_INITIATED_EXTERNAL_ID}
    response = patch(graph, SELF_URL, body)
    assert response.status_code == 204, response.text
    stored = sandbox.admin.activity(EXAMPLE_SELF_INITIATED_ID)
    assert (stored["completionPercentage"], stored["startedDateTime"]) == (30, "2021-05-11T22:57:17+00:00")


def test_explicit_null_clears_and_absent_properties_stay(sandbox, graph):
    first = {"@odata.type": ASSIGNMENT, "status": "completed", "completedDateTime": "2024-01-02T03:04:05Z"}
    assert patch(graph, ASSIGNMENT_URL, {**first, "completionPercentage": 100}).status_code == 204
    assert patch(graph, ASSIGNMENT_URL, {"@odata.type": ASSIGNMENT, "status": "inProgress"}).status_code == 204
    stored = sandbox.admin.activity(EXAMPLE_ASSIGNMENT_ID)
    assert (stored["completedDateTime"], stored["completionPercentage"]) == ("2024-01-02T03:04:05Z", 100)
    cleared = {"@odata.type": ASSIGNMENT, "status": "inProgress", "completedDateTime": None}
    assert patch(graph, ASSIGNMENT_URL, cleared).status_code == 204
    assert sandbox.admin.activity(EXAMPLE_ASSIGNMENT_ID)["completedDateTime"] is None


# --- rule 1: provider --------------------------------------------------------------------------------------
def test_unknown_registration_id(graph):
    url = f"/employeeExperience/learningProviders/no-such-provider/learningCourseActivities/{EXAMPLE_ASSIGNMENT_ID}"
    assert_graph_error(patch(graph, url, EXAMPLE_1), *bad(MSG_BAD_REGISTRATION))


def test_disabled_provider(sandbox, graph):
    sandbox.admin.put_provider(REG, isCourseActivitySyncEnabled=False)
    assert_graph_error(patch(graph, ASSIGNMENT_URL, EXAMPLE_1), *bad(MSG_PROVIDER_DISABLED))
    assert sandbox.admin.activity(EXAMPLE_ASSIGNMENT_ID)["status"] == "notStarted"


def test_provider_is_checked_before_the_body(sandbox, graph):
    sandbox.admin.put_provider(REG, isCourseActivitySyncEnabled=False)
    assert_graph_error(graph.patch(ASSIGNMENT_URL, content=b"not json"), *bad(MSG_PROVIDER_DISABLED))


# --- rule 2: permission ------------------------------------------------------------------------------------
def test_token_without_the_assignment_role_is_forbidden_for_assignments_only(sandbox):
    token = sandbox.admin.mint_token(roles=["LearningSelfInitiatedCourse.ReadWrite.All"])
    with graph_client(sandbox, token) as client:
        assert_graph_error(patch(client, ASSIGNMENT_URL, EXAMPLE_1), 403, "Forbidden", MSG_FORBIDDEN)
        ok = {"@odata.type": SELF, "status": "completed"}
        assert patch(client, SELF_URL, ok).status_code == 204


def test_token_without_the_self_initiated_role_is_forbidden_for_self_initiated(sandbox):
    token = sandbox.admin.mint_token(roles=["LearningAssignedCourse.ReadWrite.All"])
    with graph_client(sandbox, token) as client:
        body = {"@odata.type": SELF, "status": "completed"}
        assert_graph_error(patch(client, SELF_URL, body), 403, "Forbidden", MSG_FORBIDDEN)


def test_permission_is_checked_before_the_id(sandbox):
    token = sandbox.admin.mint_token(roles=["User.Read.All"])
    with graph_client(sandbox, token) as client:
        url = f"{ACTIVITIES}/no-such-activity"
        assert_graph_error(patch(client, url, EXAMPLE_1), 403, "Forbidden", MSG_FORBIDDEN)


# --- rule 3: id --------------------------------------------------------------------------------------------
def test_unknown_id(graph):
    assert_graph_error(patch(graph, f"{ACTIVITIES}/no-such-activity", EXAMPLE_1), 404, "notFound", NOT_FOUND)


def test_activity_of_another_provider_is_not_found(sandbox, graph):
    other = "0f0f0f0f-0000-4000-8000-000000000002"
    sandbox.admin.put_provider(other, isCourseActivitySyncEnabled=True)
    url = f"/employeeExperience/learningProviders/{other}/learningCourseActivities/{EXAMPLE_ASSIGNMENT_ID}"
    assert_graph_error(patch(graph, url, {**EXAMPLE_1, "learningProviderId": other}), 404, "notFound", NOT_FOUND)


def test_id_is_checked_before_the_body(graph):
    response = graph.patch(f"{ACTIVITIES}/no-such-activity", content=b"{not json")
    assert_graph_error(response, 404, "notFound", NOT_FOUND)


# --- rule 4: body and @odata.type --------------------------------------------------------------------------
@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"a string"', b"", b"null"])
def test_body_must_be_a_json_object(graph, raw):
    response = graph.patch(ASSIGNMENT_URL, content=raw, headers={"Content-Type": "application/json"})
    assert_graph_error(response, *bad(MSG_BAD_JSON))


def test_odata_type_is_required(graph):
    assert_graph_error(
        patch(graph, ASSIGNMENT_URL, {"status": "completed"}), *bad("Input field @odata.type is required")
    )


@pytest.mark.parametrize(
    ("url", "odata_type"),
    [
        (ASSIGNMENT_URL, "#microsoft.graph.learningCourseActivity"),
        (ASSIGNMENT_URL, "microsoft.graph.learningAssignment"),
        (ASSIGNMENT_URL, None),
        (ASSIGNMENT_URL, SELF),
        (SELF_URL, ASSIGNMENT),
    ],
)
def test_odata_type_must_be_the_activitys(graph, url, odata_type):
    body = {"@odata.type": odata_type, "status": "completed"}
    assert_graph_error(patch(graph, url, body), *bad("Input field @odata.type is invalid"))


# --- rule 5: which properties ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "odata_type", "name", "value"),
    [
        (ASSIGNMENT_URL, ASSIGNMENT, "completed_date_time", None),
        (ASSIGNMENT_URL, ASSIGNMENT, "completion_percentage", 10),
        (ASSIGNMENT_URL, ASSIGNMENT, "foo", 1),
        (ASSIGNMENT_URL, ASSIGNMENT, "startedDateTime", "2021-05-11T22:57:17Z"),
        (ASSIGNMENT_URL, ASSIGNMENT, "learnerUserId", "someone-else"),
        (ASSIGNMENT_URL, ASSIGNMENT, "learningContentId", "other-content"),
        (ASSIGNMENT_URL, ASSIGNMENT, "assignmentType", "recommended"),
        (ASSIGNMENT_URL, ASSIGNMENT, "assignerUserId", None),
        (ASSIGNMENT_URL, ASSIGNMENT, "externalCourseActivityId", "other-ext"),
        (ASSIGNMENT_URL, ASSIGNMENT, "id", "other-id"),
        (SELF_URL, SELF, "assignedDateTime", "2021-05-11T22:57:17Z"),
        (SELF_URL, SELF, "dueDateTime", None),
        (SELF_URL, SELF, "notes", None),
        (SELF_URL, SELF, "assignmentType", "required"),
        (SELF_URL, SELF, "@odata.context", "x"),
    ],
)
def test_property_not_changeable_for_the_type(sandbox, graph, url, odata_type, name, value):
    before = sandbox.admin.activities()
    body = {"@odata.type": odata_type, "status": "completed", name: value}
    assert_graph_error(patch(graph, url, body), *bad(f"Input field {name} is invalid"))
    assert sandbox.admin.activities() == before


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("externalCourseActivityId", EXAMPLE_ASSIGNMENT_EXTERNAL_ID),
        ("externalcourseActivityId", EXAMPLE_ASSIGNMENT_EXTERNAL_ID),
        ("id", EXAMPLE_ASSIGNMENT_ID),
        ("learningProviderId", REG),
    ],
)
def test_identity_properties_with_the_stored_value_are_tolerated(graph, name, value):
    assert (
        patch(graph, ASSIGNMENT_URL, {"@odata.type": ASSIGNMENT, "status": "completed", name: value}).status_code == 204
    )


def test_unknown_property_is_reported_before_a_missing_status(graph):
    assert_graph_error(
        patch(graph, ASSIGNMENT_URL, {"@odata.type": ASSIGNMENT, "x": 1}), *bad("Input field x is invalid")
    )


# --- rule 6: status ----------------------------------------------------------------------------------------
def test_status_is_required(graph):
    body = {"@odata.type": ASSIGNMENT, "completionPercentage": 10}
    assert_graph_error(patch(graph, ASSIGNMENT_URL, body), *bad("Input field status is required"))


@pytest.mark.parametrize("value", [None, ""])
def test_status_should_not_be_empty(graph, value):
    body = {"@odata.type": ASSIGNMENT, "status": value}
    assert_graph_error(patch(graph, ASSIGNMENT_URL, body), *bad("Input field status shouldn't be empty"))


@pytest.mark.parametrize(
    ("url", "odata_type", "value"),
    [
        (SELF_URL, SELF, "notStarted"),
        (ASSIGNMENT_URL, ASSIGNMENT, "Completed"),
        (ASSIGNMENT_URL, ASSIGNMENT, "done"),
        (ASSIGNMENT_URL, ASSIGNMENT, "unknownFutureValue"),
        (ASSIGNMENT_URL, ASSIGNMENT, 1),
    ],
)
def test_status_must_be_a_value_of_the_type(graph, url, odata_type, value):
    assert_graph_error(
        patch(graph, url, {"@odata.type": odata_type, "status": value}), *bad("Input field status is invalid")
    )


@pytest.mark.parametrize("value", ["notStarted", "inProgress", "completed"])
def test_assignment_statuses(sandbox, graph, value):
    assert patch(graph, ASSIGNMENT_URL, {"@odata.type": ASSIGNMENT, "status": value}).status_code == 204
    assert sandbox.admin.activity(EXAMPLE_ASSIGNMENT_ID)["status"] == value


# --- rule 7: completionPercentage --------------------------------------------------------------------------
@pytest.mark.parametrize("value", [-1, 101, 50.5, 20.0, "20", True, [], {}])
def test_completion_percentage_invalid(graph, value):
    body = {"@odata.type": ASSIGNMENT, "status": "inProgress", "completionPercentage": value}
    assert_graph_error(patch(graph, ASSIGNMENT_URL, body), *bad("Input field completionPercentage is invalid"))


@pytest.mark.parametrize("value", [0, 100, 57, None])
def test_completion_percentage_valid(sandbox, graph, value):
    body = {"@odata.type": ASSIGNMENT, "status": "inProgress", "completionPercentage": value}
    assert patch(graph, ASSIGNMENT_URL, body).status_code == 204
    assert sandbox.admin.activity(EXAMPLE_ASSIGNMENT_ID)["completionPercentage"] == value


# --- rule 8: dates, dueDateTime, notes ---------------------------------------------------------------------
BAD_OFFSET_DATES = [
    "2021-05-11T22:57:17",
    "2021-05-11",
    "2021-05-11 22:57:17Z",
    "2021-13-11T22:57:17Z",
    "2021-02-30T22:57:17Z",
    "2021-05-11T25:57:17Z",
    "2021-05-11T22:57:17+0000",
    "2021-05-11T22:57:17z",
    "yesterday",
    "",
    1620773837,
]
GOOD_OFFSET_DATES = [
    "2021-05-11T22:57:17Z",
    "2021-05-11T22:57:17+00:00",
    "2021-05-11T22:57:17.1234567-07:00",
    "2021-05-11T22:57Z",
    None,
]


@pytest.mark.parametrize("value", BAD_OFFSET_DATES)
@pytest.mark.parametrize(
    ("url", "odata_type", "name"),
    [
        (ASSIGNMENT_URL, ASSIGNMENT, "assignedDateTime"),
        (ASSIGNMENT_URL, ASSIGNMENT, "completedDateTime"),
        (SELF_URL, SELF, "startedDateTime"),
    ],
)
def test_datetime_offset_invalid(graph, url, odata_type, name, value):
    body = {"@odata.type": odata_type, "status": "completed", name: value}
    assert_graph_error(patch(graph, url, body), *bad(f"Input field {name} is invalid"))


@pytest.mark.parametrize("value", GOOD_OFFSET_DATES)
def test_datetime_offset_valid(sandbox, graph, value):
    body = {"@odata.type": SELF, "status": "completed", "completedDateTime": value, "startedDateTime": value}
    assert patch(graph, SELF_URL, body).status_code == 204
    stored = sandbox.admin.activity(EXAMPLE_SELF_INITIATED_ID)
    assert (stored["completedDateTime"], stored["startedDateTime"]) == (value, value)


@pytest.mark.parametrize(
    "value",
    [
        "2022-09-22T16:05:00.0000000",
        {"dateTime": "2022-09-22T16:05:00.0000000"},
        {"dateTime": "2022-09-22T16:05:00.0000000", "timeZone": ""},
        {"dateTime": "2022-09-22T16:05:00.0000000", "timeZone": None},
        {"dateTime": "not a date", "timeZone": "UTC"},
        {"dateTime": "2022-09-31T16:05:00", "timeZone": "UTC"},
        {"dateTime": None, "timeZone": "UTC"},
        {"dateTime": "2022-09-22T16:05:00", "timeZone": "UTC", "extra": 1},
        [],
    ],
)
def test_due_date_time_invalid(graph, value):
    body = {"@odata.type": ASSIGNMENT, "status": "completed", "dueDateTime": value}
    assert_graph_error(patch(graph, ASSIGNMENT_URL, body), *bad("Input field dueDateTime is invalid"))


@pytest.mark.parametrize(
    "value",
    [
        {"dateTime": "2022-09-22T16:05:00.0000000", "timeZone": "UTC"},
        {"dateTime": "2022-09-22T16:05:00", "timeZone": "Pacific Standard Time"},
        {"dateTime": "2022-09-22T16:05:00Z", "timeZone": "UTC", "@odata.type": "microsoft.graph.dateTimeTimeZone"},
        None,
    ],
)
def test_due_date_time_valid(sandbox, graph, value):
    body = {"@odata.type": ASSIGNMENT, "status": "completed", "dueDateTime": value}
    assert patch(graph, ASSIGNMENT_URL, body).status_code == 204
    assert sandbox.admin.activity(EXAMPLE_ASSIGNMENT_ID)["dueDateTime"] == value


@pytest.mark.parametrize(
    "value",
    [
        "just a string",
        {"content": "x"},
        {"content": "x", "contentType": "markdown"},
        {"content": "x", "contentType": "Text"},
        {"content": 5, "contentType": "text"},
        {"contentType": "html"},
    ],
)
def test_notes_invalid(graph, value):
    body = {"@odata.type": ASSIGNMENT, "status": "completed", "notes": value}
    assert_graph_error(patch(graph, ASSIGNMENT_URL, body), *bad("Input field notes is invalid"))


@pytest.mark.parametrize(
    "value", [{"content": "<b>x</b>", "contentType": "html"}, {"content": "", "contentType": "text"}, None]
)
def test_notes_valid(sandbox, graph, value):
    body = {"@odata.type": ASSIGNMENT, "status": "completed", "notes": value}
    assert patch(graph, ASSIGNMENT_URL, body).status_code == 204
    assert sandbox.admin.activity(EXAMPLE_ASSIGNMENT_ID)["notes"] == value


def test_rules_apply_in_order_status_before_values(graph):
    body = {"@odata.type": ASSIGNMENT, "completionPercentage": 500, "assignedDateTime": "naive"}
    assert_graph_error(patch(graph, ASSIGNMENT_URL, body), *bad("Input field status is required"))
    body["status"] = "completed"
    assert_graph_error(patch(graph, ASSIGNMENT_URL, body), *bad("Input field completionPercentage is invalid"))
