"""A provider's callback becomes the right PATCH on Graph, applied with the managed identity."""

from __future__ import annotations

import base64
import json

from devtools.examples import (
    ASSIGNMENT_EXTERNAL_ID,
    ASSIGNMENT_ID,
    EXAMPLE_1_ASSIGNMENT,
    EXAMPLE_1_PATCH,
    EXAMPLE_2_PATCH,
    EXAMPLE_2_SELF_INITIATED,
    REGISTRATION_ID,
)

SELF_ID = "9ca2228a-e020-11ec-9d64-0242ac120004"
LEARNER = "7ba2228a-e020-11ec-9d64-0242ac120002"
CONTENT = "57baf9dc-e020-11ec-9d64-0242ac120002"


def progress(external_id: str = ASSIGNMENT_EXTERNAL_ID, **fields) -> dict:
    return {
        "@odata.type": "#microsoft.graph.learningAssignment",
        "externalcourseActivityId": external_id,
        "status": "inProgress",
        **fields,
    }


async def test_example_1_is_patched_exactly_with_a_managed_identity_token(connector, graph, caplog):
    caplog.set_level("INFO")
    (run,) = await connector.deliver(REGISTRATION_ID, EXAMPLE_1_ASSIGNMENT)
    assert (run.error, run.poison) == (None, None)
    (patch,) = connector.patches()
    assert (
        patch["path"]
        == f"/employeeExperience/learningProviders/{REGISTRATION_ID}/learningCourseActivities/{ASSIGNMENT_ID}"
    )
    assert patch["body"] == EXAMPLE_1_PATCH
    assert patch["status"] == 204
    assert {k.lower(): v for k, v in patch["headers"].items()}["authorization"] == "Bearer <redacted>"
    assert graph.stats()["tokenRequests"] >= 1
    activity = graph.activity(ASSIGNMENT_ID)
    assert (activity["status"], activity["completionPercentage"]) == ("inProgress", 20)
    assert activity["notes"] == {"content": "required assignment added for user", "contentType": "text"}
    lookups = graph.requests(method="GET", path_contains="externalcourseActivityId")
    assert len(lookups) == 1
    applied = [r.getMessage() for r in caplog.records if "applied to" in r.getMessage()]
    assert applied
    assert f"(request-id {patch['requestId']})" in applied[0]


async def test_example_2_is_patched_exactly(connector, graph):
    graph.reset()
    graph.seed(
        providers=[{"id": REGISTRATION_ID, "isCourseActivitySyncEnabled": True}],
        activities=[
            {
                "@odata.type": "#microsoft.graph.learningSelfInitiatedCourse",
                "id": SELF_ID,
                "externalcourseActivityId": ASSIGNMENT_EXTERNAL_ID,
                "learningProviderId": REGISTRATION_ID,
                "learnerUserId": LEARNER,
                "learningContentId": CONTENT,
                "status": "inProgress",
            }
        ],
    )
    (run,) = await connector.deliver(REGISTRATION_ID, EXAMPLE_2_SELF_INITIATED)
    assert run.error is None
    assert run.poison is None
    (patch,) = connector.patches()
    assert patch["body"] == EXAMPLE_2_PATCH
    activity = graph.activity(SELF_ID)
    assert (activity["completionPercentage"], activity["startedDateTime"][:19]) == (30, "2021-05-11T22:57:17")


async def test_a_graph_id_is_checked_once_through_the_providers_own_url(connector, graph):
    body = {
        "@odata.type": "#microsoft.graph.learningAssignment",
        "learningCourseActivityId": ASSIGNMENT_ID,
        "status": "inProgress",
        "completionPercentage": 40,
    }
    (run,) = await connector.deliver(REGISTRATION_ID, body)
    assert run.error is None
    url = f"/employeeExperience/learningProviders/{REGISTRATION_ID}/learningCourseActivities/{ASSIGNMENT_ID}"
    assert [(r["method"], r["path"]) for r in graph.requests()] == [("GET", url), ("PATCH", url)]
    graph.clear_requests()
    (run,) = await connector.deliver(REGISTRATION_ID, {**body, "completionPercentage": 60})
    assert run.error is None
    assert [(r["method"], r["path"]) for r in graph.requests()] == [("PATCH", url)]


async def test_the_graph_id_from_the_event_is_sent_as_the_reference_says(connector, graph):
    body = {
        "@odata.type": "#microsoft.graph.learningAssignment",
        "learningCourseActivityId": ASSIGNMENT_ID,
        "status": "completed",
        "completionPercentage": 100,
        "completedDateTime": "2026-11-20T10:00:00Z",
    }
    (run,) = await connector.deliver(REGISTRATION_ID, body)
    assert run.error is None
    assert connector.patches()[0]["body"] == {
        "@odata.type": "#microsoft.graph.learningAssignment",
        "status": "completed",
        "completionPercentage": 100,
        "completedDateTime": "2026-11-20T10:00:00+00:00",
    }
    assert graph.activity(ASSIGNMENT_ID)["status"] == "completed"


async def test_one_token_and_one_lookup_serve_many_callbacks(connector, graph):
    for percent in (10, 20, 30):
        await connector.deliver(REGISTRATION_ID, progress(completionPercentage=percent))
    assert [p["body"]["completionPercentage"] for p in connector.patches()] == [10, 20, 30]
    assert graph.stats()["tokenRequests"] == 1
    assert len(graph.requests(method="GET", path_contains="externalcourseActivityId")) == 1


