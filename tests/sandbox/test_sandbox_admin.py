"""Response headers, the request log and its redaction, counters, seeding, reset, and the CLI/launcher."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from sandbox.process import start_sandbox_process
from sandbox.seed import EXAMPLE_ASSIGNMENT_ID

from .conftest import ASSIGNMENT_URL, fetch_token

ASSIGNMENT = "#microsoft.graph.learningAssignment"
BODY = {"@odata.type": ASSIGNMENT, "status": "completed", "completionPercentage": 100}
REPO_ROOT = Path(__file__).resolve().parents[2]
PROVIDER = "/employeeExperience/learningProviders/01e8f81b-3060-4dec-acf0-0389665a0a38"


def is_guid(value: str) -> bool:
    return str(uuid.UUID(value)) == value


# --- headers -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("PATCH", ASSIGNMENT_URL, 204),
        ("GET", PROVIDER, 200),
        ("GET", "/users/nobody", 404),
        ("PATCH", ASSIGNMENT_URL + "x", 404),
    ],
)
def test_every_response_has_request_ids_and_date(graph, method, path, status):
    response = graph.request(method, path, json=BODY if method == "PATCH" else None)
    assert response.status_code == status
    assert is_guid(response.headers["request-id"])
    assert is_guid(response.headers["client-request-id"])
    assert response.headers["Date"].endswith(" GMT")


def test_client_request_id_is_echoed(graph):
    response = graph.get(PROVIDER, headers={"client-request-id": "my-correlation-id"})
    assert response.headers["client-request-id"] == "my-correlation-id"
    error = graph.get("/users/nobody", headers={"client-request-id": "abc"})
    assert error.json()["error"]["innerError"]["client-request-id"] == "abc"


def test_request_ids_are_unique(graph):
    assert len({graph.get(PROVIDER).headers["request-id"] for _ in range(5)}) == 5


# --- request log -------------------------------------------------------------------------------------------
def test_request_log_records_graph_requests(sandbox, graph, graph_token):
    fetch_token(sandbox)  # identity requests are not Graph requests
    response = graph.patch(ASSIGNMENT_URL, json=BODY, params={"$select": "id"}, headers={"client-request-id": "c-1"})
    graph.patch(ASSIGNMENT_URL, content=b"{broken", headers={"Content-Type": "application/json"})
    graph.get(f"{PROVIDER}/learningCourseActivities(externalcourseActivityId='a%27%27b%2Fc')")
    entries = sandbox.admin.requests()
    assert [e["method"] for e in entries] == ["PATCH", "PATCH", "GET"]
    first, broken, lookup = entries
    assert first["path"] == ASSIGNMENT_URL  # decoded, without the /v1.0 prefix
    assert first["query"] == {"$select": "id"}
    assert first["body"] == BODY
    assert first["status"] == 204
    assert first["requestId"] == response.headers["request-id"]
    assert first["clientRequestId"] == "c-1"
    assert first["headers"]["Authorization"] == "Bearer <redacted>"
    assert first["headers"]["client-request-id"] == "c-1"
    assert first["fault"] is None
    assert first["durationMs"] >= 0
    assert first["at"].endswith("Z")
    assert broken["body"] == "{broken"
    assert broken["status"] == 400
    assert lookup["path"] == f"{PROVIDER}/learningCourseActivities(externalcourseActivityId='a''b/c')"
    assert lookup["rawPath"] == f"{PROVIDER}/learningCourseActivities(externalcourseActivityId='a%27%27b%2Fc')"
    assert lookup["body"] is None
    assert [e["seq"] for e in entries] == sorted(e["seq"] for e in entries)
    everything = json.dumps(sandbox.admin.requests())
    assert graph_token not in everything
    assert graph_token.split(".")[2] not in everything


def test_request_log_filters_and_clear(sandbox, graph):
    graph.get(PROVIDER)
    graph.patch(ASSIGNMENT_URL, json=BODY)
    assert [e["method"] for e in sandbox.admin.requests(method="patch")] == ["PATCH"]
    assert len(sandbox.admin.requests(path_contains="learningCourseActivities")) == 1
    last = sandbox.admin.requests()[-1]["seq"]
    sandbox.admin.clear_requests()
    assert sandbox.admin.requests() == []
    graph.get(PROVIDER)
    (entry,) = sandbox.admin.requests(since_seq=last)
    assert entry["seq"] == last + 1  # seq keeps counting across clears


def test_wait_for_requests(sandbox, graph):
    graph.patch(ASSIGNMENT_URL, json=BODY)
    entries = sandbox.admin.wait_for_requests(lambda es: len(es) == 1, method="PATCH", timeout=2)
    assert entries[0]["status"] == 204
    with pytest.raises(TimeoutError):
        sandbox.admin.wait_for_requests(lambda es: len(es) == 2, method="PATCH", timeout=0.2)


def test_request_log_is_bounded():
    with start_sandbox_process(seed_example=True, log_limit=3) as sandbox:
        token = fetch_token(sandbox)["access_token"]
        with httpx.Client(base_url=sandbox.graph_url, headers={"Authorization": f"Bearer {token}"}) as client:
            for _ in range(5):
                client.get(PROVIDER)
        assert [e["seq"] for e in sandbox.admin.requests()] == [3, 4, 5]
        assert sandbox.admin.stats()["requests"] == 5


# --- stats, seed, reset ------------------------------------------------------------------------------------
def test_stats_count_by_method_and_status(sandbox, graph):
    graph.patch(ASSIGNMENT_URL, json=BODY)
    graph.patch(ASSIGNMENT_URL, json={"status": "completed"})
    graph.get(PROVIDER)
    stats = sandbox.admin.stats()
    assert stats["requests"] == 3
    assert stats["byMethod"] == {"PATCH": 2, "GET": 1}
    assert stats["byStatus"] == {"204": 1, "400": 1, "200": 1}
    assert stats["byMethodStatus"] == {"PATCH 204": 1, "PATCH 400": 1, "GET 200": 1}
    assert stats["inFlight"] == 0
    assert stats["maxInFlight"] >= 1
    assert stats["cpuSeconds"] >= 0
    assert stats["server"]["pid"] == sandbox.pid


def test_seed_returns_what_it_stored_and_refuses_bad_documents(sandbox):
    stored = sandbox.admin.seed(
        providers=[{"id": "p-2", "isCourseActivitySyncEnabled": False}],
        activities=[
            {
                "@odata.type": ASSIGNMENT,
                "learningProviderId": "p-2",
                "externalCourseActivityId": "e-1",
                "learnerUserId": "u-1",
                "status": "notStarted",
            }
        ],
    )
    (activity,) = stored["activities"]
    assert activity["id"].startswith("u-1:")
    assert activity["externalcourseActivityId"] == "e-1"
    assert activity["assignmentType"] is None
    assert "externalCourseActivityId" not in activity
    assert stored["providers"][0]["isCourseActivitySyncEnabled"] is False
    for bad in ({"activities": [{"id": "x"}]}, {"providerz": []}, {"users": [{"displayName": "no id"}]}, [1]):
        response = httpx.post(sandbox.admin_url + "/seed", json=bad)
        assert response.status_code == 400, bad
        assert "error" in response.json()


def test_reset_empties_the_tenant(sandbox, graph):
    sandbox.admin.add_fault(status=500, path_contains="/nothing-matches")
    graph.get(PROVIDER)
    assert sandbox.admin.reset() is None
    assert sandbox.admin.activities() == []
    assert sandbox.admin.faults() == []
    assert sandbox.admin.requests() == []
    assert sandbox.admin.stats()["requests"] == 0
    state = sandbox.admin.state()
    assert state["providers"] == []
    assert state["users"] == []
    assert {sp["displayName"] for sp in state["servicePrincipals"]} == {"Microsoft Graph", "sandbox-function-app"}
    seeded = sandbox.admin.reset(seed_example=True)
    assert {a["id"] for a in seeded["activities"]} == {a["id"] for a in sandbox.admin.activities()}
    assert sandbox.admin.activity(EXAMPLE_ASSIGNMENT_ID)["status"] == "notStarted"


def test_activities_filter_by_provider(sandbox):
    assert len(sandbox.admin.activities("01e8f81b-3060-4dec-acf0-0389665a0a38")) == 2
    assert sandbox.admin.activities("nope") == []
    assert sandbox.admin.activity("nope") is None


# --- CLI and launcher --------------------------------------------------------------------------------------
def test_cli_seed_file_and_identity_header(tmp_path):
    seed = {
        "providers": [{"id": "p-file"}],
        "users": [{"id": "u-file", "mail": "file@contoso.example"}],
    }
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed), encoding="utf-8")
    with start_sandbox_process(seed_files=[path], identity_header="s3cret") as sandbox:
        assert sandbox.identity_header == "s3cret"
        assert sandbox.identity_env() == {"IDENTITY_ENDPOINT": sandbox.identity_endpoint, "IDENTITY_HEADER": "s3cret"}
        state = sandbox.admin.state()
        assert [p["id"] for p in state["providers"]] == ["p-file"]
        assert [u["id"] for u in state["users"]] == ["u-file"]
        assert state["activities"] == []


def test_cli_prints_one_ready_line_and_exits_cleanly_on_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        ready = json.loads(process.stdout.readline())
        assert set(ready) == {"graph", "identityEndpoint", "identityHeader", "admin"}
        assert ready["graph"].startswith("http://127.0.0.1:")
        assert ready["graph"].endswith("/v1.0")
        assert ready["identityEndpoint"] == ready["graph"].removesuffix("/v1.0") + "/msi/token"
        assert httpx.get(ready["admin"]).status_code == 200
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert out == ""  # nothing after the ready line


def test_launcher_reports_a_sandbox_that_cannot_start(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"activities": [{"id": "no-type"}]}', encoding="utf-8")
    with pytest.raises(RuntimeError, match=r"@odata\.type"):
        start_sandbox_process(seed_files=[bad])
