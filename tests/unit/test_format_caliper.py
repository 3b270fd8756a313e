"""IMS Caliper envelopes: lenient parsing of what LMSs send, errors naming the field, the mapping per the notes."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.domain.events import ASSIGNMENT, SELF_INITIATED
from connector.domain.formats.caliper import (
    V1P1,
    V1P2,
    CaliperError,
    endpoint_configuration,
    map_envelope,
    parse_envelope,
)
from connector.domain.formats.mapped import MappedEvent, Skipped, Unmappable
from tests.support.formats import (
    CANVAS_SUBMISSION,
    COURSE_IRI,
    LEARNER_EMAIL,
    LEARNER_IRI,
    attempt,
    caliper_event,
    course,
    envelope,
    fold_shuffled,
    json_values,
    person,
    units_completed,
)


def mapped(body, **options) -> list:
    return map_envelope(parse_envelope(json.dumps(body)), **options)


def one(body, **options):
    [result] = mapped(body, **options)
    return result


def fields(body) -> list[tuple[str, str]]:
    with pytest.raises(CaliperError) as caught:
        parse_envelope(body if isinstance(body, str | bytes) else json.dumps(body))
    assert caught.value.status == 400
    return [(e.field, e.problem) for e in caught.value.errors]


COMPLETED_B = caliper_event(
    "AssignableEvent",
    "Completed",
    "2025-03-05T09:40:58.000Z",
    10,
    profile="AssignableProfile",
    generated=attempt("2025-03-05T09:02:15.000Z", "2025-03-05T09:40:58.000Z", count=2),
)
GRADED_C = {
    "@context": V1P2,
    "id": "urn:uuid:9e4d0b62-3a7c-4f18-b2d5-61c0e8a4f3b9",
    "type": "GradeEvent",
    "profile": "GradingProfile",
    "action": "Graded",
    "actor": {"id": "https://learn.fabrikam.example/autograder", "type": "SoftwareApplication"},
    "object": {
        "id": "https://learn.fabrikam.example/attempts/a-77102",
        "type": "Attempt",
        "count": 2,
        "assignee": LEARNER_IRI,
        "assignable": COURSE_IRI,
    },
    "generated": {"id": "https://learn.fabrikam.example/attempts/a-77102/score", "type": "Score", "scoreGiven": 18.0},
    "eventTime": "2025-03-05T09:41:30.000Z",
}


# --- The notes' examples ---


def test_a_canvas_submission_names_the_assignment_and_the_learners_login():
    submitted = one(CANVAS_SUBMISSION, completion="Submitted")
    assert submitted.changes == {
        "status": "completed",
        "completionPercentage": 100,
        "completedDateTime": "2025-03-04T15:20:10.987000+00:00",
    }
    assert (submitted.learner, submitted.learner_kind) == ("avery.lee@contoso.edu", "email")
    assert submitted.content == "urn:instructure:canvas:assignment:217"  # Canvas's local id: stable across shards
    assert submitted.event_id == "5b0c3a1e-7d2f-4c1b-9a55-0e8f2d6c4b71"
    assert submitted.event_time == datetime(2025, 3, 4, 15, 20, 10, 987000, tzinfo=UTC)


def test_a_submission_is_progress_only_under_the_default_completion_policy():
    started = "2025-03-04T15:20:10.987000+00:00"
    assert one(CANVAS_SUBMISSION).changes == {"status": "inProgress", "startedDateTime": started}


def test_assignable_completed_takes_the_attempts_times_and_the_resources_dates():
    result = one(envelope(COMPLETED_B))
    assert result.changes == {
        "status": "completed",
        "completionPercentage": 100,
        "completedDateTime": "2025-03-05T09:40:58+00:00",
        "startedDateTime": "2025-03-05T09:02:15+00:00",
        "assignedDateTime": "2025-03-01T00:00:00+00:00",
        "dueDateTime": {"dateTime": "2025-03-31T23:59:59.0000000", "timeZone": "UTC"},
    }
    assert (result.learner, result.learner_kind, result.content) == (LEARNER_EMAIL, "email", COURSE_IRI)
    assert result.odata_type is None
    assert "assignedDateTime" not in result.changes_for(SELF_INITIATED)
    assert result.changes_for(ASSIGNMENT)["dueDateTime"]["timeZone"] == "UTC"


def test_a_grade_belongs_to_the_assignee_not_to_the_grader():
    graded = one(envelope(GRADED_C), completion="Graded")
    completed_b = one(envelope(COMPLETED_B))
    assert graded.external_id == completed_b.external_id  # the same learner's activity, named by IRI
    assert graded.changes["completedDateTime"] == "2025-03-05T09:41:30+00:00"
    assert graded.learner is None  # the bare IRI says no email: it updates the activity the Completed event made


def test_a_grade_is_skipped_under_the_completed_policy():
    assert isinstance(one(envelope(GRADED_C)), Skipped)


def test_the_policy_table():
    submitted = caliper_event("AssessmentEvent", "Submitted", "2025-03-05T09:40:00.000Z", 3)

    def status(event, policy):
        result = one(envelope(event), completion=policy)
        return "skipped" if isinstance(result, Skipped) else result.changes["status"]

    events = (submitted, COMPLETED_B, GRADED_C)
    statuses = {policy: [status(e, policy) for e in events] for policy in ("Completed", "Submitted", "Graded")}
    assert statuses == {
        "Completed": ["inProgress", "completed", "skipped"],
        "Submitted": ["completed", "completed", "completed"],
        "Graded": ["inProgress", "inProgress", "completed"],
    }


# --- The spec's event shapes ---


def test_units_completed_gives_the_percentage_and_completes_at_the_maximum():
    tool = {"id": COURSE_IRI, "type": "SoftwareApplication"}
    used = caliper_event(
        "ToolUseEvent", "Used", "2025-03-05T09:30:00.000Z", 4, object=tool, generated=units_completed(12.0, 25.0)
    )
    assert one(envelope(used)).changes == {
        "status": "inProgress",
        "startedDateTime": "2025-03-05T09:00:00+00:00",
        "completionPercentage": 48,
    }
    used["generated"] = units_completed(25.0, 25.0)
    assert one(envelope(used)).changes["status"] == "completed"


def test_tool_use_without_units_completed_carries_no_progress():
    used = caliper_event("ToolUseEvent", "Used", "2025-03-05T09:30:00.000Z", 4)
    assert one(envelope(used)) == Skipped("a ToolUseEvent without a UnitsCompleted measure carries no progress")


def test_media_position_is_current_time_over_duration():
    paused = caliper_event(
        "MediaEvent",
        "Paused",
        "2025-03-05T09:15:00.000Z",
        5,
        object={"id": COURSE_IRI, "type": "VideoObject", "mediaType": "video/ogg", "duration": "PT20M20S"},
        target={"id": f"{COURSE_IRI}?t=321", "type": "MediaLocation", "currentTime": "PT05M21S"},
    )
    assert one(envelope(paused)).changes["completionPercentage"] == 26  # 321 s of 1220 s


@pytest.mark.parametrize(("kind", "action"), [("SessionEvent", "LoggedIn"), ("AssignableEvent", "Activated")])
def test_events_without_learner_progress_are_skipped(kind, action):
    result = one(envelope(caliper_event(kind, action, "2025-03-05T09:00:00.000Z", 6)))
    assert isinstance(result, Skipped)
    assert action in result.reason


def test_a_view_of_a_page_that_is_no_content_is_skipped_but_a_quiz_on_it_is_dead_lettered():
    def only_courses(iri: str) -> str | None:
        return iri.rsplit("/", 1)[-1] if "/courses/" in iri else None

    page = {"id": "https://learn.fabrikam.example/pages/welcome", "type": "WebPage"}
    viewed = caliper_event("ViewEvent", "Viewed", "2025-03-05T09:00:00.000Z", 7, object=page)
    started = caliper_event("AssessmentEvent", "Started", "2025-03-05T09:00:00.000Z", 8, object=page)
    assert isinstance(one(envelope(viewed), content_id=only_courses), Skipped)
    unmappable = one(envelope(started), content_id=only_courses)
    assert isinstance(unmappable, Unmappable)
    assert unmappable.field == "object.id"
    assert one(envelope(COMPLETED_B), content_id=only_courses).content == "sec-101"


def test_an_event_without_a_learner_iri_is_unmappable():
    graded = copy.deepcopy(GRADED_C)
    del graded["object"]["assignee"]
    assert one(envelope(graded), completion="Graded") == Unmappable(
        "object.assignee.id", "the event names no learner (object.assignee has no IRI)"
    )


# --- Who the learner is ---


def test_an_actor_given_by_iri_is_resolved_through_the_envelopes_describes():
    started = caliper_event("AssignableEvent", "Started", "2025-03-05T09:02:15.000Z", 9, actor=LEARNER_IRI)
    assert one(envelope(started)).learner is None
    both = mapped(envelope(person(), started))
    assert [(r.learner, r.learner_kind) for r in both] == [(LEARNER_EMAIL, "email")]


def test_blackboard_bare_uuids_and_external_id():
    started = caliper_event(
        "AssignableEvent",
        "Started",
        "2021-01-05T14:51:20.000Z",
        11,
        id="6F0C2B7A-3E1D-4C55-9B1A-2D7E8F9A0B1C",
        actor={
            "id": "https://caliper-mapping.cloudbb.blackboard.com/v1/sites/5a1e/users/47fe55cef304",
            "type": "Person",
            "extensions": {"bb:user.id": "_12345_1", "bb:user.externalId": "E-1001"},
        },
    )
    result = one(envelope(started, version=V1P1, sensor="54b54b42-dd02-42f8-88ed-07bd719bfb7c"))
    assert (result.learner, result.learner_kind) == ("E-1001", "employeeId")
    assert result.event_id == "6f0c2b7a-3e1d-4c55-9b1a-2d7e8f9a0b1c"  # the same id as urn:uuid:6f0c...


def test_canvas_grade_names_the_assignee_by_sis_id():
    graded = copy.deepcopy(GRADED_C)
    graded["object"]["assignee"] = {
        "id": "urn:instructure:canvas:user:21070000000000048",
        "type": "Person",
        "extensions": {"com.instructure.canvas": {"sis_id": "ABC.123"}},
    }
    result = one(envelope(graded, version=V1P1), completion="Graded")
    assert (result.learner, result.learner_kind) == ("ABC.123", "employeeId")
    graded["object"]["assignee"]["id"] = "urn:instructure:canvas:user:48"
    assert one(envelope(graded, version=V1P1), completion="Graded").external_id == result.external_id


def test_the_external_id_names_no_one_and_ignores_the_sensor():
    result = one(envelope(COMPLETED_B))
    assert LEARNER_EMAIL not in result.external_id
    assert "u-3391" not in result.external_id
    assert one(envelope(COMPLETED_B, sensor="https://learn.fabrikam.example/sensors/mobile")).external_id == (
        result.external_id
    )


# --- A session, first touch to completion, in any order ---


def test_a_session_in_shuffled_order_ends_completed_with_the_right_dates():
    session = envelope(
        caliper_event("NavigationEvent", "NavigatedTo", "2025-03-05T08:59:30.000Z", 20),
        caliper_event("SessionEvent", "LoggedIn", "2025-03-05T08:59:00.000Z", 21),
        caliper_event(
            "AssignableEvent", "Started", "2025-03-05T09:02:15.000Z", 22, generated=attempt("2025-03-05T09:02:15.000Z")
        ),
        caliper_event("ViewEvent", "Viewed", "2025-03-05T09:10:00.000Z", 23),
        caliper_event("ToolUseEvent", "Used", "2025-03-05T09:30:00.000Z", 24, generated=units_completed(20, 25)),
        caliper_event("AssignableEvent", "Submitted", "2025-03-05T09:40:00.000Z", 25),
        COMPLETED_B,
        GRADED_C,
    )
    results = mapped(session)
    changes = [r for r in results if isinstance(r, MappedEvent)]
    assert [type(r).__name__ for r in results].count("Skipped") == 2  # the login, and the grade (policy Completed)
    assert len({r.external_id for r in changes}) == 1
    for values in fold_shuffled(changes):
        assert values == {
            "status": "completed",
            "completionPercentage": 100,
            "startedDateTime": "2025-03-05T08:59:30+00:00",
            "completedDateTime": "2025-03-05T09:40:58+00:00",
            "assignedDateTime": "2025-03-01T00:00:00+00:00",
            "dueDateTime": {"dateTime": "2025-03-31T23:59:59.0000000", "timeZone": "UTC"},
        }


# --- Envelope validation ---


def test_malformed_envelopes_name_the_field():
    assert fields("not json") == [("body", "is invalid")]
    assert fields([1, 2]) == [("body", "is invalid")]
    body = envelope(COMPLETED_B)
    del body["sensor"]
    assert fields(body) == [("sensor", "is required")]
    assert fields({**envelope(COMPLETED_B), "data": []}) == [("data", "is invalid")]
    assert fields({**envelope(COMPLETED_B), "sendTime": "yesterday"}) == [("sendTime", "is invalid")]


def test_a_malformed_event_names_its_position_and_field():
    bad_time = {**COMPLETED_B, "eventTime": "2025-13-45T99:00:00Z"}
    no_action = {k: v for k, v in COMPLETED_B.items() if k != "action"}
    no_action["eventTime"] = "2025-03-05T09:40:58.000Z"
    assert fields(envelope(COMPLETED_B, bad_time, 42, no_action)) == [
        ("data[1].eventTime", "is invalid"),
        ("data[2]", "is invalid"),
        ("data[3].action", "is required"),
    ]
    video = {"id": "x", "duration": "long"}
    bad_duration = caliper_event("MediaEvent", "Paused", "2025-03-05T09:15:00.000Z", 5, object=video)
    assert fields(envelope(bad_duration)) == [("data[0].object.duration", "is invalid")]


def test_an_unsupported_data_version_is_422():
    with pytest.raises(CaliperError) as caught:
        parse_envelope(json.dumps(envelope(COMPLETED_B, version="http://purl.imsglobal.org/ctx/caliper/v1p0")))
    assert caught.value.status == 422
    assert caught.value.errors[0].field == "dataVersion"


@pytest.mark.parametrize("version", [f"{V1P2}/", V1P2.replace("http:", "https:"), V1P1.upper()])
def test_data_version_spellings_are_accepted(version):
    assert parse_envelope(json.dumps(envelope(COMPLETED_B, version=version))).data_version in (V1P1, V1P2)


def test_entity_only_envelopes_and_iri_items_carry_no_events():
    parsed = parse_envelope(json.dumps(envelope(person(), course(), "https://learn.fabrikam.example/users/u-1")))
    assert parsed.events == ()
    assert set(parsed.entities) == {LEARNER_IRI, COURSE_IRI}


def test_the_get_answer():
    assert endpoint_configuration(512) == {
        "caliperMaximumPayloadSize": 512,
        "caliperSupportedVersions": [V1P1, V1P2],
        "caliperSupportedExtensions": {},
    }


# --- Fuzzing: bodies never seen raise CaliperError and nothing else ---

KEYS = [
    "id",
    "type",
    "action",
    "actor",
    "object",
    "eventTime",
    "generated",
    "target",
    "items",
    "metric",
    "metricValue",
    "maxMetricValue",
    "assignee",
    "assignable",
    "startedAtTime",
    "endedAtTime",
    "duration",
    "currentTime",
    "otherIdentifiers",
    "identifier",
    "identifierType",
    "extensions",
    "dateToSubmit",
]
caliper_like = st.recursive(
    st.none()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "Attempt",
            "GradeEvent",
            "ToolUseEvent",
            "MediaEvent",
            "Graded",
            "UnitsCompleted",
            "PT5M",
            "2025-03-05T09:40:58Z",
            "urn:uuid:5b0c3a1e-7d2f-4c1b-9a55-0e8f2d6c4b71",
            "a@b.c",
        ]
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=6),
    max_leaves=40,
)


def _map_or_refuse(body) -> None:
    try:
        parsed = parse_envelope(body)
    except CaliperError as error:
        refused = error
    else:
        refused = None
    if refused is not None:
        assert refused.errors
        assert refused.status in (400, 422)
        return
    for policy in ("Completed", "Submitted", "Graded"):
        for result in map_envelope(parsed, completion=policy, content_id=lambda iri: iri or None):
            assert isinstance(result, MappedEvent | Skipped | Unmappable)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_fuzz_raw_bodies(body):
    _map_or_refuse(body)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_fuzz_any_json(value):
    _map_or_refuse(json.dumps(value))


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(caliper_like, min_size=1, max_size=3), st.sampled_from([V1P1, V1P2]))
def test_fuzz_envelope_shaped_events(data, version):
    _map_or_refuse({"sensor": "s", "sendTime": "2025-03-05T09:41:02Z", "dataVersion": version, "data": data})


BASES = [
    COMPLETED_B,
    GRADED_C,
    CANVAS_SUBMISSION["data"][0],
    caliper_event("ToolUseEvent", "Used", "2025-03-05T09:30:00.000Z", 4, generated=units_completed(12.0, 25.0)),
    caliper_event(
        "MediaEvent",
        "Paused",
        "2025-03-05T09:15:00.000Z",
        5,
        object={"id": COURSE_IRI, "type": "VideoObject", "duration": "PT20M20S"},
        target={"id": COURSE_IRI, "type": "MediaLocation", "currentTime": "PT05M21S"},
    ),
]


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(BASES),
    st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(KEYS), caliper_like), min_size=1, max_size=3),
)
def test_fuzz_mutated_real_events(base, mutations):
    """Real events with some of their properties (or their entities' properties) replaced by anything."""
    event = copy.deepcopy(base)
    for key, inner, value in mutations:
        if isinstance(event.get(key), dict) and inner != key:
            event[key][inner] = value
        else:
            event[key] = value
    _map_or_refuse(envelope(person(), event))