async def test_an_unknown_external_id_is_dead_lettered_with_graphs_reason(connector, graph):
    (run,) = await connector.deliver(REGISTRATION_ID, progress("no-such-activity"))
    assert run.error is None
    letter = json.loads(run.poison)
    assert letter["event"]["externalcourseActivityId"] == "no-such-activity"
    reason = letter["deadLetter"]
    assert (reason["status"], reason["code"]) == (404, "notFound")
    assert reason["message"]
    assert reason["requestId"]
    assert connector.patches() == []


async def test_a_403_is_dead_lettered_not_retried(connector, graph):
    graph.set_identity(roles=["LearningSelfInitiatedCourse.ReadWrite.All"])
    (run,) = await connector.deliver(REGISTRATION_ID, progress())
    assert run.error is None
    reason = json.loads(run.poison)["deadLetter"]
    assert (reason["status"], reason["code"]) == (403, "Forbidden")


async def test_a_disabled_provider_is_dead_lettered_with_graphs_message(connector, graph):
    graph.put_provider(REGISTRATION_ID, isCourseActivitySyncEnabled=False)
    (run,) = await connector.deliver(REGISTRATION_ID, progress())
    reason = json.loads(run.poison)["deadLetter"]
    assert (reason["status"], reason["message"]) == (400, "This provider isn't enabled for the given tenant.")


async def test_a_500_fails_the_invocation_so_the_host_retries_then_succeeds(connector, graph):
    graph.add_fault(target="graph", method="PATCH", status=500, count=1)
    reply = connector.post(REGISTRATION_ID, progress(completionPercentage=42))
    first = await connector.run(reply.messages[0], dequeue_count=1)
    assert first.error is not None
    assert "500" in str(first.error)
    assert first.poison is None
    second = await connector.run(reply.messages[0], dequeue_count=2)
    assert (second.error, second.poison) == (None, None)
    assert [p["status"] for p in connector.patches()] == [500, 204]
    assert graph.activity(ASSIGNMENT_ID)["completionPercentage"] == 42


async def test_a_dropped_connection_is_transient(connector, graph):
    graph.add_fault(target="graph", method="PATCH", drop=True, count=1)
    reply = connector.post(REGISTRATION_ID, progress())
    run = await connector.run(reply.messages[0])
    assert run.error is not None
    assert "connectionError" in str(run.error)


async def test_a_token_endpoint_failure_is_transient(connector, graph):
    graph.add_fault(target="identity", status=500, count=10)
    reply = connector.post(REGISTRATION_ID, progress())
    run = await connector.run(reply.messages[0])
    assert run.error is not None
    assert "tokenUnavailable" in str(run.error)
    graph.clear_faults()
    assert (await connector.run(reply.messages[0], dequeue_count=2)).error is None
    assert connector.patches()[-1]["status"] == 204


async def test_a_bare_event_on_the_queue_is_validated_and_applied(connector, graph):
    bare = json.dumps({**progress(completionPercentage=55), "registrationId": REGISTRATION_ID})
    run = await connector.run(bare, message_id="queue-msg-1")
    assert (run.error, run.poison) == (None, None)
    assert connector.patches()[0]["body"]["completionPercentage"] == 55


async def test_a_base64_encoded_bare_event_is_read_too(connector, graph):
    bare = json.dumps({**progress(completionPercentage=56), "registrationId": REGISTRATION_ID})
    run = await connector.run(base64.b64encode(bare.encode()).decode())
    assert run.error is None
    assert connector.patches()[0]["body"]["completionPercentage"] == 56


async def test_an_invalid_bare_event_is_dead_lettered_with_the_validation_errors(connector, graph):
    bare = json.dumps({**progress(status="finished", completionPercentage=300), "registrationId": REGISTRATION_ID})
    run = await connector.run(bare)
    assert run.error is None
    reason = json.loads(run.poison)["deadLetter"]
    assert (reason["status"], reason["code"], reason["message"]) == (400, "badRequest", "Input field status is invalid")
    assert [d["target"] for d in reason["details"]] == ["status", "completionPercentage"]
    assert connector.patches() == []


async def test_a_bare_event_without_a_known_provider_is_dead_lettered(connector, graph):
    for bare, field in (
        (progress(), "registrationId is required"),
        ({**progress(), "registrationId": "not-configured"}, "registrationId is invalid"),
    ):
        run = await connector.run(json.dumps(bare))
        assert field in json.loads(run.poison)["deadLetter"]["message"]


async def test_a_message_that_is_not_json_is_dead_lettered_as_it_came(connector, graph):
    run = await connector.run(b"\xff\xfe not json")
    letter = json.loads(run.poison)
    assert letter["deadLetter"]["code"] == "unreadableMessage"
    assert "not json" in letter["raw"]


async def test_queue_messages_that_once_crashed_the_worker_are_dead_lettered_with_a_reason(connector):
    envelope = json.loads(connector.post(REGISTRATION_ID, progress()).messages[0])
    broken = [
        "[" * 5000 + "]" * 5000,
        json.dumps({**envelope, "sequence": "abc"}),
        json.dumps({**envelope, "attempt": [1]}),
        json.dumps({**envelope, "firstAttemptAt": 5}),
    ]
    for body in broken:
        run = await connector.run(body)
        assert run.error is None, body[:80]
        assert json.loads(run.poison)["deadLetter"]["code"] == "unreadableMessage"


async def test_a_dead_letter_with_a_lone_surrogate_can_still_be_written(connector):
    bare = json.dumps({**progress("\ud800"), "registrationId": REGISTRATION_ID, "status": "nope"})
    run = await connector.run(bare)
    assert run.error is None
    run.poison.encode("utf-8")  # writable to the queue
    assert json.loads(run.poison)["deadLetter"]["code"] == "badRequest"
