"""The queue message: what the webhook writes for a batch is what an envelope writes for each event."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from connector.domain.envelope import Envelope, batch_messages, read_envelope


def test_batch_messages_equal_each_envelopes_own_json():
    shared = Envelope(
        id="",
        registration_id="reg",
        event={},
        source="webhook",
        webhook_id="w1",
        event_time="2026-11-26T10:00:00.000000Z",
        received_at="2026-11-26T10:00:01.000000Z",
        extra={"traceparent": "00-abc-def-01"},
    )
    events = [{"status": "inProgress", "when": datetime(2026, 1, 1, tzinfo=UTC)}, {"notes": "é ☃"}]
    written = batch_messages(shared, ["w1:0", "w1:1"], events)
    for index, message in enumerate(written):
        own = Envelope(**{**shared.__dict__, "id": f"w1:{index}", "sequence": index, "event": events[index]})
        assert json.loads(message) == json.loads(own.to_json())
        assert read_envelope(json.loads(message)).sequence == index


def test_a_lone_surrogate_is_written_escaped():
    envelope = Envelope(
        id="m", registration_id="r", event={"x": "\ud800"}, source="queue", event_time="t", received_at="t"
    )
    text = envelope.to_json()
    text.encode("utf-8")
    assert json.loads(text)["event"]["x"] == "\ud800"


def test_no_message_top_level_name_is_a_queue_trigger_metadata_field():
    """The Functions host copies a JSON message's top-level properties into the trigger metadata, ignoring case:
    an `id` there replaced the storage message id the function is given."""
    envelope = Envelope(
        id="w1",
        registration_id="reg",
        event={"status": "inProgress", "id": "inner ids are fine"},
        source="webhook",
        webhook_id="w1",
        event_time="2026-11-26T10:00:00.000000Z",
        received_at="2026-11-26T10:00:01.000000Z",
        extra={"Id": "x", "POPRECEIPT": "y", "sys": {}, "traceparent": "00-abc-def-01"},
        dead_letter={"messageId": "m"},
    )
    reserved = {"id", "queuetrigger", "dequeuecount", "expirationtime", "insertiontime", "nextvisibletime"}
    reserved |= {"popreceipt", "sys"}
    for text in (envelope.to_json(), batch_messages(envelope, ["w1:0"], [envelope.event])[0]):
        names = {name.lower() for name in json.loads(text)}
        assert names.isdisjoint(reserved), names & reserved
        assert read_envelope(json.loads(text)).event == envelope.event


def test_version_1_messages_with_a_top_level_id_are_still_read():
    old = {
        "schemaVersion": 1,
        "kind": "courseActivityUpdate",
        "id": "w1:3",
        "registrationId": "reg",
        "source": "webhook",
        "webhookId": "w1",
        "eventTime": "2026-11-26T10:00:00.000000Z",
        "receivedAt": "2026-11-26T10:00:01.000000Z",
        "sequence": 3,
        "event": {"status": "inProgress"},
    }
    envelope = read_envelope(old)
    assert (envelope.id, envelope.sequence, envelope.webhook_id) == ("w1:3", 3, "w1")
    assert json.loads(envelope.to_json())["eventId"] == "w1:3"


def test_an_event_time_that_is_not_a_time_is_an_unreadable_envelope():
    import pytest

    from connector.domain.envelope import MessageError

    bad = json.loads(
        Envelope(id="e", registration_id="r", event={}, source="q", event_time="t", received_at="t").to_json()
    )
    with pytest.raises(MessageError, match="eventTime"):
        read_envelope(bad)


def test_times_are_written_in_one_format_that_reads_back_even_for_the_year_1():
    from connector.domain.envelope import parse_instant, utc_iso
    from connector.domain.merge import EARLIEST

    assert utc_iso(datetime(2026, 11, 26, 10, 0, 1, 5, tzinfo=UTC)) == "2026-11-26T10:00:01.000005Z"
    assert utc_iso(EARLIEST.time) == "0001-01-01T00:00:00.000000Z"
    assert parse_instant(utc_iso(EARLIEST.time)) == EARLIEST.time
