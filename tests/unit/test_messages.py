"""The queue message: what the webhook writes for a batch is what an envelope writes for each event."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from connector.messages import Envelope, batch_messages, read_envelope


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
