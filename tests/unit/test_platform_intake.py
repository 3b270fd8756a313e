"""What the platforms' endpoints share: the queue message of a mapped event (what it may carry, and when there is
nothing to send), and the dead letter of one that cannot be applied."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from connector.app.platform_intake import dead_letter, mapped_envelope
from connector.domain.envelope import read_envelope
from connector.domain.events import ASSIGNMENT, FieldError
from connector.domain.formats.mapped import MappedEvent
from connector.settings import ProviderSettings

AT = datetime(2025, 3, 5, 9, 40, tzinfo=UTC)
CREATING = ProviderSettings("reg-1", create_missing=True)
UPDATING = ProviderSettings("reg-1")


def event(changes: dict, **fields) -> MappedEvent:
    defaults = {"learner": "S-88121", "learner_kind": "employeeId", "content": "sec-101", "odata_type": None}
    return MappedEvent("e-1", AT, "act-1", changes, **{**defaults, **fields})


def message(provider: ProviderSettings, mapped: MappedEvent) -> dict | None:
    envelope = mapped_envelope(provider, mapped, source="caliper", received_at="2025-03-05T09:41:00Z")
    return json.loads(envelope.to_json()) if envelope is not None else None


def test_an_event_of_unknown_type_carries_only_what_both_types_take():
    dates = {"assignedDateTime": "2025-03-01T00:00:00+00:00", "dueDateTime": {"dateTime": "x", "timeZone": "UTC"}}
    sent = message(UPDATING, event({"status": "inProgress", **dates}))
    assert sent["event"] == {"externalcourseActivityId": "act-1", "status": "inProgress"}
    assert message(UPDATING, event({"status": "notStarted"})) is None  # nothing a self-initiated course takes


def test_an_assignments_event_names_its_type_and_keeps_its_dates():
    sent = message(UPDATING, event({"status": "notStarted", "assignedDateTime": "2025-03-01T00:00:00+00:00"},
                                   odata_type=ASSIGNMENT))  # fmt: skip
    assert sent["event"]["@odata.type"] == ASSIGNMENT
    assert sent["event"]["assignedDateTime"] == "2025-03-01T00:00:00+00:00"


def test_who_and_what_travel_only_for_a_provider_that_creates_and_say_how_to_find_the_learner():
    assert "learnerUserId" not in message(UPDATING, event({"status": "inProgress"}))["event"]
    sent = message(CREATING, event({"status": "inProgress"}))
    assert (sent["event"]["learnerUserId"], sent["event"]["learningContentId"]) == ("S-88121", "sec-101")
    assert sent["learnerMatch"] == "employeeId"
    assert (
        message(CREATING, event({"status": "inProgress"}, learner="a@b.example", learner_kind="email"))["learnerMatch"]
        == "email"
    )


def test_a_withdrawal_is_sent_without_changes():
    sent = message(UPDATING, event({}, removed=True))
    assert sent["event"] == {"externalcourseActivityId": "act-1", "@removed": {"reason": "deleted"}}
    assert (sent["eventId"], sent["eventTime"], sent["source"]) == ("e-1", "2025-03-05T09:40:00.000000Z", "caliper")


def test_a_dead_letter_is_an_envelope_the_replay_tool_reads_with_its_reason():
    errors = [FieldError("actor.id", "is invalid", "the event names no learner"), FieldError("x", "is required", "y")]
    letter = dead_letter(UPDATING, errors, source="canvas", event_id="canvas-1", event_time=AT,
                         received_at="2025-03-05T09:41:00Z", code="unmappable", status=422)  # fmt: skip
    read = read_envelope(json.loads(letter.to_json()))
    assert (read.id, read.event, read.source) == ("canvas-1", {}, "canvas")
    assert read.dead_letter["message"] == "Input field actor.id is invalid (the event names no learner)"
    assert (read.dead_letter["field"], read.dead_letter["code"], len(read.dead_letter["details"])) == (
        "actor.id",
        "unmappable",
        2,
    )
