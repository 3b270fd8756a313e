"""The webhook through the app's indexed function: the contract's answers, and nothing enqueued unless accepted."""

from __future__ import annotations

import json
import time

import pytest

from devtools.examples import EXAMPLE_1_ASSIGNMENT, EXAMPLE_2_SELF_INITIATED, REGISTRATION_ID
from tests.support.functions import call_webhook
from tests.support.signing import OTHER_SECRET, signed_headers


def event(external_id: str = "ext-1", **fields) -> dict:
    return {
        "@odata.type": "#microsoft.graph.learningSelfInitiatedCourse",
        "externalcourseActivityId": external_id,
        "status": "inProgress",
        **fields,
    }


def post(body: str | bytes, headers: dict[str, str] | None = None, registration_id: str = REGISTRATION_ID):
    return call_webhook(registration_id, body, signed_headers(body) if headers is None else headers)


@pytest.mark.parametrize("example", [EXAMPLE_1_ASSIGNMENT, EXAMPLE_2_SELF_INITIATED])
def test_a_signed_reference_example_is_accepted_as_one_versioned_message(example):
    headers = signed_headers(example, webhook_id="msg_example")
    result = call_webhook(REGISTRATION_ID, example, headers)
    assert (result.status, result.body) == (202, {"accepted": 1, "ids": ["msg_example"]})
    assert result.headers["content-type"] == "application/json"
    (message,) = [json.loads(m) for m in result.messages]
    assert message["schemaVersion"] == 2
    assert message["kind"] == "courseActivityUpdate"
    assert (message["eventId"], message["webhookId"], message["registrationId"]) == (
        "msg_example",
        "msg_example",
        REGISTRATION_ID,
    )
    assert message["event"]["@odata.type"] == json.loads(example)["@odata.type"]
    assert message["event"]["completionPercentage"] == json.loads(example)["completionPercentage"]


def test_a_batch_becomes_one_message_per_event_with_ids_in_order():
    body = json.dumps([event(f"ext-{i}") for i in range(3)])
    result = post(body, signed_headers(body, webhook_id="msg_batch"))
    assert (result.status, result.body) == (202, {"accepted": 3, "ids": ["msg_batch:0", "msg_batch:1", "msg_batch:2"]})
    assert [json.loads(m)["event"]["externalcourseActivityId"] for m in result.messages] == ["ext-0", "ext-1", "ext-2"]
    assert [json.loads(m)["sequence"] for m in result.messages] == [0, 1, 2]


def test_a_batch_of_100_is_accepted_and_101_is_too_large():
    assert post(json.dumps([event(f"e{i}") for i in range(100)])).status == 202
    result = post(json.dumps([event(f"e{i}") for i in range(101)]))
    assert result.status == 413
    assert result.body["error"]["code"] == "payloadTooLarge"
    assert "100" in result.body["error"]["message"]
    assert result.messages == []


def test_a_body_over_one_mebibyte_is_too_large():
    body = json.dumps(event(notes="x" * (1024 * 1024)))
    result = post(body)
    assert (result.status, result.messages) == (413, [])


def test_an_unknown_registration_id_is_404():
    result = post(json.dumps(event()), registration_id="00000000-0000-0000-0000-000000000000")
    assert result.status == 404
    assert result.body["error"]["code"] == "notFound"
    assert result.messages == []


def test_the_registration_id_matches_without_regard_to_case():
    assert post(json.dumps(event()), registration_id=REGISTRATION_ID.upper()).status == 202


def test_a_signature_from_the_other_rotated_secret_is_accepted():
    body = json.dumps(event())
    assert post(body, signed_headers(body, OTHER_SECRET)).status == 202


def test_several_signatures_are_accepted_when_one_matches():
    body = json.dumps(event())
    headers = signed_headers(body)
    wrong = signed_headers(body, "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY", webhook_id=headers["webhook-id"])
    headers["webhook-signature"] = f"{wrong['webhook-signature']} {headers['webhook-signature']}"
    assert post(body, headers).status == 202


def test_a_wrong_signature_is_401_and_enqueues_nothing():
    body = json.dumps(event())
    result = post(body, signed_headers(body, "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"))
    assert (result.status, result.messages) == (401, [])
    assert result.body["error"]["code"] == "unauthorized"


