"""Backfill files of the platforms' formats: Caliper envelopes (JSON Lines or an array, each event a record) and SCORM
Cloud registrations (JSON Lines), told apart by content and mapped as their endpoints map them."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest

from connector.domain.backfill_lines import FORMATS, Checked, Context, detect
from connector.domain.formats.caliper import map_envelope, parse_envelope
from devtools.examples import REGISTRATION_ID
from tests.support.formats import V1P2, attempt, caliper_event, envelope, registration

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CONTEXT = Context(REGISTRATION_ID, NOW)
STARTED = caliper_event("AssignableEvent", "Started", "2025-03-05T09:02:15Z", 1)
ATTEMPT = attempt("2025-03-05T09:02:15Z", "2025-03-05T09:40:58Z")
COMPLETED = caliper_event("AssignableEvent", "Completed", "2025-03-05T09:40:58Z", 2, generated=ATTEMPT)
LOGGED_OUT = caliper_event("SessionEvent", "LoggedOut", "2025-03-05T09:41:00Z", 3, object="https://learn.example")


def read(text: str, context: Context = CONTEXT) -> tuple[str, list[Checked]]:
    raw = text.encode()
    kind = detect(raw)
    return kind, list(FORMATS[kind](io.BytesIO(raw), context))


def lines(*records: object) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def test_caliper_envelopes_one_per_line_are_read_event_by_event_numbered_across_the_file():
    kind, records = read(lines(envelope(STARTED, LOGGED_OUT), envelope(COMPLETED)))
    assert kind == "caliper-jsonl"
    assert [(r.line, r.item, r.accepted, r.changes_something) for r in records] == [
        (1, 1, True, True),
        (1, 2, True, False),  # a session event: accepted, nothing to enqueue
        (2, 3, True, True),
    ]
    expected = map_envelope(parse_envelope(json.dumps(envelope(COMPLETED))))[0]
    assert records[2].mapped == expected  # as the Caliper endpoint maps it: its own id and time
    assert records[2].event_time == expected.event_time
    assert records[2].where("history.jsonl") == "history.jsonl:2 (event 3)"


def test_an_array_of_caliper_envelopes_is_told_from_an_array_of_statements():
    text = json.dumps([envelope(STARTED), envelope(COMPLETED, LOGGED_OUT)], indent=2)
    kind, records = read(text)
    assert kind == "caliper-array"
    assert [(r.item, r.changes_something) for r in records] == [(1, True), (2, True), (3, False)]
    starts = [number for number, line in enumerate(text.splitlines(), start=1) if line == "  {"]
    assert [r.line for r in records] == [starts[0], starts[1], starts[1]]  # where each envelope starts


def test_the_providers_completion_and_content_pattern_apply():
    submitted = caliper_event("AssignableEvent", "Submitted", "2025-03-05T09:40:00Z", 4)
    last_segment = lambda iri: iri.rsplit("/", 1)[1]  # noqa: E731
    context = Context(REGISTRATION_ID, NOW, caliper_completion="Submitted", content_id=last_segment)
    (record,) = read(lines(envelope(submitted)), context)[1]
    assert (record.mapped.changes["status"], record.mapped.content) == ("completed", "sec-101")


def test_rejected_caliper_records_name_the_field_and_rule():
    anonymous = {**STARTED, "actor": {"type": "Person"}}
    future = caliper_event("AssignableEvent", "Started", "2027-01-01T00:00:00Z", 5)
    _, records = read(lines({"sensor": "x", "dataVersion": V1P2}, envelope(anonymous), envelope(future)))
    assert [[(e.field, e.problem) for e in r.errors] for r in records] == [
        [("sendTime", "is required"), ("data", "is required")],
        [("actor.id", "is invalid")],
        [("eventTime", "is invalid")],
    ]
    assert records[1].report("h.jsonl") == {
        "file": "h.jsonl",
        "line": 2,
        "event": 2,
        "errors": [records[1].errors[0].to_detail()],
    }


def test_scorm_registrations_one_per_line():
    stale = registration(updated="2025-03-06T13:48:02.000Z", registrationCompletion="INCOMPLETE",
                         registrationCompletionAmount=0.5, completedDate=None)  # fmt: skip
    kind, records = read(lines(stale, registration(), registration(updated=None), registration(id=None)))
    assert kind == "scorm-jsonl"
    assert [r.mapped.changes["status"] for r in records[:2]] == ["inProgress", "completed"]
    assert records[0].event_time < records[1].event_time  # ordered by `updated`, as live postbacks are
    assert [(e.field, e.problem) for e in records[2].errors] == [("updated", "is required")]
    assert [(e.field, e.problem) for e in records[3].errors] == [("id", "is required")]


@pytest.mark.parametrize(
    ("first", "kind"),
    [
        ({"sensor": "https://lms.example", "data": []}, "caliper-jsonl"),
        ({"registrationSuccess": "PASSED", "id": "r"}, "scorm-jsonl"),
        ({"actor": {"mbox": "mailto:a@example.com"}}, "xapi-jsonl"),
        ({"@odata.type": "x", "sensor": "y"}, "jsonl"),
    ],
)
def test_json_lines_are_told_apart_by_their_first_record(first, kind):
    assert detect(lines(first).encode()) == kind
