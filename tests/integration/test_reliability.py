"""Late, repeated, concurrent and throttled callbacks: nothing lost, nothing regressed (issue: reliability)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from connector import bootstrap
from connector.app.status import activity_status
from connector.ops.replay import replay
from devtools.examples import ASSIGNMENT_EXTERNAL_ID, ASSIGNMENT_ID, REGISTRATION_ID

EXT = ASSIGNMENT_EXTERNAL_ID


def event(**fields) -> dict:
    return {"@odata.type": "#microsoft.graph.learningAssignment", "externalcourseActivityId": EXT, **fields}


async def status_of(activity_id: str = EXT) -> dict:
    reply = await activity_status(bootstrap.settings(), bootstrap.state_store(), REGISTRATION_ID, activity_id)
    assert reply.status == 200, reply.body
    return reply.body


async def test_a_redelivered_message_sends_no_second_patch(connector):
    reply = connector.post(REGISTRATION_ID, event(status="inProgress", completionPercentage=10))
    for attempt in (1, 2):
        assert (await connector.run(reply.messages[0], dequeue_count=attempt)).error is None
    assert len(connector.patches()) == 1


async def test_a_redelivered_webhook_sends_no_second_patch(connector):
    body = json.dumps(event(status="inProgress", completionPercentage=10))
    for _ in range(3):
        await connector.deliver(REGISTRATION_ID, body, webhook_id="msg_same")
    assert len(connector.patches()) == 1


async def test_an_old_callback_after_a_newer_one_does_not_regress(connector, graph):
    now = datetime.now(UTC).timestamp()
    done = event(status="completed", completionPercentage=100, completedDateTime="2026-11-26T09:00:00Z")
    await connector.deliver(REGISTRATION_ID, done, timestamp=now)
    await connector.deliver(REGISTRATION_ID, event(status="inProgress", completionPercentage=40), timestamp=now - 60)
    assert len(connector.patches()) == 1
    activity = graph.activity(ASSIGNMENT_ID)
    assert (activity["status"], activity["completionPercentage"]) == ("completed", 100)
    assert activity["completedDateTime"].startswith("2026-11-26T09:00:00")


async def test_the_same_content_under_a_new_webhook_id_reads_graph_and_sends_no_patch(connector, graph):
    await connector.deliver(REGISTRATION_ID, event(status="inProgress", completionPercentage=50))
    graph.clear_requests()
    await connector.deliver(REGISTRATION_ID, event(status="inProgress", completionPercentage=50))
    assert connector.patches() == []
    assert [r["method"] for r in graph.requests()] == ["GET"]


async def test_graph_changed_elsewhere_is_set_right_again(connector, graph):
    await connector.deliver(REGISTRATION_ID, event(status="inProgress", completionPercentage=50))
    graph.reset(seed_example=True)  # the activity is back to notStarted in Graph
    await connector.deliver(REGISTRATION_ID, event(status="inProgress", completionPercentage=50))
    assert graph.activity(ASSIGNMENT_ID)["completionPercentage"] == 50


async def test_concurrent_callbacks_leave_graph_with_the_merged_state(connector, graph):
    graph.set_latency(20)  # widen the window between a worker's read and its PATCH
    reply = connector.post(
        REGISTRATION_ID, [event(status="inProgress", completionPercentage=p) for p in range(5, 100, 5)]
    )
    messages = list(zip(reply.messages, reply.body["ids"], strict=True))
    runs = await asyncio.gather(*(connector.run(m, message_id=i) for m, i in reversed(messages)))
    assert [r.error for r in runs] == [None] * len(runs)
    patches = connector.patches()
    assert patches[-1]["body"]["completionPercentage"] == 95
    assert graph.activity(ASSIGNMENT_ID)["completionPercentage"] == 95
    state = await status_of()
    assert state["state"] == "applied"
    assert state["applied"]["completionPercentage"] == 95
    assert state["pending"] is None


async def test_a_429_goes_back_on_the_queue_with_its_delay_and_then_applies(connector, graph):
    graph.add_fault(target="graph", method="PATCH", status=429, retry_after=1, count=1)
    reply = connector.post(REGISTRATION_ID, event(status="inProgress", completionPercentage=61))
    first = await connector.run(reply.messages[0])
    assert (first.error, first.poison) == (None, None)
    state = await status_of()
    assert state["state"] == "throttled"
    assert state["lastError"]["status"] == 429
    async with connector.queue() as queue:
        for _ in range(100):
            found = [m async for m in queue.receive_messages(visibility_timeout=30)]
            if found:
                break
            await asyncio.sleep(0.05)
    (requeued,) = found
    assert requeued.dequeue_count == 1
    assert json.loads(requeued.content)["attempt"] == 1
    second = await connector.run(requeued.content, message_id=requeued.id)
    assert second.error is None
    assert [p["status"] for p in connector.patches()] == [429, 204]
    assert (await status_of())["state"] == "applied"


async def test_a_503_saying_retry_after_n_minutes_waits_that_long(connector, graph):
    graph.add_fault(target="graph", method="PATCH", status=503, retry_after_minutes_in_body=2, count=1)
    before = datetime.now(UTC)
    reply = connector.post(REGISTRATION_ID, event(status="inProgress", completionPercentage=62))
    assert (await connector.run(reply.messages[0])).poison is None
    due = datetime.fromisoformat((await status_of())["nextAttemptAt"])
    assert 115 <= (due - before).total_seconds() <= 125
    assert await connector.count() == 1
    assert await connector.messages() == []  # invisible until then


async def test_throttling_beyond_the_window_is_dead_lettered(connector, graph):
    graph.add_fault(target="graph", method="PATCH", status=429, retry_after=60)
    reply = connector.post(REGISTRATION_ID, event(status="inProgress", completionPercentage=63))
    message = json.loads(reply.messages[0])
    message.update(attempt=40, firstAttemptAt=(datetime.now(UTC) - timedelta(hours=24)).isoformat())
    run = await connector.run(json.dumps(message))
    reason = json.loads(run.poison)["deadLetter"]
    assert reason["status"] == 429
    assert "still throttled" in reason["message"]
    assert (await status_of())["state"] == "failed"


async def test_a_permanent_failure_is_recorded_in_the_activity_state(connector, graph):
    graph.put_provider(REGISTRATION_ID, isCourseActivitySyncEnabled=False)
    await connector.deliver(REGISTRATION_ID, event(status="inProgress"))
    state = await status_of()
    assert state["state"] == "failed"
    assert (state["lastError"]["status"], state["lastError"]["code"]) == (400, "badRequest")
    assert state["lastError"]["requestId"]
    assert state["firstAttemptAt"]
    assert state["lastAttemptAt"]


async def test_the_last_transient_attempt_is_recorded_as_failed(connector, graph):
    graph.add_fault(target="graph", method="PATCH", status=500)
    reply = connector.post(REGISTRATION_ID, event(status="inProgress"))
    assert (await connector.run(reply.messages[0], dequeue_count=1)).error is not None
    assert (await status_of())["state"] == "retrying"
    assert (await connector.run(reply.messages[0], dequeue_count=5)).error is not None
    state = await status_of()
    assert state["state"] == "failed"
    assert state["lastError"]["code"] == "internalServerError"


async def test_status_by_graph_id_and_the_404s(connector, graph):
    await connector.deliver(REGISTRATION_ID, event(status="inProgress", completionPercentage=70))
    state = await status_of(ASSIGNMENT_ID)
    assert (state["learningCourseActivityId"], state["externalcourseActivityId"]) == (ASSIGNMENT_ID, EXT)
    assert state["applied"]["completionPercentage"] == 70
    assert state["lastRequestId"]
    settings, store = bootstrap.settings(), bootstrap.state_store()
    assert (await activity_status(settings, store, REGISTRATION_ID, "never-seen")).status == 404
    assert (await activity_status(settings, store, "unknown-provider", EXT)).status == 404


@pytest.mark.parametrize("scope", ["all", "provider", "activity"])
async def test_replay_moves_dead_letters_back_once_the_cause_is_fixed(connector, graph, scope):
    graph.put_provider(REGISTRATION_ID, isCourseActivitySyncEnabled=False)
    (run,) = await connector.deliver(REGISTRATION_ID, event(status="completed", completionPercentage=100))
    other = json.loads(run.poison)
    other["registrationId"] = "another-provider"
    other["event"]["externalcourseActivityId"] = "another-activity"
    async with connector.queue("course-activity-updates-poison") as poison:
        await poison.send_message(run.poison)
        await poison.send_message(json.dumps(other))
    graph.put_provider(REGISTRATION_ID, isCourseActivitySyncEnabled=True)

    filters = {"all": {}, "provider": {"registration_id": REGISTRATION_ID}, "activity": {"activity_id": EXT}}[scope]
    dry = await replay(bootstrap.settings(), dry_run=True, **filters)
    assert (await connector.count()) == 0
    result = await replay(bootstrap.settings(), **filters)
    assert result.moved == dry.moved == (2 if scope == "all" else 1)
    assert await connector.count("course-activity-updates-poison") == 2 - result.moved
    replayed = await connector.messages()
    mine = next(m for m in replayed if json.loads(m)["registrationId"] == REGISTRATION_ID)
    assert "deadLetter" not in json.loads(mine)
    assert (await connector.run(mine)).error is None
    assert graph.activity(ASSIGNMENT_ID)["status"] == "completed"


async def test_naming_an_activity_by_graph_id_and_by_external_id_shares_one_merge(connector, graph):
    now = datetime.now(UTC).timestamp()
    done = event(status="completed", completionPercentage=100, completedDateTime="2026-11-26T09:00:00Z")
    await connector.deliver(REGISTRATION_ID, done, timestamp=now)
    older = {
        "@odata.type": "#microsoft.graph.learningAssignment",
        "learningCourseActivityId": ASSIGNMENT_ID,
        "status": "inProgress",
        "completionPercentage": 20,
    }
    await connector.deliver(REGISTRATION_ID, older, timestamp=now - 60)
    activity = graph.activity(ASSIGNMENT_ID)
    assert (activity["status"], activity["completionPercentage"]) == ("completed", 100)


async def test_a_row_made_by_graph_id_is_folded_into_the_external_ids_row(connector, graph):
    now = datetime.now(UTC).timestamp()
    by_id = {
        "@odata.type": "#microsoft.graph.learningAssignment",
        "learningCourseActivityId": ASSIGNMENT_ID,
        "status": "completed",
        "completionPercentage": 100,
    }
    await connector.deliver(REGISTRATION_ID, by_id, timestamp=now)
    await connector.deliver(REGISTRATION_ID, event(status="inProgress", completionPercentage=30), timestamp=now - 60)
    activity = graph.activity(ASSIGNMENT_ID)
    assert (activity["status"], activity["completionPercentage"]) == ("completed", 100)
    state = await status_of(EXT)
    assert state["applied"]["status"] == "completed"
    assert (await status_of(ASSIGNMENT_ID))["externalcourseActivityId"] == EXT  # one row now


async def test_long_ids_of_any_characters_are_stored(connector, graph):
    external = "/é#?" * 100  # 400 characters that table keys could not hold as they are
    graph.seed(
        activities=[
            {
                "@odata.type": "#microsoft.graph.learningAssignment",
                "id": "long-id-activity",
                "externalcourseActivityId": external,
                "learningProviderId": REGISTRATION_ID,
                "learnerUserId": "7ba2228a-e020-11ec-9d64-0242ac120002",
                "learningContentId": "57baf9dc-e020-11ec-9d64-0242ac120002",
                "assignmentType": "required",
                "status": "notStarted",
            }
        ]
    )
    for n in range(3):
        body = {**event(status="inProgress", completionPercentage=10 + n), "externalcourseActivityId": external}
        (run,) = await connector.deliver(REGISTRATION_ID, body, webhook_id="w" * 250 + str(n))
        assert (run.error, run.poison) == (None, None)
    assert graph.activity("long-id-activity")["completionPercentage"] == 12


async def test_a_repeat_after_an_uncertain_failure_checks_graph_before_calling_itself_done(connector, graph):
    reply = connector.post(REGISTRATION_ID, event(status="inProgress", completionPercentage=70))
    graph.add_fault(target="graph", method="PATCH", drop=True, count=1)
    first = await connector.run(reply.messages[0], dequeue_count=1)
    assert first.error is not None  # the connection dropped: did Graph apply it? unknown
    await connector.deliver(REGISTRATION_ID, event(status="inProgress", completionPercentage=70))  # applied meanwhile
    graph.clear_requests()
    retry = await connector.run(reply.messages[0], dequeue_count=2)
    assert retry.error is None
    assert [r["method"] for r in graph.requests()] == ["GET"]  # read back, not taken on trust
    state = await status_of()
    assert state["state"] == "applied"