def test_a_tampered_body_is_401():
    body = json.dumps(event())
    headers = signed_headers(body)
    assert post(body.replace("inProgress", "completed"), headers).status == 401


@pytest.mark.parametrize("age", [6 * 60, -6 * 60])
def test_a_timestamp_outside_five_minutes_is_401(age):
    body = json.dumps(event())
    result = post(body, signed_headers(body, timestamp=time.time() - age))
    assert result.status == 401
    assert "5 minutes" in result.body["error"]["message"]


def test_a_timestamp_within_five_minutes_is_accepted():
    body = json.dumps(event())
    assert post(body, signed_headers(body, timestamp=time.time() - 4 * 60)).status == 202


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_signature_header_is_401(missing):
    body = json.dumps(event())
    headers = signed_headers(body)
    del headers[missing]
    result = post(body, headers)
    assert result.status == 401
    assert missing in result.body["error"]["message"]


@pytest.mark.parametrize("signature", ["garbage", "v1,not-base64!!", "v1", ""])
def test_a_malformed_signature_header_is_401_not_500(signature):
    body = json.dumps(event())
    headers = signed_headers(body)
    headers["webhook-signature"] = signature
    assert post(body, headers).status == 401


def test_a_non_json_content_type_is_415():
    body = json.dumps(event())
    result = post(body, signed_headers(body, content_type="text/plain"))
    assert (result.status, result.messages) == (415, [])
    assert result.body["error"]["code"] == "unsupportedMediaType"


def test_a_body_that_is_not_json_without_a_content_type_is_415():
    body = "status=completed"
    assert post(body, signed_headers(body, content_type=None)).status == 415


def test_json_without_a_content_type_is_accepted():
    body = json.dumps(event())
    assert post(body, signed_headers(body, content_type=None)).status == 202


def test_json_with_a_charset_is_accepted():
    body = json.dumps(event())
    assert post(body, signed_headers(body, content_type="application/json; charset=utf-8")).status == 202


def test_malformed_json_is_400_naming_the_body():
    result = post('{"status": "inProgress",')
    assert result.status == 400
    assert result.body["error"]["message"] == "Input field body is invalid"


def test_an_invalid_event_is_400_in_the_contracts_shape_and_enqueues_nothing():
    result = post(json.dumps(event(status="notStarted", completionPercentage=120)))
    assert result.status == 400
    assert result.messages == []
    error = result.body["error"]
    assert error["code"] == "badRequest"
    assert error["message"] == "Input field status is invalid"
    assert [(d["code"], d["message"], d["target"]) for d in error["details"]] == [
        ("badRequest", "Input field status is invalid", "status"),
        ("badRequest", "Input field completionPercentage is invalid", "completionPercentage"),
    ]
    assert all(d["rule"] for d in error["details"])


def test_one_bad_event_rejects_the_whole_batch():
    result = post(json.dumps([event("a"), event("b", status="done")]))
    assert (result.status, result.messages) == (400, [])
    assert [(d["index"], d["target"]) for d in result.body["error"]["details"]] == [(1, "status")]


def test_an_empty_batch_is_400():
    result = post("[]")
    assert result.status == 400
    assert result.body["error"]["message"] == "Input field body shouldn't be empty"


def test_a_json_scalar_is_400():
    assert post('"hello"').status == 400


# --- inputs that once raised instead of answering (found by review and fuzzing) ---


def test_json_nested_too_deeply_is_400_not_500():
    assert post("[" * 990 + "]" * 990).status == 400


