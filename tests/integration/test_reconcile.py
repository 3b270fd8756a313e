"""Graph and the connector kept in agreement (issue 13): reconcile reads Graph for the activities the connector
tracks and puts right what differs, through the queue, by the operator's command or the timer."""

from __future__ import annotations

import json
import time

from devtools.examples import ASSIGNMENT_EXTERNAL_ID, ASSIGNMENT_ID, REGISTRATION_ID
from tests.support.functions import indexed

ASSIGNMENT = "#microsoft.graph.learningAssignment"


def progress(percent: int) -> dict:
    return {
        "@odata.type": ASSIGNMENT,
        "externalcourseActivityId": ASSIGNMENT_EXTERNAL_ID,
        "status": "inProgress",
        "completionPercentage": percent,
    }


async def test_a_value_changed_behind_the_connectors_back_is_put_right(connector, graph, command):
    await connector.deliver(REGISTRATION_ID, progress(50))
    graph.reset(seed_example=True)  # someone set the activity back to notStarted in Graph
    ran = command("reconcile", "--registration-id", REGISTRATION_ID)
    assert ran.returncode == 0, ran.stderr
    assert f"provider {REGISTRATION_ID}: checked 1, agreeing 0, corrected 1, missing in Graph 0, failed 0" in ran.stdout
    assert graph.activity(ASSIGNMENT_ID)["completionPercentage"] is None  # not yet: it goes through the queue
    runs = await connector.drain()
    assert [(r.error, r.poison) for r in runs] == [(None, None)]
    assert graph.activity(ASSIGNMENT_ID)["completionPercentage"] == 50
    again = command("reconcile", "--registration-id", REGISTRATION_ID)
    assert "checked 1, agreeing 1, corrected 0" in again.stdout


async def test_a_patch_whose_fate_was_unknown_is_read_back_and_put_right(connector, graph, command):
    graph.add_fault(target="graph", method="PATCH", drop=True)  # never applied, the connector cannot know
    reply = connector.post(REGISTRATION_ID, progress(70))
    for attempt in range(1, 6):  # the host's tries, then the poison queue
        assert (await connector.run(reply.messages[0], dequeue_count=attempt)).error is not None
    graph.clear_faults()
    assert graph.activity(ASSIGNMENT_ID)["completionPercentage"] is None
    assert "corrected 1" in command("reconcile").stdout
    await connector.drain()
    assert graph.activity(ASSIGNMENT_ID)["completionPercentage"] == 70
    assert (await connector.status(REGISTRATION_ID, ASSIGNMENT_EXTERNAL_ID))["state"] == "applied"


async def test_the_timer_queues_a_slice_per_provider_and_the_worker_reconciles_them(connector, graph, monkeypatch):
    monkeypatch.setenv("CONNECTOR_RECONCILE_SCHEDULE", "0 0 3 * * *")
    await connector.deliver(REGISTRATION_ID, progress(40))
    graph.reset(seed_example=True)
    await indexed()["reconcile_course_activities"].get_user_function()(None)
    slices = [json.loads(m) for m in await connector.peek()]
    assert {s["kind"] for s in slices} == {"reconcileSlice"}
    assert REGISTRATION_ID in {s["registrationId"] for s in slices}
    await connector.drain()  # the slices, then the correction they queued
    assert graph.activity(ASSIGNMENT_ID)["completionPercentage"] == 40


async def test_an_activity_graph_still_has_after_a_withdrawal_is_withdrawn_again(connector, graph, command):
    now = time.time()
    await connector.deliver(REGISTRATION_ID, progress(30), timestamp=now - 10)
    removal = {"@odata.type": ASSIGNMENT, "externalcourseActivityId": ASSIGNMENT_EXTERNAL_ID}
    await connector.deliver(REGISTRATION_ID, {**removal, "@removed": {"reason": "deleted"}}, timestamp=now)
    assert graph.activity(ASSIGNMENT_ID) is None
    graph.reset(seed_example=True)  # it is back in Graph (restored elsewhere)
    assert "corrected 1" in command("reconcile").stdout
    await connector.drain()
    assert graph.activity(ASSIGNMENT_ID) is None


async def test_reconciling_a_provider_that_is_not_configured_is_refused(connector, command):
    ran = command("reconcile", "--registration-id", "not-a-provider")
    assert ran.returncode == 1
    assert ran.stderr.strip() == "error: --registration-id: 'not-a-provider' is not a provider in CONNECTOR_PROVIDERS"
    assert await connector.count() == 0
