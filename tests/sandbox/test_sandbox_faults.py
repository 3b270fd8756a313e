"""Fault injection: statuses and their bodies, Retry-After, latency, dropped connections, count, probability."""

from __future__ import annotations

import asyncio
import random
import time

import httpx
import pytest

from sandbox.rules import MSG_FORBIDDEN
from sandbox.seed import EXAMPLE_ASSIGNMENT_ID

from .conftest import ASSIGNMENT_URL, assert_graph_error, fetch_token

ASSIGNMENT = "#microsoft.graph.learningAssignment"
BODY = {"@odata.type": ASSIGNMENT, "status": "completed"}
PROVIDER = "/employeeExperience/learningProviders/01e8f81b-3060-4dec-acf0-0389665a0a38"


def test_throttle_with_retry_after_header(sandbox, graph):
    sandbox.admin.add_fault(status=429, retry_after=7, method="PATCH")
    response = graph.patch(ASSIGNMENT_URL, json=BODY)
    assert_graph_error(response, 429, "tooManyRequests", "Retry after 1 minutes")
    assert response.headers["Retry-After"] == "7"
    assert sandbox.admin.activity(EXAMPLE_ASSIGNMENT_ID)["status"] == "notStarted"  # the fault answered, not Graph


def test_throttle_with_minutes_in_the_body_only(sandbox, graph):
    sandbox.admin.add_fault(status=429, retry_after_minutes_in_body=3)
    response = graph.patch(ASSIGNMENT_URL, json=BODY)
    assert_graph_error(response, 429, "tooManyRequests", "Retry after 3 minutes")
    assert "Retry-After" not in response.headers


def test_throttle_with_both(sandbox, graph):
    sandbox.admin.add_fault(status=503, retry_after=30, retry_after_minutes_in_body=2)
    response = graph.get(PROVIDER)
    assert_graph_error(response, 503, "serviceUnavailable", "Retry after 2 minutes")
    assert response.headers["Retry-After"] == "30"


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (503, "serviceUnavailable", "Retry after 1 minutes"),
        (500, "internalServerError", "Internal server error."),
        (502, "badGateway", "Bad gateway."),
        (504, "gatewayTimeout", "Gateway timeout."),
        (403, "Forbidden", MSG_FORBIDDEN),
    ],
)
def test_status_defaults(sandbox, graph, status, code, message):
    sandbox.admin.add_fault(status=status)
    response = graph.patch(ASSIGNMENT_URL, json=BODY)
    assert_graph_error(response, status, code, message)
    assert "Retry-After" not in response.headers


def test_custom_code_and_message(sandbox, graph):
    sandbox.admin.add_fault(
        status=403, code="Forbidden", message="You don't have an adequate service plan for this request."
    )
    assert_graph_error(
        graph.patch(ASSIGNMENT_URL, json=BODY),
        403,
        "Forbidden",
        "You don't have an adequate service plan for this request.",
    )


@pytest.mark.parametrize("status", [502, 504])
def test_html_gateway_page(sandbox, graph, status):
    sandbox.admin.add_fault(status=status, html=True)
    response = graph.patch(ASSIGNMENT_URL, json=BODY)
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text.lstrip().startswith("<!DOCTYPE html>")
    assert str(status) in response.text
    assert response.headers["request-id"]


def test_method_and_path_filters(sandbox, graph):
    sandbox.admin.add_fault(status=500, method="patch", path_contains="/learningCourseActivities/")
    assert graph.get(PROVIDER).status_code == 200
    assert graph.get(f"/employeeExperience/learningCourseActivities/{EXAMPLE_ASSIGNMENT_ID}").status_code == 200
    assert graph.patch(ASSIGNMENT_URL, json=BODY).status_code == 500


def test_path_filter_sees_the_decoded_path(sandbox, graph):
    sandbox.admin.add_fault(status=500, path_contains="externalcourseActivityId='a b'")
    assert graph.get(f"{PROVIDER}/learningCourseActivities(externalcourseActivityId='a%20b')").status_code == 500


def test_count_limits_a_rule_and_the_next_rule_applies(sandbox, graph):
    sandbox.admin.set_faults([{"status": 503, "count": 2}, {"status": 500, "count": 1}])
    statuses = [graph.patch(ASSIGNMENT_URL, json=BODY).status_code for _ in range(5)]
    assert statuses == [503, 503, 500, 204, 204]
    assert [r["applied"] for r in sandbox.admin.faults()] == [2, 1]
    assert sandbox.admin.stats()["faultsInjected"] == 3


def test_probability_with_a_seed_is_reproducible(sandbox, graph):
    rng = random.Random(1234)
    expected = [503 if rng.random() < 0.3 else 204 for _ in range(40)]
    assert 3 < expected.count(503) < 25  # the seed gives a mix, so the comparison below means something
    rule = {"status": 503, "probability": 0.3, "seed": 1234}
    sandbox.admin.add_fault(rule)
    first = [graph.patch(ASSIGNMENT_URL, json=BODY).status_code for _ in range(40)]
    sandbox.admin.set_faults([rule])  # a fresh rule: its generator starts again from the seed
    second = [graph.patch(ASSIGNMENT_URL, json=BODY).status_code for _ in range(40)]
    assert first == second == expected