@pytest.mark.parametrize("due", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00"])
def test_a_date_time_off_the_utc_clock_is_invalid(due):
    result = post(json.dumps(event(dueDateTime=due, **{"@odata.type": "#microsoft.graph.learningAssignment"})))
    assert result.status == 400
    assert result.body["error"]["message"] == "Input field dueDateTime is invalid"


def test_more_than_100_events_is_413_without_validating_them_all():
    result = post("[" + ",".join(["{}"] * 5000) + "]")
    assert result.status == 413
    assert "100" in result.body["error"]["message"]


def test_a_400_lists_at_most_100_details():
    result = post(json.dumps([{"status": "x"}] * 100))
    assert result.status == 400
    assert len(result.body["error"]["details"]) == 100


def test_notes_longer_than_4000_characters_are_invalid():
    result = post(json.dumps(event(notes="x" * 4001, **{"@odata.type": "#microsoft.graph.learningAssignment"})))
    assert result.body["error"]["message"] == "Input field notes is invalid"


def test_an_unreadable_signature_entry_does_not_hide_a_valid_one():
    body = json.dumps(event())
    headers = signed_headers(body)
    for bad in ("v1,invalid", "v1,bogus", "garbage", "v1,AAAA"):
        headers_with_bad = {**headers, "webhook-signature": f"{bad}  {headers['webhook-signature']}"}
        assert post(body, headers_with_bad).status == 202, bad


def test_a_webhook_id_over_256_characters_is_refused():
    body = json.dumps(event())
    result = post(body, signed_headers(body, webhook_id="w" * 257))
    assert result.status == 401
    assert "webhook-id" in result.body["error"]["message"]


@pytest.mark.parametrize("form", ["{}.999", "+{}", " {}", "{}e0", "{}.0", "0x{}", "\u0661\u0667{}", "99{}"])
def test_a_webhook_timestamp_that_is_not_plain_digits_is_401_naming_the_header(form):
    """The library signs floor(timestamp) while the event time would take the raw header: only digits pass."""
    body = json.dumps(event())
    now = int(time.time())
    headers = {**signed_headers(body, timestamp=now), "webhook-timestamp": form.format(now)}
    result = post(body, headers)
    assert (result.status, result.messages) == (401, [])
    assert "webhook-timestamp" in result.body["error"]["message"]
    assert "digits" in result.body["error"]["message"]


def test_a_webhook_timestamp_that_is_not_a_number_names_the_header_and_the_rule():
    body = json.dumps(event())
    result = post(body, {**signed_headers(body), "webhook-timestamp": "abc"})
    assert result.status == 401
    assert result.body["error"]["message"] == (
        "Invalid webhook signature: webhook-timestamp must be Unix time in whole seconds, digits only (at most 10)."
    )


def test_a_chunked_request_without_a_body_is_411_asking_for_content_length():
    """The Functions host passes a body only with Content-Length: a chunked callback arrives empty."""
    body = json.dumps(event())
    headers = {**signed_headers(body), "transfer-encoding": "chunked"}
    result = post(b"", headers)
    assert (result.status, result.messages) == (411, [])
    assert result.body["error"]["code"] == "lengthRequired"
    assert "Content-Length" in result.body["error"]["message"]


def test_a_due_date_time_in_an_unknown_time_zone_is_400_and_a_known_one_is_queued_as_graph_spells_it():
    assignment = {"@odata.type": "#microsoft.graph.learningAssignment"}
    due = {"dateTime": "2022-09-22T16:05:00.0000000", "timeZone": "Mars/Olympus"}
    result = post(json.dumps(event(dueDateTime=due, **assignment)))
    assert (result.status, result.messages) == (400, [])
    (detail,) = result.body["error"]["details"]
    assert detail["target"] == "dueDateTime"
    assert "Windows time zone name" in detail["rule"]
    accepted = post(json.dumps(event(dueDateTime={**due, "timeZone": "europe/berlin"}, **assignment)))
    assert accepted.status == 202
    assert json.loads(accepted.messages[0])["event"]["dueDateTime"]["timeZone"] == "Europe/Berlin"


@pytest.mark.parametrize("activity_id", ["..", "."])
def test_a_dot_only_graph_id_is_400_and_nothing_is_queued(activity_id):
    result = post(json.dumps(event(learningCourseActivityId=activity_id)))
    assert (result.status, result.messages) == (400, [])
    assert result.body["error"]["message"] == "Input field learningCourseActivityId is invalid"


def test_a_rejected_field_name_is_logged_escaped_on_one_line(caplog):
    caplog.set_level("INFO", logger="connector.app.webhook")
    result = post(json.dumps(event(**{"x\n12:00:00 ERROR forged": 1})))
    assert result.status == 400
    (line,) = [r.getMessage() for r in caplog.records if "rejected (400)" in r.getMessage()]
    assert "\n" not in line
    assert "x\\n12:00:00 ERROR forged" in line
