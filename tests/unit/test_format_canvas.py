"""Canvas Live Events in Canvas's format: plain and signed (RS256 JWT), and the mapping of course progress and
enrollments."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.domain.events import ASSIGNMENT
from connector.domain.formats.canvas import (
    BadSignatureError,
    CanvasError,
    CanvasTokenError,
    ExpiredTokenError,
    UnknownKeyError,
    canvas_local_id,
    is_jwt,
    map_event,
    parse_event,
    verify_jwt,
)
from connector.domain.formats.mapped import MappedEvent, Skipped, Unmappable
from tests.support.formats import (
    course_completed,
    course_progress,
    enrollment,
    fold_shuffled,
    json_values,
    jwks,
    signing_key,
)

COURSE = "urn:instructure:canvas:course:565"
PREVIOUS, CURRENT, NEXT = signing_key("2025-02"), signing_key("2025-03"), signing_key("2025-04")
KEYS = jwks(PREVIOUS, CURRENT, NEXT)


def mapped(body, **options):
    return map_event(parse_event(json.dumps(body)), **options)


def refused(body) -> list[tuple[str, str]]:
    with pytest.raises(CanvasError) as caught:
        parse_event(body if isinstance(body, str) else json.dumps(body))
    return [(e.field, e.problem) for e in caught.value.errors]


# --- Course progress and completion ---


def test_course_progress_counts_requirements():
    result = mapped(course_progress(101, 123, "2025-03-10T09:12:13.590Z"))
    assert result.changes == {
        "status": "inProgress",
        "startedDateTime": "2025-03-10T09:12:13.590000+00:00",
        "completionPercentage": 82,
    }
    assert (result.learner, result.learner_kind, result.content) == ("noor.haddad@contoso.example", "email", COURSE)
    assert result.event_time == datetime(2025, 3, 10, 9, 12, 13, 590000, tzinfo=UTC)
    assert result.odata_type is None


def test_course_completed_takes_completed_at():
    result = mapped(course_completed("2025-03-12T16:00:05.000Z", "2025-03-12T15:58:00.218Z"))
    assert result.changes == {
        "status": "completed",
        "completionPercentage": 100,
        "completedDateTime": "2025-03-12T15:58:00.218000+00:00",
    }
    progress = mapped(course_progress(1, 6, "2025-03-10T09:00:00.000Z"))
    assert result.external_id == progress.external_id  # global ids in one, local in the other: the same activity


def test_course_progress_with_completed_at_is_a_completion():
    assert mapped(course_progress(6, 6, "2025-03-12T16:00:00Z", "2025-03-12T15:58:00Z")).changes["status"] == (
        "completed"
    )


def test_without_an_email_the_acting_learners_login_or_sis_id():
    body = course_completed("2025-03-12T16:00:05.000Z", "2025-03-12T15:58:00.218Z")
    del body["body"]["user"]["email"]
    assert (mapped(body).learner, mapped(body).learner_kind) == ("noor.haddad@contoso.example", "email")
    body["metadata"]["user_login"] = "nhaddad"
    assert (mapped(body).learner, mapped(body).learner_kind) == ("E-40512", "employeeId")
    body["metadata"]["user_id"] = "21070000000000999"  # someone else acted: their login names no one here
    assert (mapped(body).learner, mapped(body).learner_kind) == (None, None)


def test_a_course_outside_the_providers_pattern_or_a_missing_user_is_unmappable():
    assert mapped(course_progress(1, 6, "2025-03-10T09:00:00Z"), content_id=lambda iri: None) == Unmappable(
        "body.course.id", "the course is not a content of this provider (contentIdPattern)"
    )
    body = course_progress(1, 6, "2025-03-10T09:00:00Z")
    del body["body"]["user"]["id"]
    assert mapped(body) == Unmappable("body.user.id", "the event names no learner")


def test_the_content_id_function_sees_the_courses_local_iri():
    result = mapped(course_progress(1, 6, "2025-03-10T09:00:00Z"), content_id=lambda iri: iri.rsplit(":", 1)[1])
    assert result.content == "565"


# --- Enrollments ---


def test_a_student_enrollment_by_an_admin_is_an_assignment_without_a_learner_to_create_with():
    result = mapped(enrollment("enrollment_created", "invited", "2025-02-20T08:00:01Z"))
    assert result.changes == {"status": "notStarted", "assignedDateTime": "2025-02-20T08:00:00+00:00"}
    assert result.odata_type == ASSIGNMENT
    assert (result.learner, result.content) == (None, COURSE)  # Canvas names the enrollee only by Canvas id
    assert result.external_id == mapped(course_progress(1, 6, "2025-03-10T09:00:00Z")).external_id


def test_a_deleted_enrollment_is_a_withdrawal():
    result = mapped(enrollment("enrollment_updated", "deleted", "2025-04-01T12:00:00Z"))
    assert result.removed
    assert result.changes == {}
    assert result.external_id == mapped(course_progress(1, 6, "2025-03-10T09:00:00Z")).external_id


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (enrollment("enrollment_created", "active", "2025-02-20T08:00:01Z", kind="TeacherEnrollment"), "Teacher"),
        (enrollment("enrollment_created", "active", "2025-02-20T08:00:01Z", actor="21070000000000123"), "self"),
        (enrollment("enrollment_updated", "inactive", "2025-02-20T08:00:01Z"), "inactive"),
        ({"metadata": {"event_name": "submission_created", "event_time": "2025-03-01T10:00:00Z"}, "body": {}}, "sub"),
    ],
)
def test_events_without_learner_progress_are_skipped(body, reason):
    result = mapped(body)
    assert isinstance(result, Skipped)
    assert reason in result.reason


# --- Identity of events, and a whole course in any order ---


def test_the_event_id_is_the_same_for_a_redelivery_only():
    body = course_progress(3, 6, "2025-03-10T10:00:00Z")
    assert mapped(body).event_id == mapped(copy.deepcopy(body)).event_id
    assert mapped(course_progress(4, 6, "2025-03-10T10:00:00Z")).event_id != mapped(body).event_id
    assert "noor" not in mapped(body).event_id


def test_a_course_from_enrollment_to_completion_in_any_order():
    events = [
        mapped(enrollment("enrollment_created", "invited", "2025-02-20T08:00:01Z")),
        mapped(course_progress(1, 6, "2025-03-10T09:00:00.000Z")),
        mapped(course_progress(3, 6, "2025-03-11T09:00:00.000Z")),
        mapped(course_progress(5, 6, "2025-03-12T09:00:00.000Z")),
        mapped(course_completed("2025-03-12T16:00:05.000Z", "2025-03-12T15:58:00.218Z")),
    ]
    assert len({event.external_id for event in events}) == 1
    for values in fold_shuffled(events):
        assert values == {
            "status": "completed",
            "completionPercentage": 100,
            "startedDateTime": "2025-03-10T09:00:00+00:00",
            "completedDateTime": "2025-03-12T15:58:00.218000+00:00",
            "assignedDateTime": "2025-02-20T08:00:00+00:00",
        }


def test_canvas_ids():
    assert canvas_local_id("21070000000000123") == "123"
    assert canvas_local_id("123") == "123"
    assert canvas_local_id("abc") == "abc"


# --- Malformed bodies ---


def test_malformed_bodies_name_the_field():
    assert refused("<xml/>") == [("body", "is invalid")]
    assert refused("[]") == [("body", "is invalid")]
    assert refused({"body": {}}) == [("metadata", "is required")]
    assert refused({"metadata": {"event_name": "course_progress"}, "body": {}}) == [
        ("metadata.event_time", "is required")
    ]
    body = course_progress(1, 6, "2025-03-10T09:00:00Z")
    body["body"]["progress"]["requirement_count"] = "six"
    body["body"]["course"] = "565"
    assert refused(body) == [("body.course", "is invalid"), ("body.progress.requirement_count", "is invalid")]


# --- The signed form ---


def claims_of(body, **extra):
    return {**body, "iat": int(time.time()), **extra}


def test_a_signed_event_verifies_against_the_current_key():
    body = course_progress(3, 6, "2025-03-11T09:00:00.000Z")
    token = CURRENT.sign(claims_of(body, exp=int(time.time()) + 300))
    assert is_jwt(token)
    assert is_jwt(json.dumps(token))  # also as a JSON string
    assert not is_jwt(json.dumps(body))
    event = verify_jwt(token.encode(), KEYS)
    assert event == parse_event(body)  # the same event, the same idempotency key, as the unsigned form
    assert map_event(event).changes["completionPercentage"] == 50


def test_an_event_held_under_one_claim_is_read_too():
    body = course_progress(3, 6, "2025-03-11T09:00:00.000Z")
    token = NEXT.sign({"iss": "https://live-events.instructure.com", "event": body, "iat": int(time.time())})
    assert verify_jwt(token, KEYS) == parse_event(body)


def test_a_key_missing_from_the_set_is_told_apart_so_the_caller_refreshes():
    rotated = signing_key("2025-05")
    with pytest.raises(UnknownKeyError) as caught:
        verify_jwt(rotated.sign(claims_of(course_progress(1, 6, "2025-03-10T09:00:00Z"))), KEYS)
    assert caught.value.kid == "2025-05"
    assert verify_jwt(rotated.sign(claims_of(course_progress(1, 6, "2025-03-10T09:00:00Z"))), jwks(CURRENT, rotated))


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(signing_key("2025-03").sign({"metadata": {}}), id="another key under a known kid"),
        pytest.param(CURRENT.sign({"metadata": {}})[:-4] + "AAAA", id="tampered signature"),
        pytest.param(
            CURRENT.sign({"a": 1}).split(".")[0] + ".eyJhIjoyfQ." + CURRENT.sign({"a": 1}).split(".")[2],
            id="tampered claims",
        ),
        pytest.param("eyJhbGciOiJub25lIiwia2lkIjoiMjAyNS0wMyJ9.eyJhIjoxfQ.", id="alg none"),
        pytest.param("not.a.jwt", id="garbage"),
        pytest.param(CURRENT.sign({"a": 1}, kid=""), id="no kid"),
    ],
)
def test_a_bad_signature_is_refused(token):
    with pytest.raises(BadSignatureError):
        verify_jwt(token, KEYS)


def test_hs256_signed_with_the_public_key_is_refused():
    """The algorithm-confusion forgery: an HMAC keyed with the published public key."""
    public_pem = CURRENT.private_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    head = f"{b64(json.dumps({'alg': 'HS256', 'kid': CURRENT.kid}).encode())}.{b64(b'{}')}"
    forged = f"{head}.{b64(hmac.new(public_pem, head.encode(), hashlib.sha256).digest())}"
    with pytest.raises(BadSignatureError):
        verify_jwt(forged, KEYS)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_broken_key_in_the_set_is_a_bad_signature_not_a_crash():
    without_modulus = {name: value for name, value in CURRENT.jwk.items() if name != "n"}
    broken = {"keys": [without_modulus, {"kid": NEXT.kid, "kty": "oct", "k": "c2VjcmV0"}]}
    for key in (CURRENT, NEXT):
        with pytest.raises(BadSignatureError):
            verify_jwt(key.sign({"a": 1}), broken)


def test_an_expired_token_is_told_apart():
    token = CURRENT.sign(claims_of(course_progress(1, 6, "2025-03-10T09:00:00Z"), exp=int(time.time()) - 3600))
    with pytest.raises(ExpiredTokenError):
        verify_jwt(token, KEYS)


def test_verified_claims_that_are_no_event_are_a_format_error_not_a_token_error():
    with pytest.raises(CanvasError) as caught:
        verify_jwt(CURRENT.sign({"hello": "world"}), KEYS)
    assert not isinstance(caught.value, CanvasTokenError)
    assert [e.field for e in caught.value.errors] == ["metadata", "body"]


# --- Fuzzing: bodies never seen raise CanvasError and nothing else ---

VALUES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "course_progress",
            "course_completed",
            "enrollment_updated",
            "deleted",
            "StudentEnrollment",
            "a@b.c",
            "2025-03-10T09:00:00Z",
            "21070000000000123",
        ]
    )
    | st.dictionaries(st.sampled_from(["id", "email", "completed_at", "requirement_count"]), st.integers(), max_size=2)
)


def _map_or_refuse(body) -> None:
    try:
        event = parse_event(body)
    except CanvasError as error:
        errors = error.errors
    else:
        errors = []
        assert isinstance(map_event(event, content_id=lambda iri: iri or None), MappedEvent | Skipped | Unmappable)
    assert errors or event


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_fuzz_raw_bodies(body):
    _map_or_refuse(body)
    try:
        verify_jwt(body, KEYS)
    except CanvasError as error:
        assert error.errors  # noqa: PT017 - any refusal is fine, as long as it is ours


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_fuzz_any_json(value):
    _map_or_refuse(json.dumps(value))


BASES = [
    course_progress(3, 6, "2025-03-11T09:00:00Z"),
    course_completed("2025-03-12T16:00:05Z", "2025-03-12T15:58:00Z"),
    enrollment("enrollment_updated", "deleted", "2025-04-01T12:00:00Z"),
]


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(BASES),
    st.lists(
        st.tuples(
            st.sampled_from(["metadata", "body"]),
            st.sampled_from(
                [
                    "event_name",
                    "event_time",
                    "user_id",
                    "course",
                    "progress",
                    "user",
                    "type",
                    "workflow_state",
                    "user_id",
                    "course_id",
                    "created_at",
                ]
            ),
            VALUES,
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_fuzz_mutated_real_events(base, mutations):
    body = copy.deepcopy(base)
    for part, key, value in mutations:
        body[part][key] = value
    _map_or_refuse(body)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(json_values)
def test_fuzz_signed_claims(value):
    """Whatever a validly signed token holds, the answer is an event or a CanvasError."""
    claims = value if isinstance(value, dict) else {"event": value}
    try:
        verify_jwt(CURRENT.sign(claims), KEYS)
    except CanvasError as error:
        assert error.errors  # noqa: PT017 - any refusal is fine, as long as it is ours
