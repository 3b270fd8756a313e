"""The whole lifecycle of an activity (issue 12) through the app's functions, Azurite and the Graph sandbox: created
when the platform assigns or a learner starts, updated, withdrawn when removed, in whatever order events arrive."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from devtools.examples import ASSIGNER_ID, LEARNER_ID
from tests.support.signing import CREATING_SECRET
from tests.support.xapi import CREATING_PROVIDER

ASSIGNMENT = "#microsoft.graph.learningAssignment"
SELF = "#microsoft.graph.learningSelfInitiatedCourse"
COURSE = "course-201"
CONTENT_ID = "content-201"


def assigned(external_id: str = "enrol-1", **fields: Any) -> dict[str, Any]:
    """An assignment as a platform announces it: the learner by UPN, the course by the provider's own id."""
    return {
        "@odata.type": ASSIGNMENT,
        "externalcourseActivityId": external_id,
        "status": "notStarted",
        "learnerUserId": "ada.learner@contoso.example",
        "learningContentId": COURSE,
        "assignmentType": "required",
        "assignerUserId": "grace.assigner@contoso.example",
        "assignedDateTime": "2026-11-20T09:00:00Z",
        **fields,
    }


def withdrawn(external_id: str = "enrol-1") -> dict[str, Any]:
    return {"@odata.type": ASSIGNMENT, "externalcourseActivityId": external_id, "@removed": {"reason": "deleted"}}


def post(connector, body: dict[str, Any]):
    return connector.post(CREATING_PROVIDER, body, secret=CREATING_SECRET)


async def deliver(connector, body: dict[str, Any], **sign: Any):
    return await connector.deliver(CREATING_PROVIDER, body, secret=CREATING_SECRET, **sign)


@pytest.fixture
def creating(graph):
    """The creating provider, enabled in the sandbox, with its course."""
    graph.seed(
        providers=[{"id": CREATING_PROVIDER, "displayName": "LMS", "isCourseActivitySyncEnabled": True}],
        contents=[{"id": CONTENT_ID, "externalId": COURSE, "learningProviderId": CREATING_PROVIDER}],
    )
    return graph


def only(graph, external_id: str) -> dict[str, Any] | None:
    found = [a for a in graph.activities(CREATING_PROVIDER) if a["externalcourseActivityId"] == external_id]
    assert len(found) <= 1, found
    return found[0] if found else None


async def test_an_assignment_is_created_by_upn_and_content_id_then_updated_then_withdrawn(connector, creating):
    now = time.time() - 200  # the offsets below stay within the 5-minute tolerance
    (run,) = await deliver(connector, assigned(), timestamp=now)
    assert (run.error, run.poison) == (None, None)
    created = only(creating, "enrol-1")
    assert created is not None
    assert (created["learnerUserId"], created["learningContentId"]) == (LEARNER_ID, CONTENT_ID)
    assert (created["assignerUserId"], created["assignmentType"]) == (ASSIGNER_ID, "required")
    assert created["status"] == "notStarted"
    (post,) = creating.requests(method="POST")
    assert post["path"] == f"/employeeExperience/learningProviders/{CREATING_PROVIDER}/learningCourseActivities"

    progress = {"@odata.type": ASSIGNMENT, "externalcourseActivityId": "enrol-1", "status": "inProgress"}
    await deliver(connector, {**progress, "completionPercentage": 60}, timestamp=now + 60)
    assert (only(creating, "enrol-1") or {})["completionPercentage"] == 60

    (run,) = await deliver(connector, withdrawn(), timestamp=now + 120)
    assert (run.error, run.poison) == (None, None)
    assert only(creating, "enrol-1") is None
    (delete,) = creating.requests(method="DELETE")
    assert delete["path"].endswith(f"/learningCourseActivities/{created['id']}")
    state = await connector.status(CREATING_PROVIDER, "enrol-1")
    assert (state["state"], state["deletionReason"], state["learningCourseActivityId"]) == ("deleted", "deleted", None)
    assert state["deletedAt"]


