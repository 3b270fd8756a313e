"""Signed HTTP in, Graph sandbox changed; and the failures a provider's engineer and an admin would look for."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import httpx
import pytest

from devtools.examples import ASSIGNMENT_ID, EXAMPLE_1_ASSIGNMENT, EXAMPLE_1_PATCH, REGISTRATION_ID
from tests.e2e.conftest import FUNCTION_KEY, wait_until
from tests.support.signing import signed_headers

pytestmark = pytest.mark.e2e


def post(app, body: str, *, key: str | None = FUNCTION_KEY) -> httpx.Response:
    headers = signed_headers(body)
    if key:
        headers["x-functions-key"] = key
    return httpx.post(
        f"{app.url}/api/providers/{REGISTRATION_ID}/course-activities", content=body, headers=headers, timeout=30
    )


def progress(external_id: str, percent: int) -> str:
    return json.dumps(
        {
            "@odata.type": "#microsoft.graph.learningAssignment",
            "externalcourseActivityId": external_id,
            "status": "inProgress",
            "completionPercentage": percent,
        }
    )


def test_a_signed_callback_updates_graph(fresh, sandbox):
    response = post(fresh, EXAMPLE_1_ASSIGNMENT)
    assert response.status_code == 202
    assert response.json()["accepted"] == 1
    patches = sandbox.admin.wait_for_requests(lambda r: len(r) >= 1, method="PATCH", timeout=20)
    assert patches[0]["body"] == EXAMPLE_1_PATCH
    assert patches[0]["status"] == 204
    assert sandbox.admin.activity(ASSIGNMENT_ID)["completionPercentage"] == 20


def test_the_function_key_is_required(fresh):
    assert post(fresh, EXAMPLE_1_ASSIGNMENT, key=None).status_code == 401
    assert post(fresh, EXAMPLE_1_ASSIGNMENT, key="wrong").status_code == 401


def test_a_bad_signature_is_401_and_a_bad_event_400_and_neither_enqueues(fresh):
    body = progress("12a2228a-e020-11ec-9d64-0242ac120002", 150)
    assert post(fresh, body).status_code == 400
    headers = {**signed_headers(body), "x-functions-key": FUNCTION_KEY, "webhook-signature": "v1,AAAA"}
    url = f"{fresh.url}/api/providers/{REGISTRATION_ID}/course-activities"
    assert httpx.post(url, content=body, headers=headers).status_code == 401
    assert fresh.queue_count("course-activity-updates") == 0


def test_a_permanent_failure_lands_in_the_poison_queue_with_its_reason(fresh, sandbox):
    assert post(fresh, progress("unknown-activity", 10)).status_code == 202
    (letter,) = wait_until(lambda: fresh.peek("course-activity-updates-poison"))
    reason = json.loads(letter)["deadLetter"]
    assert (reason["status"], reason["code"]) == (404, "notFound")
    assert reason["requestId"]
    assert json.loads(letter)["event"]["externalcourseActivityId"] == "unknown-activity"


def test_a_429_with_retry_after_is_retried_after_the_delay_without_a_dequeue(fresh, sandbox):
    sandbox.admin.add_fault(target="graph", method="PATCH", status=429, retry_after=2, count=1)
    started = time.monotonic()
    assert post(fresh, progress("12a2228a-e020-11ec-9d64-0242ac120002", 33)).status_code == 202
    patches = sandbox.admin.wait_for_requests(lambda r: [p["status"] for p in r] == [429, 204], method="PATCH")
    assert time.monotonic() - started >= 2
    assert patches[-1]["body"]["completionPercentage"] == 33
    assert fresh.peek("course-activity-updates-poison") == []


def test_a_429_with_a_two_minute_retry_after_leaves_the_message_invisible(fresh, sandbox):
    sandbox.admin.add_fault(target="graph", method="PATCH", status=429, retry_after=120, count=1)
    before = datetime.now(UTC)
    assert post(fresh, progress("12a2228a-e020-11ec-9d64-0242ac120002", 44)).status_code == 202
    sandbox.admin.wait_for_requests(lambda r: len(r) == 1, method="PATCH")
    state = wait_until(lambda: _state(fresh, "throttled"))
    due = datetime.fromisoformat(state["nextAttemptAt"])
    assert 110 <= (due - before).total_seconds() <= 130
    assert fresh.queue_count("course-activity-updates") == 1  # back on the queue …
    assert fresh.peek("course-activity-updates") == []  # … invisible for now
    assert fresh.peek("course-activity-updates-poison") == []


def _state(app, status: str):
    response = httpx.get(
        f"{app.url}/api/providers/{REGISTRATION_ID}/course-activities/12a2228a-e020-11ec-9d64-0242ac120002",
        headers={"x-functions-key": FUNCTION_KEY, **signed_headers(b"", content_type=None)},  # the provider's own
    )
    return response.json() if response.status_code == 200 and response.json()["state"] == status else None
