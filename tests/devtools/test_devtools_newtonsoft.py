"""devtools.runner.newtonsoft against what Json.NET 13 does on .NET 8 (from its source: DateTimeParser, DateTimeUtils,
JavaScriptUtils, JsonConvert; .NET cannot run here), and the runner's host conversions built on it."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from devtools.runner import host_queue_texts, message_properties, newtonsoft, queue_trigger_metadata


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("2024-05-08T10:00:31.000000Z", "2024-05-08T10:00:31Z"),  # trailing zeros dropped, fraction and all
        ("2024-05-08T10:00:31.1200000Z", "2024-05-08T10:00:31.12Z"),
        ("2024-05-08T10:00:31.1234567z", "2024-05-08T10:00:31.1234567Z"),
        ("2024-05-08T10:00:31.123456789", "2024-05-08T10:00:31.1234567"),  # 7 digits kept, no zone: unspecified
        ("2024-05-08T10:00:31", "2024-05-08T10:00:31"),
        ("2024-05-08T10:00:31+00:00", "2024-05-08T10:00:31+00:00"),  # an offset: to the host's local time (UTC)
        ("2024-05-08T12:30:31+02:30", "2024-05-08T10:00:31+00:00"),
        ("2024-05-08T08:00:31-0200", "2024-05-08T10:00:31+00:00"),
        ("2024-05-08T12:00:31+02", "2024-05-08T10:00:31+00:00"),
        ("2024-05-08T10:00:31:15", "2024-05-08T10:00:31"),  # the parser reads ":15" as minutes of no zone
        ("2024-05-08T24:00:00Z", "2024-05-09T00:00:00Z"),
        ("0001-01-01T00:30:00+01:00", "0001-01-01T00:00:00+00:00"),  # clamped to DateTime.MinValue
        ("9999-12-31T23:30:00-01:00", "9999-12-31T23:59:59.9999999+00:00"),  # clamped to DateTime.MaxValue
    ],
)
def test_date_strings_are_read_as_dates_and_written_back(text, written):
    date = newtonsoft.parse_date(text)
    assert date is not None
    assert date.iso() == written


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-08t10:00:31Z",
        "2024-05-08 10:00:31Z",
        "2024-05-08T10:00:31.Z",
        "2024-05-08T10:00:31.12345678Z",
        "2024-05-08T10:00Z",
        "2024-02-30T10:00:31Z",
        "0000-01-01T00:00:00Z",
        "2024-05-08T24:00:01Z",
        "2024-05-08T24:00:00.1Z",
        "2024-05-08T10:60:31Z",
        "2024-05-08T10:00:31Z ",
        "2024-05-08T10:00:31+2:00",
        "2024-05-08T10:00:31.1234567+00:00 and more text past 40",
        "٢٠٢٤-05-08T10:00:31Z",
        "not a date at all, long enough",
    ],
)
def test_other_strings_stay_strings(text):
    assert newtonsoft.parse_date(text) is None


def test_hour_24_past_the_last_day_fails_as_in_dotnet():
    with pytest.raises(ValueError, match="MaxValue"):
        newtonsoft.parse_date("9999-12-31T24:00:00Z")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (-2.5, "-2.5"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e14, "100000000000000"),
        (1e15, "1E+15"),
        (1234567890123456.0, "1234567890123456"),
        (1.2345678901234567e19, "1.2345678901234567E+19"),
        (0.0001, "0.0001"),
        (0.00001, "1E-05"),
        (1.5e-300, "1.5E-300"),
        (0.0, "0"),
        (-0.0, "-0"),
        (float("nan"), "NaN"),
        (float("-inf"), "-Infinity"),
    ],
)
def test_doubles_print_as_dotnet_prints_them(value, text):
    assert newtonsoft.dotnet_double(value) == text


def test_written_json_is_indented_with_json_net_s_escapes_and_numbers():
    token = newtonsoft.parse(
        '{"s": "a\\u0085b\\u2028c\\u2029d\\u0001\\t\\"\\\\/é😀", "n": [1, 1.0, 1e2, -0.0, 12345678901234567890, NaN],'
        ' "e": {}, "a": [], "b": [true, false, null], "d": "2024-05-08T10:00:31.500Z"}'
    )
    assert newtonsoft.write(token) == (
        "{\n"
        '  "s": "a\\u0085b\\u2028c\\u2029d\\u0001\\t\\"\\\\/é😀",\n'
        '  "n": [\n'
        "    1,\n"
        "    1.0,\n"
        "    100.0,\n"
        "    -0.0,\n"
        "    12345678901234567890,\n"
        '    "NaN"\n'
        "  ],\n"
        '  "e": {},\n'
        '  "a": [],\n'
        '  "b": [\n'
        "    true,\n"
        "    false,\n"
        "    null\n"
        "  ],\n"
        '  "d": "2024-05-08T10:00:31.5Z"\n'
        "}"
    )
    assert newtonsoft.write(token, indented=False).startswith('{"s":"a\\u0085b')
    assert newtonsoft.write(token, indented=False).endswith('"b":[true,false,null],"d":"2024-05-08T10:00:31.5Z"}')


def test_property_names_are_never_dates():
    assert newtonsoft.write(newtonsoft.parse('{"2024-05-08T10:00:31.000Z": 1}'), indented=False) == (
        '{"2024-05-08T10:00:31.000Z":1}'
    )


def test_values_print_in_the_invariant_culture():
    assert [newtonsoft.to_string(v) for v in (True, False, 7, 1.0, 2.5, "text", None)] == [
        "True",
        "False",
        "7",
        "1",
        "2.5",
        "text",
        None,
    ]
    assert newtonsoft.to_string(newtonsoft.parse_date("2024-01-02T03:04:05.9Z")) == "01/02/2024 03:04:05"
    assert newtonsoft.to_string({"a": [1]}) == '{\n  "a": [\n    1\n  ]\n}'


@pytest.mark.parametrize(
    ("text", "looks"),
    [
        ("{}", True),
        (" \n[1, 2]\t", True),
        ("{not json}", True),
        ("x{}", False),
        ("{", False),
        ("", False),
        ("7", False),
    ],
)
def test_what_the_host_takes_for_json(text, looks):
    assert newtonsoft.looks_like_json(text) is looks


def test_the_reader_stops_past_64_levels():
    assert newtonsoft.parse("[" * 64 + "]" * 64) == json.loads("[" * 64 + "]" * 64)
    with pytest.raises(ValueError, match="MaxDepth of 64"):
        newtonsoft.parse("[" * 65 + "]" * 65)
    with pytest.raises(ValueError, match="MaxDepth of 64"):
        newtonsoft.parse("[" * 5000 + "]" * 5000)


# ------------------------------------------------------------------------------- the runner's host conversions
def test_host_queue_texts_rewrite_json_and_leave_other_text():
    assert host_queue_texts("plain {text}") == ["plain {text}"]
    assert host_queue_texts('{"at":"2024-05-08T10:00:31.000000Z"}') == ['{\n  "at": "2024-05-08T10:00:31Z"\n}']
    assert host_queue_texts("[]") == []
    assert host_queue_texts('[[1], "a", false]') == ["[\n  1\n]", "a", "False"]
    with pytest.raises(ValueError, match="Extra data"):
        host_queue_texts("[1, 2] [3]")


def test_message_properties_are_the_top_level_scalars_and_objects_of_a_json_object():
    text = '{"id": 5, "ok": true, "n": 2.0, "o": {"x": null}, "l": [1], "z": null, "at": "2024-01-02T03:04:05Z"}'
    assert message_properties(text) == {
        "id": "5",
        "ok": "True",
        "n": "2",
        "o": {"x": None},
        "at": "01/02/2024 03:04:05",
    }
    assert message_properties('[{"id": 1}]') == {}
    assert message_properties('{"id": 1} trailing') == {}
    assert message_properties('{"id": "x"') == {}


def test_trigger_metadata_keeps_the_host_s_names_and_types():
    message = SimpleNamespace(
        id="storage-id",
        dequeue_count=3,
        expires_on=None,
        inserted_on=None,
        next_visible_on=None,
        pop_receipt="receipt",
    )
    text = '{"ID": "event-id", "popreceipt": {"a": 1}, "extra": "x"}'
    metadata = queue_trigger_metadata(message, text, message_properties(text))
    assert {name: (datum.type, datum.value) for name, datum in metadata.items() if "Time" not in name} == {
        "QueueTrigger": ("string", text),
        "DequeueCount": ("json", "3"),
        "Id": ("string", "event-id"),
        "PopReceipt": ("json", '{"a":1}'),
        "extra": ("string", "x"),
    }
    assert metadata["ExpirationTime"].value == '"9999-12-31T23:59:59.9999999+00:00"'
    assert metadata["InsertionTime"].type == "json"
