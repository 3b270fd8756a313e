"""Activity lookups (by external id, by id), create and delete, and the provider."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from sandbox.odata import encode_literal
from sandbox.rules import MSG_BAD_REGISTRATION, MSG_CONTENT_PROVIDER_MISMATCH, MSG_FORBIDDEN
from sandbox.seed import (
    EXAMPLE_ASSIGNMENT_EXTERNAL_ID,
    EXAMPLE_ASSIGNMENT_ID,
    EXAMPLE_LEARNER_ID,
    EXAMPLE_SELF_INITIATED_EXTERNAL_ID,
    EXAMPLE_SELF_INITIATED_ID,
)

from .conftest import ACTIVITIES, REG, assert_graph_error, graph_client, new_assignment

ASSIGNMENT = "#microsoft.graph.learningAssignment"
SELF = "#microsoft.graph.learningSelfInitiatedCourse"
NOT_FOUND = "The assignment ID requested doesn\u2019t exist."
PROVIDER = f"/employeeExperience/learningProviders/{REG}"


def by_external(external_id: str, key: str = "externalcourseActivityId") -> str:
    """The URL as a careful client builds it: OData-escape the quote, then percent-encode everything."""
    return f"{PROVIDER}/learningCourseActivities({key}='{quote(encode_literal(external_id), safe='')}')"


# --- lookup by external id ---------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["externalcourseActivityId", "externalCourseActivityId"])
def test_lookup_by_external_id_in_both_casings(graph, key):
    response = graph.get(by_external(EXAMPLE_ASSIGNMENT_EXTERNAL_ID, key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["@odata.type"] == ASSIGNMENT
    assert body["id"] == EXAMPLE_ASSIGNMENT_ID
    assert body["externalcourseActivityId"] == EXAMPLE_ASSIGNMENT_EXTERNAL_ID
    assert "externalCourseActivityId" not in body
    assert body["@odata.context"].endswith("/learningCourseActivities/$entity")
    assert {"learnerUserId", "learningContentId", "status", "assignmentType", "dueDateTime", "notes"} <= set(body)


def test_lookup_finds_the_self_initiated_activity(graph):
    body = graph.get(by_external(EXAMPLE_SELF_INITIATED_EXTERNAL_ID)).json()
    assert (body["@odata.type"], body["id"], body["status"]) == (SELF, EXAMPLE_SELF_INITIATED_ID, "inProgress")
    assert "assignmentType" not in body


@pytest.mark.parametrize("external_id", ["O'Brien/course 1?#%&", "it''s", "'", "caf\u00e9 \u2019quoted\u2019"])
def test_lookup_decodes_percent_encoding_and_doubled_quotes(sandbox, graph, external_id):
    sandbox.admin.seed(activities=[new_assignment(id="quoted", externalcourseActivityId=external_id)])
    response = graph.get(by_external(external_id))
    assert response.status_code == 200, response.text
    assert response.json()["externalcourseActivityId"] == external_id


def test_lookup_with_a_raw_quote_in_the_url(sandbox, graph):
    sandbox.admin.seed(activities=[new_assignment(id="quoted", externalcourseActivityId="a'b")])
    response = graph.get(f"{PROVIDER}/learningCourseActivities(externalcourseActivityId='a''b')")
    assert response.json()["id"] == "quoted"


def test_lookup_with_an_undoubled_quote_is_a_syntax_error(sandbox, graph):
    sandbox.admin.seed(activities=[new_assignment(id="quoted", externalcourseActivityId="a'b")])
    response = graph.get(
        f"{PROVIDER}/learningCourseActivities(externalcourseActivityId='{quote('a' + chr(39) + 'b')}')"
    )
    assert response.status_code == 400


def test_lookup_of_an_unknown_external_id(graph):
    assert_graph_error(graph.get(by_external("nope")), 404, "notFound", NOT_FOUND)


def test_lookup_is_per_provider(sandbox, graph):
    other = "0f0f0f0f-0000-4000-8000-000000000002"
    sandbox.admin.put_provider(other)
    url = (
        f"/employeeExperience/learningProviders/{other}"
        f"/learningCourseActivities(externalcourseActivityId='{EXAMPLE_ASSIGNMENT_EXTERNAL_ID}')"
    )
    assert graph.get(url).status_code == 404


def test_lookup_needs_a_read_role_for_the_type(sandbox):
    token = sandbox.admin.mint_token(roles=["LearningSelfInitiatedCourse.Read.All"])
    with graph_client(sandbox, token) as client:
        assert_graph_error(client.get(by_external(EXAMPLE_ASSIGNMENT_EXTERNAL_ID)), 403, "Forbidden", MSG_FORBIDDEN)
        assert client.get(by_external(EXAMPLE_SELF_INITIATED_EXTERNAL_ID)).status_code == 200


def test_lookup_with_an_unknown_provider(graph):
    url = "/employeeExperience/learningProviders/nope/learningCourseActivities(externalcourseActivityId='x')"
    assert_graph_error(graph.get(url), 400, "badRequest", MSG_BAD_REGISTRATION)


# --- get by id ---------------------------------------------------------------------------------------------
def test_get_by_id(graph):
    response = graph.get(f"/employeeExperience/learningCourseActivities/{EXAMPLE_SELF_INITIATED_ID}")
    assert response.status_code == 200
    assert response.json()["externalcourseActivityId"] == EXAMPLE_SELF_INITIATED_EXTERNAL_ID
    assert_graph_error(graph.get("/employeeExperience/learningCourseActivities/nope"), 404, "notFound", NOT_FOUND)


def test_get_by_id_under_the_provider(graph):
    assert graph.get(f"{ACTIVITIES}/{EXAMPLE_ASSIGNMENT_ID}").json()["id"] == EXAMPLE_ASSIGNMENT_ID


def test_unsupported_method_on_an_activity_collection(graph):
    assert_graph_error(
        graph.put(f"{ACTIVITIES}/{EXAMPLE_ASSIGNMENT_ID}", json={}),
        405,
        "methodNotAllowed",
        "This method isn't supported for this entity type. See the Microsoft Graph documentation for the methods "
        "applicable to this entity.",
    )


def test_unknown_segment(graph):
    assert_graph_error(
        graph.get("/employeeExperience/foo"), 400, "BadRequest", "Resource not found for the segment 'foo'."
    )


# --- create ------------------------------------------------------------------------------------------------
def test_create_assignment(sandbox, graph):
    response = graph.post(ACTIVITIES, json=new_assignment())
    assert response.status_code == 201, response.text
    created = response.json()
    learner, _, suffix = created["id"].partition(":")
    assert learner == EXAMPLE_LEARNER_ID
    assert len(suffix) == 36
    assert created["@odata.type"] == ASSIGNMENT
    assert created["assignmentType"] == "recommended"
    assert sandbox.admin.activity(created["id"])["externalcourseActivityId"] == "lms-enrolment-42"
    assert graph.get(by_external("lms-enrolment-42")).json()["id"] == created["id"]


def test_create_self_initiated_with_the_capitalised_external_id(graph):
    body = new_assignment(
        **{"@odata.type": SELF, "assignmentType": ..., "dueDateTime": ..., "externalcourseActivityId": ...},
        externalCourseActivityId="self-1",
        status="inProgress",
        startedDateTime="2024-01-01T00:00:00Z",
    )
    response = graph.post(ACTIVITIES, json=body)
    assert response.status_code == 201, response.text
    assert response.json()["externalcourseActivityId"] == "self-1"


def test_create_duplicate_external_id_is_a_conflict(graph):
    assert graph.post(ACTIVITIES, json=new_assignment()).status_code == 201
    response = graph.post(ACTIVITIES, json=new_assignment())
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert (
        graph.post(ACTIVITIES, json=new_assignment(externalcourseActivityId=EXAMPLE_ASSIGNMENT_EXTERNAL_ID)).status_code
        == 409
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"@odata.type": ...}, "Input field @odata.type is required"),
        ({"learnerUserId": ...}, "Input field learnerUserId is required"),
        ({"learningContentId": ...}, "Input field learningContentId is required"),
        ({"learningProviderId": ...}, "Input field learningProviderId is required"),
        ({"externalcourseActivityId": ...}, "Input field externalcourseActivityId is required"),
        ({"status": ...}, "Input field status is required"),
        ({"assignmentType": ...}, "Input field assignmentType is required"),
        ({"learnerUserId": ""}, "Input field learnerUserId shouldn't be empty"),
        ({"assignmentType": "mandatory"}, "Input field assignmentType is invalid"),
        ({"learningProviderId": "another"}, "Input field learningProviderId is invalid"),
        ({"learnerUserId": "not-a-known-user"}, "Input field learnerUserId is invalid"),
        ({"learningContentId": "not-a-known-content"}, "Input field learningContentId is invalid"),
        ({"id": "chosen-by-me"}, "Input field id is invalid"),
        ({"startedDateTime": "2024-01-01T00:00:00Z"}, "Input field startedDateTime is invalid"),
        ({"completionPercentage": 101}, "Input field completionPercentage is invalid"),
        ({"status": "finished"}, "Input field status is invalid"),
    ],
)
def test_create_validation(sandbox, graph, overrides, message):
    before = len(sandbox.admin.activities())
    assert_graph_error(graph.post(ACTIVITIES, json=new_assignment(**overrides)), 400, "badRequest", message)
    assert len(sandbox.admin.activities()) == before


def test_create_with_content_of_another_provider_is_forbidden(sandbox, graph):
    other = "0f0f0f0f-0000-4000-8000-000000000002"
    sandbox.admin.seed(
        providers=[{"id": other}], contents=[{"id": "c-2", "externalId": "x-2", "learningProviderId": other}]
    )
    response = graph.post(ACTIVITIES, json=new_assignment(learningContentId="c-2"))
    assert_graph_error(response, 403, "Forbidden", MSG_CONTENT_PROVIDER_MISMATCH)


def test_create_needs_the_role_of_the_type(sandbox):
    token = sandbox.admin.mint_token(roles=["LearningSelfInitiatedCourse.ReadWrite.All"])
    with graph_client(sandbox, token) as client:
        assert_graph_error(client.post(ACTIVITIES, json=new_assignment()), 403, "Forbidden", MSG_FORBIDDEN)


def test_create_without_seeded_users_or_contents_accepts_any_ids(sandbox, graph):
    sandbox.admin.reset()
    sandbox.admin.put_provider(REG)
    response = graph.post(ACTIVITIES, json=new_assignment(learnerUserId="anyone", learningContentId="anything"))
    assert response.status_code == 201, response.text


# --- delete ------------------------------------------------------------------------------------------------
def test_delete(sandbox, graph):
    url = f"{ACTIVITIES}/{EXAMPLE_ASSIGNMENT_ID}"
    response = graph.delete(url)
    assert response.status_code == 204
    assert response.content == b""
    assert sandbox.admin.activity(EXAMPLE_ASSIGNMENT_ID) is None
    assert graph.get(by_external(EXAMPLE_ASSIGNMENT_EXTERNAL_ID)).status_code == 404
    assert_graph_error(
        graph.delete(url), 404, "notFound", f"The requested assignment {EXAMPLE_ASSIGNMENT_ID} doesn't exist"
    )
    # The external id is free again.
    assert (
        graph.post(ACTIVITIES, json=new_assignment(externalcourseActivityId=EXAMPLE_ASSIGNMENT_EXTERNAL_ID)).status_code
        == 201
    )


# --- provider ----------------------------------------------------------------------------------------------
def test_get_provider(sandbox, graph):
    body = graph.get(PROVIDER).json()
    assert (body["id"], body["isCourseActivitySyncEnabled"]) == (REG, True)
    assert "displayName" in body
    assert "@odata.context" in body
    sandbox.admin.put_provider(REG, isCourseActivitySyncEnabled=False, displayName="Renamed")
    body = graph.get(PROVIDER).json()
    assert (body["displayName"], body["isCourseActivitySyncEnabled"]) == ("Renamed", False)
    assert graph.get("/employeeExperience/learningProviders/nope").status_code == 404
