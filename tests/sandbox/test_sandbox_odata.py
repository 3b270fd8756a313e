"""The OData decoding the sandbox relies on, pinned without a server."""

from __future__ import annotations

import pytest

from sandbox.odata import decode_literal, encode_literal, key_segment, parse_eq_filter, split_path
from sandbox.rules import GraphError

KEYS = ("externalcourseActivityId", "externalCourseActivityId")


def test_split_path_decodes_each_segment_and_keeps_encoded_slashes_inside():
    assert split_path("/a/b%2Fc/d%27e/") == ["a", "b/c", "d'e"]
    assert split_path("/") == []


@pytest.mark.parametrize("value", ["plain", "O'Brien", "''", "'", "a''b'", ""])
def test_literal_round_trip(value):
    assert decode_literal(encode_literal(value)) == value


def test_lone_quote_is_a_syntax_error():
    with pytest.raises(GraphError) as caught:
        decode_literal("a'b")
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        ("learningCourseActivities(externalcourseActivityId='x')", "x"),
        ("learningCourseActivities(externalCourseActivityId='x')", "x"),
        ("learningcourseactivities(EXTERNALCOURSEACTIVITYID='x')", "x"),
        ("learningCourseActivities(externalcourseActivityId='it''s')", "it's"),
        ("learningCourseActivities(externalcourseActivityId='')", ""),
        ("learningCourseActivities(externalcourseActivityId=x)", None),
        ("learningCourseActivities(id='x')", None),
        ("learningContents(externalcourseActivityId='x')", None),
        ("learningCourseActivities", None),
    ],
)
def test_key_segment(segment, expected):
    assert key_segment(segment, "learningCourseActivities", KEYS) == expected


ALLOWED = {"mail": "mail", "employeeid": "employeeId"}


def test_filter_or_and_in():
    assert parse_eq_filter("mail eq 'a' or EmployeeId eq 'b''c'", ALLOWED, "User") == [
        ("mail", ["a"]),
        ("employeeId", ["b'c"]),
    ]
    assert parse_eq_filter("mail in ('a', 'b or c', 'd''e')", ALLOWED, "User") == [("mail", ["a", "b or c", "d'e"])]


@pytest.mark.parametrize(
    "text", ["displayName eq 'x'", "mail ne 'x'", "mail eq 'x' and mail eq 'y'", "mail in ('a' 'b')"]
)
def test_filter_refuses_what_it_does_not_support(text):
    with pytest.raises(GraphError) as caught:
        parse_eq_filter(text, ALLOWED, "User")
    assert caught.value.code == "Request_UnsupportedQuery"
