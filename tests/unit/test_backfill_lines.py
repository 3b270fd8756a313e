"""Reading a backfill file: formats told apart by content, each record checked with the webhook's (or the LRS's)
wording, its own time taken out, line numbers right, constant memory (streams, arrays read element by element)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest

from connector.domain.backfill_lines import (
    FORMATS,
    Checked,
    Context,
    FileFormatError,
    detect,
    event_id,
)
from connector.domain.events import EventValidationError, validate_events_json
from devtools.examples import REGISTRATION_ID, example_1
from tests.support.xapi import ADL, progressed, statement

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CONTEXT = Context(REGISTRATION_ID, NOW)
ASSIGNMENT = "#microsoft.graph.learningAssignment"


def read(data: bytes | str) -> list[Checked]:
    raw = data.encode() if isinstance(data, str) else data
    return list(FORMATS[detect(raw)](io.BytesIO(raw), CONTEXT))


def jsonl(*records: object) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def messages(checked: Checked) -> list[tuple[str, str, str]]:
    return [(e.field, e.problem, e.rule) for e in checked.errors]


def progress(percent: int, **extra: object) -> dict:
    return {"@odata.type": ASSIGNMENT, "externalcourseActivityId": "e-1", "status": "inProgress",
            "completionPercentage": percent, **extra}  # fmt: skip


# --- telling the formats apart ---


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (jsonl(example_1()), "jsonl"),
        ("\ufeff" + jsonl({"@odata.type": ASSIGNMENT, "externalcourseActivityId": "x", "@removed": {}}), "jsonl"),
        (jsonl(statement("completed")), "xapi-jsonl"),
        ("\n  " + json.dumps([statement("completed")], indent=2), "xapi-array"),
        ("@odata.type,externalcourseActivityId,status\n", "csv"),
        ("\ufeffexternalcourseActivityId,status\n", "csv"),
    ],
)
def test_the_format_is_told_by_the_content(text, kind):
    assert detect(text.encode()) == kind


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "the file is empty"),
        ("  \n\n", "the file is empty"),
        ("learner,course,done\n", "JSON Lines of native events, CSV with a header row of property names"),
        ("@odata.type,externalcourseActivityId,Status\n", "column 'Status' of the header row is not a property"),
        ("@odata.type,status,status\n", "column 'status' appears twice"),
    ],
)
def test_a_file_of_no_known_format_is_refused_with_what_would_be_right(text, says):
    with pytest.raises(FileFormatError, match=says):
        detect(text.encode())


# --- native events, JSON Lines ---


def test_an_accepted_event_is_the_webhooks_validated_event_and_blank_lines_are_skipped():
    (one, two) = read(jsonl(example_1(), "", "   ", progress(40)))
    assert (one.line, two.line) == (1, 4)
    assert one.event == validate_events_json(json.dumps(example_1()), REGISTRATION_ID, batch=False)[0]
    assert (one.accepted, one.event_time, one.number) == (True, None, 1)


def test_a_rejected_event_has_the_webhooks_errors_for_the_same_body():
    bad = {**progress(140), "status": "finished", "learningProviderId": "someone-else"}
    (checked,) = read(jsonl(bad))
    with pytest.raises(EventValidationError) as webhook:
        validate_events_json(json.dumps(bad), REGISTRATION_ID, batch=False)
    assert checked.errors == tuple(webhook.value.errors)
    assert [e.message for e in checked.errors] == [
        "Input field status is invalid",
        "Input field completionPercentage is invalid",
        "Input field learningProviderId is invalid",
    ]


def test_a_removal_is_a_native_event_and_a_line_that_is_not_json_is_rejected_by_line():
    removal = {"@odata.type": ASSIGNMENT, "externalcourseActivityId": "e-1", "@removed": {"reason": "deleted"}}
    first, second, third = read(jsonl(removal, '{"@odata.type": ', "[1, 2]"))
    assert first.accepted
    assert first.event["@removed"] == {"reason": "deleted"}
    assert (second.line, second.errors[0].message) == (2, "Input field body is invalid")
    assert second.errors[0].rule.startswith("must be valid JSON")
    assert (third.line, third.errors[0].field) == (3, "body")


def test_the_own_time_is_taken_out_of_the_event_and_orders_it():
    (checked,) = read(jsonl(progress(40, eventTime="2025-03-01T08:30:00+01:00")))
    assert checked.event_time == datetime(2025, 3, 1, 7, 30, tzinfo=UTC)
    assert "eventTime" not in checked.event


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("2025-03-01T08:30:00", "is invalid"),  # no offset: which instant?
        ("yesterday", "is invalid"),
        ("2027-01-01T00:00:00Z", "is invalid"),  # in the future: it would override every live callback until then
        ("9999-12-31T23:00:00-05:00", "is invalid"),
        (1735689600, "is invalid"),
        ("", "shouldn't be empty"),
        (None, "shouldn't be empty"),
    ],
)
def test_a_bad_own_time_is_named_with_its_rule_beside_the_events_own_errors(value, problem):
    (checked,) = read(jsonl({**progress(40, eventTime=value), "status": "finished"}))
    assert [(e.field, e.problem) for e in checked.errors] == [("eventTime", problem), ("status", "is invalid")]
    assert "ISO 8601 date-time with an offset, not in the future" in checked.errors[0].rule


def test_event_ids_come_from_the_content_hash_and_the_line():
    assert event_id("ab" * 32, 7) == f"backfill-{'ab' * 16}-7"
    assert event_id("ab" * 32, 7) != event_id("ab" * 32, 8) != event_id("cd" * 32, 8)


def test_a_line_that_is_not_utf8_is_rejected_and_the_next_is_read():
    data = b'{"@odata.type": "\xff"}\n' + json.dumps(progress(10)).encode() + b"\n"
    bad, good = read(data)
    assert (bad.line, bad.accepted, good.line, good.accepted) == (1, False, 2, True)


# --- CSV ---

CSV_HEADER = (
    "@odata.type,externalcourseActivityId,status,completionPercentage,dueDateTime,dueDateTimeZone,notes,eventTime"
)


def test_a_csv_row_is_the_event_its_cells_say():
    text = (
        f"{CSV_HEADER}\n"
        f'{ASSIGNMENT},e-1,inProgress,20,2022-09-22T16:05:00,Pacific Standard Time,"due soon, ""really""",'
        "2025-01-02T03:04:05Z\n"
        f"{ASSIGNMENT},e-2,completed,,2022-09-22T16:05:00+02:00,,,\n"
    )
    first, second = read(text)
    assert first.event == {
        "@odata.type": ASSIGNMENT,
        "externalcourseActivityId": "e-1",
        "status": "inProgress",
        "completionPercentage": 20,
        "dueDateTime": {"dateTime": "2022-09-22T16:05:00", "timeZone": "Pacific Standard Time"},
        "notes": 'due soon, "really"',
    }
    assert first.event_time == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert set(second.event) == {"@odata.type", "externalcourseActivityId", "status", "dueDateTime"}  # empty: absent
    assert second.event_time is None


