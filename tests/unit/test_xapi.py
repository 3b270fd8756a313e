"""xAPI statements: lenient parsing of what platforms really send, and the mapping to course activity changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.domain.events import EventValidationError
from connector.domain.xapi.mapping import change_of, external_id
from connector.domain.xapi.statements import parse_statements
from tests.support.xapi import CMI5_PROGRESS, VIDEO_PROGRESS, progressed, statement

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def parse_one(body: dict):
    return parse_statements(body, batch=False)[0]


def change(body: dict) -> dict | None:
    found = change_of(parse_one(body), NOW)
    return None if found is None else found.changes


def errors(data, batch: bool = True) -> list[tuple[int | None, str]]:
    with pytest.raises(EventValidationError) as caught:
        parse_statements(data, batch=batch)
    return [(e.index, e.field) for e in caught.value.errors]


# --- lenient parsing ---


def test_an_account_without_home_page_is_accepted():  # Pluralsight
    parsed = parse_one(statement("completed", actor={"account": {"name": "E1001"}}))
    assert parsed.statement.actor.account.name == "E1001"


@pytest.mark.parametrize(("value", "expected"), [(1, True), (0, False), ("true", True), (True, True)])
def test_booleans_as_1_or_0_are_accepted(value, expected):  # edX
    parsed = parse_one(statement("attempted", result={"completion": value, "success": value}))
    assert parsed.statement.result.completion is expected


@pytest.mark.parametrize("version", ["1.0.0", "1.0.3", "1.0", "2.0.0"])
def test_statement_versions_1_0_x_and_2_0_0_are_accepted(version):
    assert parse_one(statement("launched", version=version)).statement.version == version


def test_an_mbox_without_mailto_is_accepted_and_normalised():
    parsed = parse_one(statement("launched", actor={"mbox": "Ada.Learner@Contoso.example"}))
    assert parsed.statement.actor.mbox == "mailto:ada.learner@contoso.example"


def test_a_timestamp_without_an_offset_is_taken_as_utc():
    parsed = parse_one(statement("launched", timestamp="2026-11-20T10:00:00"))
    assert parsed.statement.timestamp == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def test_an_id_is_assigned_when_absent():
    body = statement("launched")
    del body["id"]
    assert len(parse_one(body).id) == 36


# --- what cannot be understood, naming the index and the field ---


def test_an_actor_without_any_identifier_names_index_and_field():
    bad = statement("launched", actor={"name": "Nobody"})
    assert errors([statement("launched"), bad]) == [(1, "actor")]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda s: s.pop("verb"), "verb"),
        (lambda s: s["verb"].pop("id"), "verb.id"),
        (lambda s: s["object"].pop("id"), "object"),
        (lambda s: s.update(timestamp="the day before yesterday"), "timestamp"),
        (lambda s: s.update(id="not-a-uuid"), "id"),
        (lambda s: s.update(version="0.95"), "version"),
        (lambda s: s["actor"].update(mbox="not an email"), "actor.mbox"),
    ],
)
def test_what_cannot_be_understood_is_named(mutate, field):
    bad = statement("launched")
    mutate(bad)
    found = errors([statement("launched"), statement("launched"), bad])
    assert found[0][0] == 2
    assert found[0][1].startswith(field)


IRI = "https://lms.example.com/courses/"


@pytest.mark.parametrize(
    ("mutate", "field", "limit"),
    [
        (lambda s, n: s["object"].update(id=IRI + "c" * (n - len(IRI))), "object.id", 2048),
        (lambda s, n: s["verb"].update(id=IRI + "v" * (n - len(IRI))), "verb.id", 2048),
        (lambda s, n: s.update(actor={"openid": IRI + "o" * (n - len(IRI))}), "actor.openid", 2048),
        (
            lambda s, n: s.update(actor={"account": {"homePage": IRI + "h" * (n - len(IRI)), "name": "a"}}),
            "actor.account.homePage",
            2048,
        ),
        (lambda s, n: s.update(actor={"account": {"name": "n" * n}}), "actor.account.name", 400),
        (lambda s, n: s.update(actor={"mbox": "mailto:" + "m" * (n - 23) + "@contoso.example"}), "actor.mbox", 400),
        (lambda s, n: s.update(actor={"mbox_sha1sum": "f" * n}), "actor.mbox_sha1sum", 400),
    ],
)
def test_iris_and_ids_are_capped_at_intake_naming_the_field_and_the_limit(mutate, field, limit):
    """Every IRI and id a statement carries is bounded: they are matched by provider patterns and queued."""
    at_limit, over = statement("launched"), statement("launched")
    mutate(at_limit, limit)
    mutate(over, limit + 1)
    assert parse_one(at_limit)
    with pytest.raises(EventValidationError) as caught:
        parse_statements([over], batch=True)
    (error,) = caught.value.errors
    assert (error.index, error.field) == (0, field)
    assert f"at most {limit} characters" in error.rule


def test_a_non_object_statement_is_named():
    assert errors(["x"]) == [(0, "statement")]


# --- the mapping ---


@pytest.mark.parametrize("verb", ["launched", "initialized", "attempted", "progressed", "resumed"])
def test_starting_verbs_mean_in_progress_with_a_start_date(verb):
    assert change(statement(verb)) == {"status": "inProgress", "startedDateTime": "2026-11-20T10:00:00+00:00"}


@pytest.mark.parametrize(
    "verb",
    ["completed", "passed", "https://w3id.org/xapi/adl/verbs/satisfied", "https://w3id.org/xapi/adl/verbs/waived"],
)
def test_completing_verbs_mean_completed_at_100_percent(verb):
    assert change(statement(verb)) == {
        "status": "completed",
        "completionPercentage": 100,
        "completedDateTime": "2026-11-20T10:00:00+00:00",
    }


def test_result_completion_true_completes_whatever_the_verb():
    assert change(statement("experienced", result={"completion": 1}))["status"] == "completed"


@pytest.mark.parametrize(
    "verb", ["failed", "terminated", "https://w3id.org/xapi/adl/verbs/abandoned", "experienced", "commented"]
)
def test_verbs_that_say_nothing_about_progress_change_nothing(verb):
    assert change(statement(verb)) is None


def test_a_voiding_statement_changes_nothing():
    voiding = statement("voided")
    voiding["object"] = {"objectType": "StatementRef", "id": "a1b2c3d4-0000-4000-8000-000000000000"}
    assert change(voiding) is None


@pytest.mark.parametrize(("value", "percent"), [(25, 25), (50.0, 50), (0.75, 75), (1.0, 100), ("40", 40)])
def test_cmi5_progress_as_an_integer_a_float_or_a_ratio(value, percent):
    assert change(progressed(value))["completionPercentage"] == percent


def test_video_progress_is_a_ratio_on_any_verb():
    played = statement("https://w3id.org/xapi/video/verbs/paused", result={"extensions": {VIDEO_PROGRESS: 0.42}})
    assert change(played) == {"status": "inProgress", "completionPercentage": 42}


@pytest.mark.parametrize("value", [150, -1, "lots", True])
def test_an_impossible_progress_is_rejected_naming_the_extension(value):
    from connector.domain.xapi.mapping import ProgressError

    with pytest.raises(ProgressError) as caught:
        change(progressed(value))
    assert caught.value.field == f"result.extensions[{CMI5_PROGRESS}]"


def test_a_verb_iri_of_another_namespace_matches_by_its_last_segment():
    assert change(statement("https://lms.example.com/xapi/verbs/completed"))["status"] == "completed"


def test_the_registration_names_the_activity_when_present():
    parsed = parse_one(statement("launched", registration="6F1C2B5E-9A3D-4E7F-8B1A-2C3D4E5F6A7B"))
    assert external_id(parsed, "registration") == "6f1c2b5e-9a3d-4e7f-8b1a-2c3d4e5f6a7b"


def test_the_derived_id_is_stable_per_learner_and_activity_and_names_no_one():
    first = external_id(
        parse_one(statement("launched", registration="6f1c2b5e-9a3d-4e7f-8b1a-2c3d4e5f6a7b")), "derived"
    )
    second = external_id(parse_one(statement("completed")), "registration")
    other = external_id(parse_one(statement("completed", activity="https://lms.example.com/courses/2")), "derived")
    assert first == second != other
    assert first.startswith("xapi-")
    assert "ada" not in first
