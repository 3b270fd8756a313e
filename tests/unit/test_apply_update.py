"""Every path of applying an update, against in-memory fakes of the ports (tests/unit/fakes.py): no Azurite, no
sandbox, milliseconds each. The integration tests run the same worker against the real parts."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connector.app.apply_update import Delivery, RetryLater, Worker
from connector.domain.activity import ActivityState
from connector.domain.envelope import Envelope, utc_iso
from connector.domain.events import ASSIGNMENT, SELF_INITIATED
from connector.domain.failures import GraphFailure, Kind
from connector.settings import load_settings
from tests.support.signing import SECRET
from tests.unit.fakes import FORBIDDEN, THROTTLED, UNSURE, Clock, FakeGraph, FakeStore

REG = "01e8f81b-3060-4dec-acf0-0389665a0a38"
CREATING = "2b7c3f0e-8d1a-4c55-9e0b-7a1f2d3c4b5a"
EXT = "ext-1"


class World:
    """A worker with fake ports, and helpers to send it events as the webhook would."""

    def __init__(self) -> None:
        providers = {REG: {"webhookSecrets": [SECRET]}, CREATING: {"webhookSecrets": [SECRET], "createMissing": True}}
        self.settings = load_settings({"CONNECTOR_PROVIDERS": json.dumps(providers)})
        self.graph = FakeGraph()
        self.store = FakeStore()
        self.clock = Clock()
        self.requeued: list[tuple[str, int]] = []
        self.worker = self.make_worker()
        self.activity = self.graph.add(REG, ASSIGNMENT, EXT, status="notStarted")
        self._sent = 0

    def make_worker(self) -> Worker:
        async def graph_for(_: str) -> FakeGraph:
            return self.graph

        async def requeue(body: str, delay: int) -> None:
            self.requeued.append((body, delay))

        return Worker(
            self.settings, graph_for, self.store, self.store, requeue, retry_delay_seconds=30, clock=self.clock
        )

    def message(self, event: dict[str, Any], *, event_id: str | None = None, seconds: int = 0, **envelope: Any) -> str:
        self._sent += 1
        when = self.clock.now + timedelta(seconds=seconds)
        return Envelope(
            id=event_id or f"w{self._sent}",
            registration_id=envelope.pop("registration_id", REG),
            event=event,
            source=envelope.pop("source", "webhook"),
            webhook_id=event_id or f"w{self._sent}",
            event_time=utc_iso(when),
            received_at=utc_iso(when),
            **envelope,
        ).to_json()

    async def run(self, message: str, dequeue_count: int = 1):
        return await self.worker.handle(Delivery(message.encode(), "storage-id", dequeue_count))

    def row(self, key: str = f"ext:{EXT}") -> ActivityState:
        found = self.store.row(REG, key)
        assert found is not None
        return found


def progress(percent: int, **fields: Any) -> dict[str, Any]:
    return {
        "@odata.type": ASSIGNMENT,
        "externalcourseActivityId": EXT,
        "status": "inProgress",
        "completionPercentage": percent,
        **fields,
    }


@pytest.fixture
def world() -> World:
    return World()


async def test_an_update_is_looked_up_once_patched_and_recorded(world):
    outcome = await world.run(world.message(progress(40)))
    assert outcome.status == "applied"
    assert [(c.method, c.target) for c in world.graph.calls] == [("GET", f"ext:{EXT}"), ("PATCH", "graph-1")]
    row = world.row()
    assert (row.status, row.graph_id, row.applied["completionPercentage"]) == ("applied", "graph-1", 40)
    world.graph.calls.clear()
    assert (await world.run(world.message(progress(50)))).status == "applied"
    assert [c.method for c in world.graph.calls] == ["PATCH"]


async def test_a_repeated_event_is_a_duplicate_and_sends_nothing(world):
    message = world.message(progress(40))
    await world.run(message)
    world.graph.calls.clear()
    assert (await world.run(message, dequeue_count=2)).status == "duplicate"
    assert world.graph.calls == []


async def test_an_event_that_changes_nothing_reads_graph_once_and_sends_no_patch(world):
    await world.run(world.message(progress(40)))
    world.graph.calls.clear()
    assert (await world.run(world.message(progress(40)))).status == "unchanged"
    assert [c.method for c in world.graph.calls] == ["GET"]


async def test_graph_changed_elsewhere_is_set_right(world):
    await world.run(world.message(progress(40)))
    world.activity["completionPercentage"] = 0  # someone edited Graph
    assert (await world.run(world.message(progress(40)))).status == "applied"
    assert world.activity["completionPercentage"] == 40


async def test_a_repeat_after_an_unsure_failure_is_read_back_before_it_counts_as_done(world):
    message = world.message(progress(70))
    world.graph.applies_then_fails.append(UNSURE)  # Graph applied it; the worker never heard
    with pytest.raises(RetryLater):
        await world.run(message)
    assert world.row().unsure
    world.graph.calls.clear()
    assert (await world.run(message, dequeue_count=2)).status == "applied"
    assert [c.method for c in world.graph.calls] == ["GET", "PATCH"]  # the merge was still unsent: sent again
    world.graph.calls.clear()
    # The first PATCH may still land late, over the second: until Graph is read back and agrees, a repeat is checked.
    assert (await world.run(message, dequeue_count=3)).status == "unchanged"
    assert [c.method for c in world.graph.calls] == ["GET"]
    assert (await world.run(message, dequeue_count=4)).status == "duplicate"


async def test_an_unsure_row_whose_merge_was_applied_meanwhile_is_checked_against_graph(world):
    message = world.message(progress(70))
    world.graph.fail("PATCH", UNSURE)
    with pytest.raises(RetryLater):
        await world.run(message)
    await world.run(world.message(progress(70)))  # applied by another callback meanwhile
    world.graph.calls.clear()
    assert (await world.run(message, dequeue_count=2)).status == "unchanged"
    assert [c.method for c in world.graph.calls] == ["GET"]  # read back, not taken on trust
    assert not world.row().unsure


async def test_a_write_that_finds_a_newer_merge_sends_again(world):
    await world.run(world.message(progress(10)))

    def another_worker(_: ActivityState) -> None:  # folds a newer event between this worker's PATCH and its write
        row = world.row()
        world.store.put(replace(row, merged=_merged_with(row, 90), version=row.version + 1))

    world.store.before_save = another_worker
    await world.run(world.message(progress(50)))
    bodies = [c.body["completionPercentage"] for c in world.graph.patches()]
    assert bodies[-1] == 90, bodies
    assert world.activity["completionPercentage"] == 90


async def test_a_patch_another_worker_sent_that_may_land_last_is_answered_with_a_resend(world):
    """Two workers PATCH at once; the one with the older merge writes its row first. The other's write conflicts,
    and although its own merge equals what it sent, Graph may hold the older PATCH: it sends again."""
    await world.run(world.message(progress(10)))
    older_body = {"status": "inProgress", "completionPercentage": 90}

    def older_patch_lands_last() -> None:
        world.activity.update(older_body)  # the other worker's PATCH, 90, lands after ours

    def other_worker_wrote_first(_: ActivityState) -> None:
        row = world.row()
        merged = _merged_with(row, 95)
        world.store.put(replace(row, merged=merged, version=row.version + 1, applied=older_body))

    world.graph.before_patch = older_patch_lands_last
    world.store.before_save = other_worker_wrote_first
    world.graph.calls.clear()
    await world.run(world.message(progress(95)))
    assert [c.body["completionPercentage"] for c in world.graph.patches()] == [95, 95]
    assert world.activity["completionPercentage"] == 95


async def test_a_throttled_update_goes_back_on_the_queue_with_graphs_delay(world):
    world.graph.fail("PATCH", THROTTLED)
    outcome = await world.run(world.message(progress(30)))
    assert outcome.status == "throttled"
    ((body, delay),) = world.requeued
    assert delay == 120  # "Retry after 2 minutes"
    assert json.loads(body)["attempt"] == 1
    row = world.row()
    assert (row.status, row.next_attempt_at) == ("throttled", utc_iso(world.clock.now + timedelta(seconds=120)))
    assert row.pending_values()["completionPercentage"] == 30


async def test_throttling_past_24_hours_is_dead_lettered_to_be_replayed(world):
    world.graph.fail("PATCH", THROTTLED)
    first = utc_iso(world.clock.now - timedelta(hours=23, minutes=59))
    message = world.message(progress(30), attempt=40, first_attempt_at=first)
    outcome = await world.run(message)
    assert outcome.status == "deadLettered"
    reason = json.loads(outcome.dead_letter)["deadLetter"]
    assert reason["status"] == 429
    assert "still throttled after 41 attempts over 24 hours" in reason["message"]
    assert world.requeued == []
    assert world.row().status == "failed"


async def test_a_throttled_update_within_the_window_keeps_coming_back(world):
    world.graph.fail("PATCH", THROTTLED)
    first = utc_iso(world.clock.now - timedelta(hours=23, minutes=50))
    assert (await world.run(world.message(progress(30), attempt=40, first_attempt_at=first))).status == "throttled"


async def test_a_transient_failure_is_retried_by_the_host_with_the_retry_time_recorded(world):
    world.graph.fail("PATCH", GraphFailure(502, "badGateway", "Bad gateway."))
    with pytest.raises(RetryLater) as raised:
        await world.run(world.message(progress(30)))
    assert raised.value.__context__ is None
    row = world.row()
    assert (row.status, row.next_attempt_at) == ("retrying", utc_iso(world.clock.now + timedelta(seconds=30)))


async def test_the_last_host_retry_is_recorded_as_failed(world):
    world.graph.fail("PATCH", GraphFailure(500, "internalServerError", "Internal server error."))
    with pytest.raises(RetryLater):
        await world.run(world.message(progress(30)), dequeue_count=5)
    assert (world.row().status, world.row().next_attempt_at) == ("failed", None)


async def test_a_permanent_failure_is_dead_lettered_with_the_values_that_did_not_reach_graph(world):
    await world.run(world.message(progress(30)))
    world.graph.fail("PATCH", FORBIDDEN)
    outcome = await world.run(world.message(progress(80)))
    assert outcome.status == "deadLettered"
    assert json.loads(outcome.dead_letter)["deadLetter"]["status"] == 403
    row = world.row()
    assert (row.status, row.applied["completionPercentage"]) == ("failed", 30)
    assert row.pending_values()["completionPercentage"] == 80
    assert row.merged.values["completionPercentage"] == 30  # not merged: replaying the dead letter brings it


async def test_an_event_of_the_other_type_is_dead_lettered_naming_odata_type(world):
    await world.run(world.message(progress(30)))
    other = {"@odata.type": SELF_INITIATED, "externalcourseActivityId": EXT, "status": "inProgress"}
    outcome = await world.run(world.message(other))
    detail = json.loads(outcome.dead_letter)["deadLetter"]["details"][0]
    assert detail["target"] == "@odata.type"
    assert detail["rule"] == "this activity is a learningAssignment; earlier callbacks said so"


async def test_an_id_reused_for_other_content_is_dead_lettered_naming_the_reuse(world):
    await world.run(world.message(progress(30), event_id="msg-1"))
    assert (await world.run(world.message(progress(30), event_id="msg-1"))).status == "duplicate"
    outcome = await world.run(world.message(progress(60), event_id="msg-1"))
    assert json.loads(outcome.dead_letter)["deadLetter"]["code"] == "eventIdReused"


async def test_an_unknown_activity_is_dead_lettered_with_graphs_reason(world):
    outcome = await world.run(world.message(progress(30, externalcourseActivityId="nobody-knows")))
    reason = json.loads(outcome.dead_letter)["deadLetter"]
    assert (reason["status"], reason["code"]) == (404, "notFound")


async def test_a_graph_id_of_another_provider_is_never_patched(world):
    world.graph.add("other-provider", ASSIGNMENT, "theirs", status="notStarted")
    body = {"@odata.type": ASSIGNMENT, "learningCourseActivityId": "graph-2", "status": "completed"}
    outcome = await world.run(world.message(body))
    assert json.loads(outcome.dead_letter)["deadLetter"]["code"] == "activityNotFound"
    assert world.graph.patches() == []


async def test_a_statement_for_a_missing_activity_creates_it_where_the_provider_asks(world):
    world.graph.users.append({"id": "learner-1", "userPrincipalName": "ada@contoso.example"})
    world.graph.contents.append({"id": "content-1", "externalId": "https://lms.example/courses/c1"})
    statement = {"externalcourseActivityId": "xapi-1", "status": "inProgress", "completionPercentage": 20}
    xapi = {
        "statementId": "s1",
        "actor": {"mbox": "mailto:ada@contoso.example"},
        "activityId": "https://lms.example/courses/c1",
    }
    outcome = await world.run(world.message(statement, registration_id=CREATING, source="xapi", extra={"xapi": xapi}))
    assert outcome.status == "applied"
    (created,) = [c for c in world.graph.calls if c.method == "POST"]
    assert (created.body["learnerUserId"], created.body["learningContentId"]) == ("learner-1", "content-1")


async def test_a_statement_whose_learner_cannot_be_found_is_dead_lettered_with_the_reason(world):
    statement = {"externalcourseActivityId": "xapi-1", "status": "inProgress"}
    xapi = {"statementId": "s1", "actor": {"mbox": "mailto:nobody@contoso.example"}, "activityId": "c1"}
    outcome = await world.run(world.message(statement, registration_id=CREATING, source="xapi", extra={"xapi": xapi}))
    assert json.loads(outcome.dead_letter)["deadLetter"]["code"] == "learnerNotFound"


async def test_rows_of_one_activity_named_both_ways_are_joined_once_its_graph_id_is_known(world):
    by_id = {"@odata.type": ASSIGNMENT, "learningCourseActivityId": "graph-1", "status": "completed"}
    await world.run(world.message(by_id, seconds=10))
    await world.run(world.message(progress(20)))
    assert world.store.row(REG, "id:graph-1") is None
    assert world.row().merged.values["status"] == "completed"
    assert world.activity["status"] == "completed"


async def test_an_unreadable_message_is_dead_lettered_as_it_came(world):
    outcome = await world.worker.handle(Delivery(b"\xff not json", "storage-id"))
    assert json.loads(outcome.dead_letter)["deadLetter"]["code"] == "unreadableMessage"


async def test_graph_failures_are_decided_by_kind_not_number():
    assert GraphFailure(503, "serviceUnavailable", "Retry after 1 minutes").kind is Kind.THROTTLED
    assert GraphFailure(504, "gatewayTimeout", "").kind is Kind.UNSURE
    assert GraphFailure(401, "unauthorized", "").kind is Kind.TRANSIENT
    assert GraphFailure(400, "badRequest", "").kind is Kind.PERMANENT
    assert not GraphFailure(405, "methodNotAllowed", "").retried


def _merged_with(row: ActivityState, percent: int):
    from connector.domain.merge import Stamp, fold

    stamp = Stamp(datetime(2026, 11, 27, 13, tzinfo=UTC), 0, f"other-{percent}")
    return fold(row.merged, {"status": "inProgress", "completionPercentage": percent}, stamp)


# --- The lifecycle (issue 12): created when missing, withdrawn when removed, in any order. ---

NEW = "ext-new"


def assignment(**fields: Any) -> dict[str, Any]:
    return {
        "@odata.type": ASSIGNMENT,
        "externalcourseActivityId": NEW,
        "status": "notStarted",
        "learnerUserId": "ada@contoso.example",
        "learningContentId": "course-101",
        "assignmentType": "required",
        **fields,
    }


def removal(**fields: Any) -> dict[str, Any]:
    return {"@odata.type": ASSIGNMENT, "externalcourseActivityId": NEW, "@removed": {"reason": "deleted"}, **fields}


@pytest.fixture
def creating(world) -> World:
    world.graph.users.append({"id": "learner-1", "userPrincipalName": "ada@contoso.example"})
    world.graph.contents.append({"id": "content-1", "externalId": "course-101"})
    return world


async def run_for(world: World, event: dict[str, Any], **kwargs: Any):
    return await world.run(world.message(event, registration_id=CREATING, **kwargs))


def new_row(world: World) -> ActivityState:
    found = world.store.row(CREATING, f"ext:{NEW}")
    assert found is not None
    return found


async def test_an_assignment_graph_lacks_is_created_for_the_learner_and_content_it_names(creating):
    outcome = await run_for(creating, assignment())
    assert outcome.status == "applied"
    (created,) = creating.graph.by_external(NEW)
    assert (created["learnerUserId"], created["learningContentId"]) == ("learner-1", "content-1")
    assert (created["assignmentType"], created["status"]) == ("required", "notStarted")
    assert creating.graph.patches() == []  # the create carried the values
    assert new_row(creating).graph_id == created["id"]


async def test_an_event_that_cannot_create_is_dead_lettered_naming_the_fields_and_kept_for_the_next(creating):
    progress_only = {"@odata.type": ASSIGNMENT, "externalcourseActivityId": NEW, "status": "inProgress"}
    outcome = await run_for(creating, {**progress_only, "completionPercentage": 40})
    reason = json.loads(outcome.dead_letter)["deadLetter"]
    assert reason["missing"] == ["learnerUserId", "learningContentId", "assignmentType"]
    assert "learnerUserId and learningContentId and assignmentType" in reason["message"]
    await run_for(creating, assignment(), seconds=-60)  # the assignment, sent earlier, arrives later
    (created,) = creating.graph.by_external(NEW)
    assert (created["status"], created["completionPercentage"]) == ("inProgress", 40)


async def test_a_learner_that_cannot_be_found_is_dead_lettered_naming_the_field(creating):
    outcome = await run_for(creating, assignment(learnerUserId="nobody@contoso.example"))
    reason = json.loads(outcome.dead_letter)["deadLetter"]
    assert (reason["code"], reason["field"]) == ("learnerNotFound", "learnerUserId")
    assert "nobody@" not in reason["message"]  # never the value: it may be an email
    assert creating.graph.by_external(NEW) == []


async def test_a_provider_that_does_not_create_dead_letters_graphs_404(world):
    outcome = await world.run(world.message(assignment()))
    assert json.loads(outcome.dead_letter)["deadLetter"]["status"] == 404
    assert world.graph.by_external(NEW) == []


async def test_a_removal_deletes_the_activity_and_an_older_update_does_not_bring_it_back(creating):
    await run_for(creating, assignment())
    outcome = await run_for(creating, removal(), seconds=10)
    assert outcome.status == "withdrawn"
    assert creating.graph.by_external(NEW) == []
    row = new_row(creating)
    assert (row.status, row.graph_id, row.deletion_reason) == ("deleted", None, "deleted")
    assert row.public()["deletedAt"] == utc_iso(creating.clock.now)
    late = await run_for(creating, assignment(status="inProgress", completionPercentage=50), seconds=5)
    assert late.status == "unchanged"
    assert creating.graph.by_external(NEW) == []


async def test_a_newer_assignment_after_a_removal_creates_the_activity_again_from_nothing(creating):
    await run_for(creating, assignment(status="completed", completionPercentage=100))
    await run_for(creating, removal(), seconds=10)
    await run_for(creating, assignment(), seconds=20)  # assigned anew
    (again,) = creating.graph.by_external(NEW)
    assert (again["status"], again.get("completionPercentage")) == ("notStarted", None)


async def test_a_removal_that_arrives_first_is_kept_and_what_is_older_never_creates(creating):
    assert (await run_for(creating, removal(), seconds=10)).status == "withdrawn"  # nothing to delete yet
    assert (await run_for(creating, assignment())).status == "unchanged"
    assert creating.graph.by_external(NEW) == []


async def test_a_removal_of_an_activity_graph_no_longer_has_is_done(creating):
    await run_for(creating, assignment())
    creating.graph.activities.clear()  # removed elsewhere
    assert (await run_for(creating, removal(), seconds=10)).status == "withdrawn"
    assert new_row(creating).status == "deleted"


async def test_a_create_that_races_another_workers_becomes_an_update(creating):
    creating.graph.add(CREATING, ASSIGNMENT, NEW, status="notStarted")  # the other worker's create landed first
    creating.graph.fail("GET", GraphFailure(404, "notFound", "The assignment ID requested doesn't exist."))
    outcome = await run_for(creating, assignment(status="inProgress"))
    assert outcome.status == "applied"
    assert len(creating.graph.by_external(NEW)) == 1
    assert [c.method for c in creating.graph.calls] == ["GET", "GET", "GET", "POST", "GET", "PATCH"]


async def test_a_create_whose_fate_is_unknown_is_read_back_before_it_is_repeated(creating):
    message = creating.message(assignment(), registration_id=CREATING)
    creating.graph.fail("POST", GraphFailure(None, "timeout", "Graph did not answer in time", kind=Kind.UNSURE))
    creating.graph.before_patch = None
    with pytest.raises(RetryLater):
        await creating.run(message)
    creating.graph.add(CREATING, ASSIGNMENT, NEW, status="notStarted")  # it had been created after all
    creating.graph.calls.clear()
    assert (await creating.run(message, dequeue_count=2)).status == "applied"
    assert [c.method for c in creating.graph.calls] == ["GET", "PATCH"]
    assert len(creating.graph.by_external(NEW)) == 1


async def test_a_peer_recommended_assignment_is_created_as_such(creating):
    await run_for(creating, assignment(assignmentType="peerRecommended", assignerUserId="ada@contoso.example"))
    (created,) = creating.graph.by_external(NEW)
    assert (created["assignmentType"], created["assignerUserId"]) == ("peerRecommended", "learner-1")