def test_csv_rows_are_numbered_by_the_line_they_start_on():
    text = f'{CSV_HEADER}\n{ASSIGNMENT},e-1,inProgress,1,,,"two\nlines",\n\n{ASSIGNMENT},e-2,bogus,2,,,,\n'
    first, second = read(text)
    assert first.line == 2
    assert first.event["notes"] == "two\nlines"
    assert (second.line, messages(second)[0][:2]) == (5, ("status", "is invalid"))


def test_a_removal_in_csv_says_deleted():
    (checked,) = read(f"@odata.type,externalcourseActivityId,@removed\n{ASSIGNMENT},e-1,deleted\n")
    assert checked.event["@removed"] == {"reason": "deleted"}


_ROW = f"{ASSIGNMENT},e-1,inProgress"
_WALL_TIME_RULE = "must be an ISO 8601 date-time with an offset, or a wall time with a dueDateTimeZone column"


@pytest.mark.parametrize(
    ("row", "error"),
    [
        (f"{_ROW},20.5,,,,", ("completionPercentage", "is invalid", "must be an integer from 0 to 100")),
        (f"{_ROW},1,,UTC,,", ("dueDateTimeZone", "is invalid", "goes with a dueDateTime column: together they make "
                              "Graph's dateTimeTimeZone")),
        (f"{_ROW},1,2022-09-22T16:05:00,,,", ("dueDateTime", "is invalid", _WALL_TIME_RULE)),
        (f"{_ROW},1,2022-09-22T16:05:00,Mars/Olympus,,", ("dueDateTimeZone", "is invalid", None)),
        (f"{_ROW},1,,,,,extra", ("row", "is invalid", "a row has at most as many cells as the header row has columns "
                                 "(8)")),
        (f"{ASSIGNMENT},,inProgress,1,,,,", ("externalcourseActivityId", "is required", None)),
    ],
)  # fmt: skip
def test_a_bad_csv_row_is_rejected_naming_the_column(row, error):
    (checked,) = read(f"{CSV_HEADER}\n{row}\n")
    field, problem, rule = error
    assert (checked.line, *messages(checked)[0][:2]) == (2, field, problem)
    if rule:
        assert messages(checked)[0][2] == rule