async def test_a_self_initiated_course_is_created_from_the_queue_intake(connector, creating):
    bare = {
        "registrationId": CREATING_PROVIDER,
        "@odata.type": SELF,
        "externalcourseActivityId": "self-1",
        "status": "inProgress",
        "startedDateTime": "2026-11-21T08:00:00Z",
        "learnerUserId": "Ada.Learner@contoso.example",  # the mail attribute, another case
        "learningContentId": COURSE,
    }
    run = await connector.run(json.dumps(bare))
    assert (run.error, run.poison) == (None, None)
    created = only(creating, "self-1")
    assert created is not None
    assert (created["@odata.type"], created["learnerUserId"], created["status"]) == (SELF, LEARNER_ID, "inProgress")


async def test_a_removal_then_an_older_update_stays_deleted_and_a_newer_assignment_comes_back(connector, creating):
    now = time.time() - 200  # the offsets below stay within the 5-minute tolerance
    await deliver(connector, assigned(status="inProgress", completionPercentage=80), timestamp=now)
    await deliver(connector, withdrawn(), timestamp=now + 60)
    older = {"@odata.type": ASSIGNMENT, "externalcourseActivityId": "enrol-1", "status": "completed"}
    (run,) = await deliver(connector, older, timestamp=now + 30)
    assert (run.error, run.poison) == (None, None)
    assert only(creating, "enrol-1") is None
    await deliver(connector, assigned(assignedDateTime="2026-12-01T09:00:00Z"), timestamp=now + 90)
    again = only(creating, "enrol-1")
    assert again is not None
    assert (again["status"], again.get("completionPercentage")) == ("notStarted", None)  # a new life
    assert len(creating.requests(method="POST")) == 2


async def test_two_concurrent_creates_of_one_activity_make_one_activity(connector, creating):
    creating.set_latency(20)  # both look it up before either creates it
    replies = [post(connector, assigned(status=s)) for s in ("notStarted", "inProgress")]
    runs = await asyncio.gather(*(connector.run(r.messages[0], message_id=r.body["ids"][0]) for r in replies))
    assert [(r.error, r.poison) for r in runs] == [(None, None)] * 2
    created = only(creating, "enrol-1")
    assert created is not None
    assert created["status"] == "inProgress"


async def test_a_create_whose_answer_was_lost_is_found_when_retried(connector, creating):
    creating.add_fault(method="POST", drop_after_applying=True, count=1)
    reply = post(connector, assigned())
    first = await connector.run(reply.messages[0], dequeue_count=1)
    assert first.error is not None  # the connection dropped: was it created? unknown
    assert only(creating, "enrol-1") is not None  # it was
    second = await connector.run(reply.messages[0], dequeue_count=2)
    assert (second.error, second.poison) == (None, None)
    assert len(creating.requests(method="POST")) == 1
    assert only(creating, "enrol-1") is not None


async def test_a_learner_that_cannot_be_found_is_dead_lettered_naming_the_learner_field(connector, creating):
    (run,) = await deliver(connector, assigned(learnerUserId="nobody@contoso.example"))
    reason = json.loads(run.poison)["deadLetter"]
    assert (reason["code"], reason["field"]) == ("learnerNotFound", "learnerUserId")
    assert "learnerUserId" in reason["message"]
    assert only(creating, "enrol-1") is None


async def test_an_event_that_could_create_but_names_no_learner_says_which_fields_would(connector, creating):
    event = {"@odata.type": ASSIGNMENT, "externalcourseActivityId": "enrol-9", "status": "inProgress"}
    (run,) = await deliver(connector, event)
    reason = json.loads(run.poison)["deadLetter"]
    assert reason["missing"] == ["learnerUserId", "learningContentId", "assignmentType"]
    state = await connector.status(CREATING_PROVIDER, "enrol-9")
    assert (state["state"], state["lastError"]["code"]) == ("failed", "activityNotFound")


async def test_reconcile_leaves_a_missing_activity_that_no_event_can_create_to_its_dead_letter(
    connector, creating, command
):
    event = {"@odata.type": ASSIGNMENT, "externalcourseActivityId": "enrol-10", "status": "inProgress"}
    (run,) = await deliver(connector, event)
    assert json.loads(run.poison)["deadLetter"]["code"] == "activityNotFound"
    for _ in range(2):  # the daily timer, twice: nothing queued that would only be dead-lettered again
        ran = command("reconcile", "--registration-id", CREATING_PROVIDER)
        assert ran.returncode == 0, ran.stderr
        assert f"provider {CREATING_PROVIDER}: checked 1, agreeing 0, corrected 0, missing in Graph 1" in ran.stdout
        assert await connector.count() == 0
