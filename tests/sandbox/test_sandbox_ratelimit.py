"""Rate-limit mode: a request budget per app per tenant, 429 with Retry-After beyond it, counted in the stats."""

from __future__ import annotations

import time

import httpx
import pytest

from sandbox.seed import EXAMPLE_ASSIGNMENT_ID

from .conftest import ASSIGNMENT_URL, assert_graph_error, graph_client

PROVIDER = "/employeeExperience/learningProviders/01e8f81b-3060-4dec-acf0-0389665a0a38"
BODY = {"@odata.type": "#microsoft.graph.learningAssignment", "status": "completed"}
# So slow a refill that no token comes back during a test: the budget is exactly the burst.
NO_REFILL = 0.001


def statuses(client: httpx.Client, count: int) -> list[int]:
    return [client.get(PROVIDER).status_code for _ in range(count)]


def test_requests_beyond_the_budget_are_throttled(sandbox, graph):
    sandbox.admin.set_rate_limit(NO_REFILL, burst=3)
    assert statuses(graph, 5) == [200, 200, 200, 429, 429]
    response = graph.get(PROVIDER)
    # The wait for one token at 0.001/s is 1000 s: the header says it in seconds, the body in minutes, rounded up.
    assert_graph_error(response, 429, "tooManyRequests", "Retry after 17 minutes")
    assert 999 <= int(response.headers["Retry-After"]) <= 1000


def test_a_throttled_request_changes_nothing(sandbox, graph):
    sandbox.admin.set_rate_limit(NO_REFILL, burst=1)
    assert graph.get(PROVIDER).status_code == 200
    assert graph.patch(ASSIGNMENT_URL, json=BODY).status_code == 429
    assert sandbox.admin.activity(EXAMPLE_ASSIGNMENT_ID)["status"] == "notStarted"


def test_the_stats_count_allowed_and_throttled(sandbox, graph):
    sandbox.admin.set_rate_limit(NO_REFILL, burst=2)
    statuses(graph, 5)
    httpx.get(sandbox.graph_url + PROVIDER)  # no token: a 401, which no budget counts
    stats = sandbox.admin.stats()
    assert stats["rateLimit"]["allowed"] == 2
    assert stats["rateLimit"]["throttled"] == 3
    assert stats["byStatus"] == {"200": 2, "429": 3, "401": 1}
    (tenant,) = stats["rateLimit"]["byTenant"].values()
    assert tenant == {"allowed": 2, "throttled": 3}


def test_throttled_requests_are_marked_in_the_log(sandbox, graph):
    sandbox.admin.set_rate_limit(NO_REFILL, burst=1)
    statuses(graph, 2)
    assert [(e["status"], e["fault"]) for e in sandbox.admin.requests()] == [(200, None), (429, "rateLimit")]


def test_each_app_has_its_own_budget(sandbox, graph):
    sandbox.admin.set_rate_limit(NO_REFILL, burst=1)
    other_app = sandbox.admin.mint_token(client_id="0a0a0a0a-0000-4000-8000-00000000a9b0")
    assert statuses(graph, 2) == [200, 429]
    with graph_client(sandbox, other_app) as client:
        assert statuses(client, 2) == [200, 429]


def test_a_fixed_retry_after_and_no_header(sandbox, graph):
    sandbox.admin.set_rate_limit(NO_REFILL, burst=1, retry_after_seconds=150)
    graph.get(PROVIDER)
    response = graph.get(PROVIDER)
    assert response.headers["Retry-After"] == "150"
    assert response.json()["error"]["message"] == "Retry after 3 minutes"
    sandbox.admin.set_rate_limit(NO_REFILL, burst=1, retry_after_seconds=150, retry_after_header=False)
    graph.get(PROVIDER)
    response = graph.get(PROVIDER)
    assert response.status_code == 429
    assert "Retry-After" not in response.headers
    assert response.json()["error"]["message"] == "Retry after 3 minutes"


def test_the_budget_refills(sandbox, graph):
    sandbox.admin.set_rate_limit(20, burst=1)
    assert statuses(graph, 2)[-1] == 429
    deadline = time.monotonic() + 5
    while graph.get(PROVIDER).status_code == 429:  # a token comes back within 1/20 s
        assert time.monotonic() < deadline, "the budget never refilled"
    assert sandbox.admin.stats()["rateLimit"]["allowed"] >= 2


def test_the_limit_can_be_read_switched_off_and_is_reset(sandbox, graph):
    assert sandbox.admin.rate_limit() == {"default": None, "tenants": {}}
    described = sandbox.admin.set_rate_limit(10, burst=4)
    assert described == {
        "default": {"requestsPerSecond": 10, "burst": 4, "retryAfterSeconds": None, "retryAfterHeader": True},
        "tenants": {},
    }
    sandbox.admin.clear_rate_limit()
    assert sandbox.admin.rate_limit() == {"default": None, "tenants": {}}
    sandbox.admin.set_rate_limit(NO_REFILL, burst=1)
    sandbox.admin.reset(seed_example=True)
    assert sandbox.admin.rate_limit() == {"default": None, "tenants": {}}
    assert statuses(graph, 3) == [200, 200, 200]


def test_the_burst_defaults_to_one_second_of_requests(sandbox):
    assert sandbox.admin.set_rate_limit(25)["default"]["burst"] == 25
    assert sandbox.admin.set_rate_limit(0.5)["default"]["burst"] == 1


@pytest.mark.parametrize(
    "settings",
    [
        {"requestsPerSecond": 0},
        {"requestsPerSecond": -1},
        {"requestsPerSecond": "10"},
        {"requestsPerSecond": 10, "burst": 0.5},
        {"requestsPerSecond": 10, "retryAfterSeconds": -1},
        {"requestsPerSecond": 10, "retryAfterHeader": "no"},
        {"requestsPerSecond": 10, "tenantId": ""},
        {"requestsPerSecond": 10, "perToken": True},
        {"burst": 3},
        [10],
    ],
)
def test_bad_settings_are_refused(sandbox, settings):
    response = httpx.put(sandbox.admin_url + "/rate-limit", json=settings)
    assert response.status_code == 400
    assert "error" in response.json()
    assert sandbox.admin.rate_limit() == {"default": None, "tenants": {}}