def test_probability_zero_never_fires(sandbox, graph):
    sandbox.admin.add_fault(status=500, probability=0)
    assert {graph.get(PROVIDER).status_code for _ in range(20)} == {200}
    assert sandbox.admin.stats()["faultsInjected"] == 0


def test_drop_closes_the_connection_without_a_response(sandbox, graph):
    sandbox.admin.add_fault(drop=True, count=1, method="PATCH")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        graph.patch(ASSIGNMENT_URL, json=BODY)
    assert graph.patch(ASSIGNMENT_URL, json=BODY).status_code == 204  # a new connection works
    entries = sandbox.admin.requests(method="PATCH")
    assert [(e["status"], e["fault"]) for e in entries] == [(None, "drop"), (204, None)]
    stats = sandbox.admin.stats()
    assert stats["dropped"] == 1
    assert stats["byStatus"]["dropped"] == 1


def test_latency_rule_delays_only_matching_requests(sandbox, graph):
    sandbox.admin.add_fault(latency_ms=300, method="PATCH")
    started = time.monotonic()
    assert graph.patch(ASSIGNMENT_URL, json=BODY).status_code == 204  # latency-only rules let the request through
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert graph.get(PROVIDER).status_code == 200
    assert time.monotonic() - started < 0.25


def test_latency_before_a_fault_status(sandbox, graph):
    sandbox.admin.add_fault(latency_ms=200, status=504)
    started = time.monotonic()
    assert graph.get(PROVIDER).status_code == 504
    assert time.monotonic() - started >= 0.2


async def test_global_latency_does_not_block_the_event_loop(sandbox, graph_token):
    sandbox.admin.set_latency(400)
    headers = {"Authorization": f"Bearer {graph_token}"}
    async with httpx.AsyncClient(base_url=sandbox.graph_url, headers=headers, timeout=10) as client:
        started = time.monotonic()
        responses = await asyncio.gather(*(client.get(PROVIDER) for _ in range(10)))
        elapsed = time.monotonic() - started
        assert {r.status_code for r in responses} == {200}
        assert 0.4 <= elapsed < 1.6  # ten sequential sleeps would take 4 s
        sandbox.admin.set_latency(0)
        started = time.monotonic()
        assert (await client.get(PROVIDER)).status_code == 200
        assert time.monotonic() - started < 0.3


def test_cli_latency_applies_and_survives_reset():
    from sandbox.process import start_sandbox_process

    with start_sandbox_process(seed_example=True, latency_ms=250) as sandbox:
        token = fetch_token(sandbox)["access_token"]
        sandbox.admin.reset(seed_example=True)
        started = time.monotonic()
        response = httpx.get(sandbox.graph_url + PROVIDER, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        assert time.monotonic() - started >= 0.25
        assert sandbox.admin.latency() == 250.0


def test_identity_endpoint_faults(sandbox):
    sandbox.admin.add_fault(target="identity", status=500, count=1)
    params = {"api-version": "2019-08-01", "resource": "https://graph.microsoft.com"}
    headers = {"X-IDENTITY-HEADER": sandbox.identity_header}
    failed = httpx.get(sandbox.identity_endpoint, params=params, headers=headers)
    assert failed.status_code == 500
    assert failed.json()["statusCode"] == 500
    assert httpx.get(sandbox.identity_endpoint, params=params, headers=headers).status_code == 200
    stats = sandbox.admin.stats()
    assert (stats["tokenRequests"], stats["tokensIssued"], stats["faultsInjected"]) == (2, 1, 1)


def test_graph_faults_do_not_touch_the_identity_endpoint(sandbox):
    sandbox.admin.add_fault(status=500)
    assert fetch_token(sandbox)["access_token"]


def test_faults_fire_before_authentication(sandbox):
    sandbox.admin.add_fault(status=429, retry_after=1)
    assert httpx.get(sandbox.graph_url + PROVIDER).status_code == 429


@pytest.mark.parametrize(
    "rule",
    [
        {"status": 429, "retryAftr": 5},
        {"status": 429, "probability": 1.5},
        {"status": 99},
        {"target": "storage", "status": 500},
        {"method": "PATCH"},
        {"status": 500, "count": -1},
        {"drop": "yes"},
    ],
)
def test_invalid_rules_are_refused(sandbox, rule):
    with pytest.raises(httpx.HTTPStatusError) as caught:
        sandbox.admin.add_fault(rule)
    assert caught.value.response.status_code == 400
    assert sandbox.admin.faults() == []


def test_clear_faults(sandbox, graph):
    sandbox.admin.add_fault(status=500)
    sandbox.admin.clear_faults()
    assert graph.get(PROVIDER).status_code == 200


def test_drop_after_applying_does_the_work_and_loses_the_answer(sandbox, graph):
    """A PATCH Graph applied whose answer never arrived: what makes an update's fate unknown."""
    sandbox.admin.add_fault(method="PATCH", drop_after_applying=True, count=1)
    with pytest.raises(httpx.TransportError):
        graph.patch(ASSIGNMENT_URL, json={**BODY, "completionPercentage": 77})
    assert sandbox.admin.activity(EXAMPLE_ASSIGNMENT_ID)["completionPercentage"] == 77
    (logged,) = sandbox.admin.requests(method="PATCH")
    assert (logged["status"], logged["fault"]) == (None, "drop")
