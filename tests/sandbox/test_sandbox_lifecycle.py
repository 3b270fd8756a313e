"""Create and delete as Graph documents them, and the switchable answers where the docs leave Graph's unconfirmed."""

from __future__ import annotations

import httpx
import pytest

from sandbox.rules import MSG_PROVIDER_DISABLED
from sandbox.seed import (
    EXAMPLE_ASSIGNER_ID,
    EXAMPLE_ASSIGNMENT_EXTERNAL_ID,
    EXAMPLE_ASSIGNMENT_ID,
    EXAMPLE_CONTENT_EXTERNAL_ID,
    EXAMPLE_LEARNER_ID,
)

from .conftest import ACTIVITIES, REG, assert_graph_error, new_assignment

ASSIGNMENT = "#microsoft.graph.learningAssignment"
SELF = "#microsoft.graph.learningSelfInitiatedCourse"
PREFER_ALL_ENUMS = {"Prefer": "include-unknown-enum-members"}


def new_self_initiated(**overrides):
    return new_assignment(
        **{"@odata.type": SELF, "assignmentType": ..., "dueDateTime": ..., "status": "inProgress", **overrides}
    )


# --- required fields per type ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "missing", ["@odata.type", "learnerUserId", "learningContentId", "learningProviderId", "status"]
)
def test_self_initiated_create_needs_the_common_fields(sandbox, graph, missing):
    response = graph.post(ACTIVITIES, json=new_self_initiated(**{missing: ...}))
    assert_graph_error(response, 400, "badRequest", f"Input field {missing} is required")
    assert len(sandbox.admin.activities()) == 2


def test_self_initiated_create_does_not_need_an_assignment_type(graph):
    assert graph.post(ACTIVITIES, json=new_self_initiated()).status_code == 201


def test_self_initiated_create_refuses_an_assignment_type(graph):
    response = graph.post(ACTIVITIES, json=new_self_initiated(assignmentType="required"))
    assert_graph_error(response, 400, "badRequest", "Input field assignmentType is invalid")


# --- peerRecommended: an evolvable enum member, usable only with Prefer: include-unknown-enum-members --------
def test_peer_recommended_needs_the_prefer_header(sandbox, graph):
    response = graph.post(ACTIVITIES, json=new_assignment(assignmentType="peerRecommended"))
    assert_graph_error(response, 400, "badRequest", "Input field assignmentType is invalid")
    created = graph.post(ACTIVITIES, json=new_assignment(assignmentType="peerRecommended"), headers=PREFER_ALL_ENUMS)
    assert created.status_code == 201, created.text
    assert created.json()["assignmentType"] == "peerRecommended"
    assert created.headers["Preference-Applied"] == "include-unknown-enum-members"
    assert sandbox.admin.activity(created.json()["id"])["assignmentType"] == "peerRecommended"


def test_the_prefer_header_may_carry_other_preferences(graph):
    headers = {"Prefer": "return=minimal, include-unknown-enum-members"}
    assert graph.post(ACTIVITIES, json=new_assignment(assignmentType="peerRecommended"), headers=headers).is_success


def test_peer_recommended_reads_as_unknown_future_value_without_the_header(graph):
    created = graph.post(ACTIVITIES, json=new_assignment(assignmentType="peerRecommended"), headers=PREFER_ALL_ENUMS)
    url = f"{ACTIVITIES}/{created.json()['id']}"
    plain = graph.get(url)
    assert plain.json()["assignmentType"] == "unknownFutureValue"
    assert "Preference-Applied" not in plain.headers
    assert graph.get(url, headers=PREFER_ALL_ENUMS).json()["assignmentType"] == "peerRecommended"
    by_external = f"{ACTIVITIES}(externalcourseActivityId='lms-enrolment-42')"
    assert graph.get(by_external).json()["assignmentType"] == "unknownFutureValue"


def test_unknown_future_value_is_refused_on_create(graph):
    response = graph.post(
        ACTIVITIES, json=new_assignment(assignmentType="unknownFutureValue"), headers=PREFER_ALL_ENUMS
    )
    assert_graph_error(response, 400, "badRequest", "Input field assignmentType is invalid")


def test_patch_may_repeat_what_it_read(graph):
    created = graph.post(ACTIVITIES, json=new_assignment(assignmentType="peerRecommended"), headers=PREFER_ALL_ENUMS)
    url = f"{ACTIVITIES}/{created.json()['id']}"
    read = graph.get(url).json()
    body = {"@odata.type": ASSIGNMENT, "assignmentType": read["assignmentType"], "status": "inProgress"}
    assert graph.patch(url, json=body).status_code == 204  # unknownFutureValue in a PATCH counts as absent
    body["assignmentType"] = "peerRecommended"
    assert_graph_error(graph.patch(url, json=body), 400, "badRequest", "Input field assignmentType is invalid")
    assert graph.patch(url, json=body, headers=PREFER_ALL_ENUMS).status_code == 204


# --- the provider must be enabled --------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_create_and_delete_need_an_enabled_provider(sandbox, graph, method):
    sandbox.admin.put_provider(REG, isCourseActivitySyncEnabled=False)
    if method == "POST":
        response = graph.post(ACTIVITIES, json=new_assignment())
    else:
        response = graph.delete(f"{ACTIVITIES}/{EXAMPLE_ASSIGNMENT_ID}")
    assert_graph_error(response, 400, "badRequest", MSG_PROVIDER_DISABLED)
    assert len(sandbox.admin.activities()) == 2


