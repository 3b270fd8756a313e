"""What operators see must be true (issue 9) and a provider reaches only its own activities (issue 10, point 4):
the status after a dead letter, a reused webhook-id, times read back from a queue, Graph ids of other providers."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from connector import bootstrap
from connector.app.status import activity_status
from devtools.examples import ASSIGNMENT_EXTERNAL_ID, ASSIGNMENT_ID, REGISTRATION_ID

EXT = ASSIGNMENT_EXTERNAL_ID
OTHER_PROVIDER = "5d0c6a7e-1f2b-4c3d-8e9f-0a1b2c3d4e5f"


def event(**fields) -> dict:
    return {"@odata.type": "#microsoft.graph.learningAssignment", "externalcourseActivityId": EXT, **fields}


async def status_of(activity_id: str = EXT) -> dict:
    reply = await activity_status(bootstrap.settings(), bootstrap.state_store(), REGISTRATION_ID, activity_id)
    assert reply.status == 200, reply.body
    return reply.body


async def test_a_dead_lettered_update_shows_as_failed_with_the_values_that_did_not_reach_graph(connector, graph):
    await connector.deliver(REGISTRATION_ID, event(status="inProgress", completionPercentage=40))
    graph.add_fault(target="graph", method="PATCH", status=403, count=1)
    (run,) = await connector.deliver(REGISTRATION_ID, event(status="inProgress", completionPercentage=90))
    assert json.loads(run.poison)["deadLetter"]["status"] == 403

    state = await status_of()
    assert state["state"] == "failed"
    assert state["applied"]["completionPercentage"] == 40  # what Graph has
    assert state["pending"]["completionPercentage"] == 90  # what did not reach it
    assert state["lastError"]["status"] == 403

    await connector.deliver(REGISTRATION_ID, event(status="inProgress", completionPercentage=50))
    state = await status_of()
    assert (state["state"], state["pending"], state["lastError"]) == ("applied", None, None)
    assert state["applied"]["completionPercentage"] == 50
    assert graph.activity(ASSIGNMENT_ID)["completionPercentage"] == 50


async def test_a_retrying_update_says_when_the_host_tries_it_again(connector, graph):
    graph.add_fault(target="graph", method="PATCH", status=500, count=1)
    reply = connector.post(REGISTRATION_ID, event(status="inProgress", completionPercentage=30))
    before = datetime.now(UTC)
    assert (await connector.run(reply.messages[0], dequeue_count=1)).error is not None
    state = await status_of()
    assert state["state"] == "retrying"
    assert state["pending"]["completionPercentage"] == 30
    wait = (datetime.fromisoformat(state["nextAttemptAt"]) - before).total_seconds()
    assert 25 <= wait <= 35  # host.json visibilityTimeout: 30 s


async def test_a_webhook_id_reused_for_other_content_is_dead_lettered_naming_the_reuse(connector, graph):
    await connector.deliver(REGISTRATION_ID, event(status="inProgress", completionPercentage=66), webhook_id="msg_1")
    (retry,) = await connector.deliver(
        REGISTRATION_ID, event(status="inProgress", completionPercentage=66), webhook_id="msg_1"
    )
    assert (retry.error, retry.poison) == (None, None)  # the same content: a retry, nothing happens
    (reused,) = await connector.deliver(
        REGISTRATION_ID, event(status="inProgress", completionPercentage=90), webhook_id="msg_1"
    )
    reason = json.loads(reused.poison)["deadLetter"]
    assert reason["code"] == "eventIdReused"
    assert "webhook-id msg_1 was received before with other content" in reason["message"]
    assert len(connector.patches()) == 1
    state = await status_of()
    assert (state["state"], state["lastError"]["code"]) == ("failed", "eventIdReused")
    assert state["pending"]["completionPercentage"] == 90
    assert graph.activity(ASSIGNMENT_ID)["completionPercentage"] == 66


async def test_a_message_whose_dates_the_host_rewrote_keeps_its_place_in_the_order(connector, graph):
    """The Functions host re-serializes JSON-looking queue outputs: `…:31.000000Z` becomes `…:31Z`. An older event
    so rewritten must not outrank a newer one from the same second (compared as text, it did)."""
    older, newer = connector.post(
        REGISTRATION_ID,
        [event(status="inProgress", notes="older"), event(status="inProgress", notes="newer")],
    ).messages
    assert (await connector.run(newer, message_id="n")).error is None
    rewritten = json.loads(older)
    rewritten["eventTime"] = rewritten["eventTime"].replace(".000000Z", "Z")
    assert rewritten["eventTime"].endswith(":00Z") or "." not in rewritten["eventTime"]
    assert (await connector.run(json.dumps(rewritten, indent=2), message_id="o")).error is None
    assert graph.activity(ASSIGNMENT_ID)["notes"]["content"] == "newer"


async def test_a_rewritten_redelivery_is_still_the_same_content(connector, graph):
    due = {"dateTime": "2026-12-24T09:00:00.0000000", "timeZone": "UTC"}
    (message,) = connector.post(
        REGISTRATION_ID, event(status="inProgress", dueDateTime=due, assignedDateTime="2026-11-20T10:00:00.000Z")
    ).messages
    assert (await connector.run(message, message_id="a")).error is None
    rewritten = json.loads(message)
    rewritten["event"]["dueDateTime"]["dateTime"] = "2026-12-24T09:00:00"
    rewritten["event"]["assignedDateTime"] = "2026-11-20T10:00:00Z"
    run = await connector.run(json.dumps(rewritten), message_id="b", dequeue_count=2)
    assert (run.error, run.poison) == (None, None)
    assert len(connector.patches()) == 1


async def test_a_graph_id_of_another_providers_activity_is_dead_lettered_and_never_patched(connector, graph):
    graph.seed(
        providers=[{"id": OTHER_PROVIDER, "displayName": "Other", "isCourseActivitySyncEnabled": True}],
        activities=[
            {
                "@odata.type": "#microsoft.graph.learningAssignment",
                "id": "others-activity",
                "externalcourseActivityId": "others-external",
                "learningProviderId": OTHER_PROVIDER,
                "learnerUserId": "7ba2228a-e020-11ec-9d64-0242ac120002",
                "learningContentId": "57baf9dc-e020-11ec-9d64-0242ac120002",
                "assignmentType": "required",
                "status": "notStarted",
            }
        ],
    )
    body = {
        "@odata.type": "#microsoft.graph.learningAssignment",
        "learningCourseActivityId": "others-activity",
        "status": "completed",
    }
    (run,) = await connector.deliver(REGISTRATION_ID, body)
    reason = json.loads(run.poison)["deadLetter"]
    assert (reason["status"], reason["code"]) == (404, "activityNotFound")
    assert "belongs to another provider" in reason["message"]
    assert connector.patches() == []
    assert graph.activity("others-activity")["status"] == "notStarted"


async def test_a_transient_failure_logs_one_warning_and_raises_without_a_chain(connector, graph, caplog):
    graph.add_fault(target="graph", method="PATCH", status=502, count=1)
    reply = connector.post(REGISTRATION_ID, event(status="inProgress", completionPercentage=30))
    caplog.set_level(logging.INFO, logger="connector")
    caplog.clear()
    run = await connector.run(reply.messages[0], dequeue_count=2)
    assert run.error is not None
    assert run.error.__cause__ is None
    assert run.error.__context__ is None
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelname for r in warnings] == ["WARNING"]
    assert "failed transiently" in warnings[0].getMessage()
    assert "502" in warnings[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records)