def test_a_csv_row_that_is_not_utf8_is_rejected():
    data = f"{CSV_HEADER}\n".encode() + ASSIGNMENT.encode() + b",e-\xff1,inProgress,1,,,,\n"
    (checked,) = read(data)
    assert messages(checked) == [("row", "is invalid", "must be UTF-8 text")]


# --- xAPI statements ---


def test_statements_one_per_line_are_parsed_as_the_lrs_parses_them():
    text = jsonl(progressed(40), statement("experienced"), {**statement("completed"), "verb": {}}, "not json")
    started, neutral, bad, broken = read(text)
    assert started.change.changes == {
        "status": "inProgress",
        "completionPercentage": 40,
        "startedDateTime": "2026-11-20T10:00:00+00:00",
    }
    assert started.event_time == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert (neutral.accepted, neutral.change, neutral.changes_something) == (True, None, False)
    assert messages(bad)[0][:2] == ("verb.id", "is required")
    assert bad.errors[0].index is None  # one record, not statement 0 of a batch
    assert (broken.line, broken.errors[0].field) == (4, "body")


def test_a_statement_from_history_needs_its_time():
    stored_only = {**statement("completed"), "stored": "2026-11-01T00:00:00Z"}
    del stored_only["timestamp"]
    neither = statement("completed")
    del neither["timestamp"]
    first, second, future = read(jsonl(stored_only, neither, statement("completed", timestamp="2030-01-01T00:00:00Z")))
    assert first.event_time == datetime(2026, 11, 1, tzinfo=UTC)
    assert first.change.changes["completedDateTime"] == "2026-11-01T00:00:00+00:00"
    assert messages(second)[0][:2] == ("timestamp", "is required")
    assert messages(future)[0] == ("timestamp", "is invalid", "must not be in the future")


def test_a_statement_array_is_read_element_by_element_across_chunks_with_its_lines():
    statements = [progressed(n % 100, activity=f"https://lms.example.com/courses/c-{n}") for n in range(800)]
    statements[450] = {"verb": {"id": ADL + "completed"}}
    text = "[\n" + ",\n".join(json.dumps(s) for s in statements) + "\n]\n"  # statement n on line n + 1
    assert len(text) > 3 * 64 * 1024  # several reads: elements cut by a read's end are read whole
    checked = read(text)
    assert [(c.item, c.line) for c in checked] == [(n, n + 1) for n in range(1, 801)]
    assert [c.number for c in checked if not c.accepted] == [451]
    assert messages(checked[450])[0][:2] == ("actor", "is required")
    assert checked[799].change.changes["completionPercentage"] == 99


def test_an_array_that_breaks_off_is_rejected_where_it_breaks_and_nothing_after_is_read():
    text = "[\n" + json.dumps(progressed(10)) + ",\n" + '{"actor": tru}' + ",\n" + json.dumps(progressed(20)) + "\n]"
    first, broken = read(text)
    assert first.accepted
    assert (broken.line, broken.item, broken.errors[0].field) == (3, 2, "body")
    assert broken.errors[0].rule.endswith("nothing after this point was read")


@pytest.mark.parametrize(
    ("text", "items"),
    [("[]", 0), ("[ ]", 0), ('[{"a": 1} {"b": 2}]', 2), ("[1, 2]", 2)],
)
def test_odd_arrays_are_rejected_by_element(text, items):
    checked = read(text)
    assert len(checked) == items
    assert not any(c.accepted for c in checked)