# --- delete --------------------------------------------------------------------------------------------------
def test_delete_of_an_unknown_id_names_it(graph):
    response = graph.delete(f"{ACTIVITIES}/no-such-activity")
    assert_graph_error(response, 404, "notFound", "The requested assignment no-such-activity doesn't exist")


def test_delete_through_another_provider_is_not_found(sandbox, graph):
    other = "0f0f0f0f-0000-4000-8000-000000000002"
    sandbox.admin.put_provider(other)
    response = graph.delete(
        f"/employeeExperience/learningProviders/{other}/learningCourseActivities/{EXAMPLE_ASSIGNMENT_ID}"
    )
    assert_graph_error(response, 404, "notFound", f"The requested assignment {EXAMPLE_ASSIGNMENT_ID} doesn't exist")
    assert sandbox.admin.activity(EXAMPLE_ASSIGNMENT_ID) is not None


def test_delete_of_an_id_with_a_colon(graph):
    created = graph.post(ACTIVITIES, json=new_assignment()).json()
    assert ":" in created["id"]
    assert graph.delete(f"{ACTIVITIES}/{created['id']}").status_code == 204


# --- learner and content must exist (when the tenant has any) ------------------------------------------------
@pytest.mark.parametrize("field", ["learnerUserId", "learningContentId", "assignerUserId"])
def test_unknown_references_are_invalid_fields_by_default(sandbox, graph, field):
    assert sandbox.admin.create_answers()["unknownReference"] == "badRequest"
    response = graph.post(ACTIVITIES, json=new_assignment(**{field: "00000000-0000-0000-0000-000000000000"}))
    assert_graph_error(response, 400, "badRequest", f"Input field {field} is invalid")


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("learnerUserId", "The learner requested doesn\u2019t exist."),
        ("assignerUserId", "The assigner requested doesn\u2019t exist."),
        ("learningContentId", "The learning content requested doesn\u2019t exist."),
    ],
)
def test_unknown_references_can_be_404s(sandbox, graph, field, message):
    sandbox.admin.set_create_answers(unknown_reference="notFound")
    response = graph.post(ACTIVITIES, json=new_assignment(**{field: "00000000-0000-0000-0000-000000000000"}))
    assert_graph_error(response, 404, "notFound", message)
    assert len(sandbox.admin.activities()) == 2


def test_a_known_assigner_is_accepted(graph):
    assert graph.post(ACTIVITIES, json=new_assignment(assignerUserId=EXAMPLE_ASSIGNER_ID)).status_code == 201


# --- duplicate external id -----------------------------------------------------------------------------------
def test_duplicate_external_id_is_a_409_by_default(sandbox, graph):
    assert sandbox.admin.create_answers()["duplicateExternalId"] == "conflict"
    response = graph.post(ACTIVITIES, json=new_assignment(externalcourseActivityId=EXAMPLE_ASSIGNMENT_EXTERNAL_ID))
    assert_graph_error(
        response,
        409,
        "conflict",
        f"A learning course activity with externalcourseActivityId '{EXAMPLE_ASSIGNMENT_EXTERNAL_ID}' already exists "
        "for this provider.",
    )


def test_duplicate_external_id_can_be_an_invalid_field(sandbox, graph):
    answers = sandbox.admin.set_create_answers(duplicate_external_id="badRequest")
    assert answers == {"duplicateExternalId": "badRequest", "unknownReference": "badRequest"}
    response = graph.post(ACTIVITIES, json=new_assignment(externalcourseActivityId=EXAMPLE_ASSIGNMENT_EXTERNAL_ID))
    assert_graph_error(response, 400, "badRequest", "Input field externalcourseActivityId is invalid")
    assert len(sandbox.admin.activities()) == 2


def test_reset_restores_the_default_answers(sandbox):
    sandbox.admin.set_create_answers(duplicate_external_id="badRequest", unknown_reference="notFound")
    sandbox.admin.reset()
    assert sandbox.admin.create_answers() == {"duplicateExternalId": "conflict", "unknownReference": "badRequest"}


@pytest.mark.parametrize(
    "settings", [{"duplicateExternalId": "ignore"}, {"unknownReference": 404}, {"other": "x"}, ["conflict"]]
)
def test_bad_create_answers_are_refused(sandbox, settings):
    response = httpx.put(sandbox.admin_url + "/create-answers", json=settings)
    assert response.status_code == 400
    assert "error" in response.json()
    assert sandbox.admin.create_answers() == {"duplicateExternalId": "conflict", "unknownReference": "badRequest"}


# --- the lookups a create needs ------------------------------------------------------------------------------
def test_learner_found_by_upn_or_mail_with_advanced_query_headers(graph):
    response = graph.get(
        "/users",
        params={
            "$filter": "userPrincipalName eq 'Ada.Learner@contoso.example' or mail eq 'Ada.Learner@contoso.example'",
            "$select": "id",
            "$count": "true",
        },
        headers={"ConsistencyLevel": "eventual"},
    )
    assert response.json()["value"] == [{"id": EXAMPLE_LEARNER_ID}]
    assert response.json()["@odata.count"] == 1


def test_content_found_by_external_id_then_used_to_create(graph):
    content = graph.get(
        f"/employeeExperience/learningProviders/{REG}/learningContents(externalId='{EXAMPLE_CONTENT_EXTERNAL_ID}')"
    )
    created = graph.post(ACTIVITIES, json=new_assignment(learningContentId=content.json()["id"]))
    assert created.status_code == 201, created.text
