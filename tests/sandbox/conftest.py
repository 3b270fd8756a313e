"""Fixtures for the Graph sandbox tests: one real sandbox process per session, reset before each test."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.process import SandboxProcess, start_sandbox_process
from sandbox.seed import (
    EXAMPLE_ASSIGNMENT_ID,
    EXAMPLE_CONTENT_ID,
    EXAMPLE_LEARNER_ID,
    EXAMPLE_PROVIDER_ID,
    EXAMPLE_SELF_INITIATED_ID,
)

REG = EXAMPLE_PROVIDER_ID
ACTIVITIES = f"/employeeExperience/learningProviders/{REG}/learningCourseActivities"
ASSIGNMENT_URL = f"{ACTIVITIES}/{EXAMPLE_ASSIGNMENT_ID}"
SELF_URL = f"{ACTIVITIES}/{EXAMPLE_SELF_INITIATED_ID}"


def new_assignment(**overrides: Any) -> dict[str, Any]:
    """A create body for the example tenant; an override of ``...`` leaves the property out."""
    body = {
        "@odata.type": "#microsoft.graph.learningAssignment",
        "learnerUserId": EXAMPLE_LEARNER_ID,
        "learningContentId": EXAMPLE_CONTENT_ID,
        "learningProviderId": REG,
        "externalcourseActivityId": "lms-enrolment-42",
        "status": "notStarted",
        "assignmentType": "recommended",
        "dueDateTime": {"dateTime": "2030-01-01T00:00:00.0000000", "timeZone": "UTC"},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


@pytest.fixture(scope="session")
def sandbox_process() -> Iterator[SandboxProcess]:
    with start_sandbox_process(seed_example=True) as process:
        yield process
    assert process.process.returncode == 0, process.stderr_tail()


@pytest.fixture
def sandbox(sandbox_process: SandboxProcess) -> SandboxProcess:
    """The session's sandbox, reset to the reference page's example tenant."""
    sandbox_process.admin.reset(seed_example=True)
    return sandbox_process


def fetch_token(sandbox: SandboxProcess, **params: str) -> dict[str, Any]:
    """A token from the managed-identity endpoint, the way azure.identity asks for it."""
    response = httpx.get(
        sandbox.identity_endpoint,
        params={"api-version": "2019-08-01", "resource": "https://graph.microsoft.com", **params},
        headers={"X-IDENTITY-HEADER": sandbox.identity_header},
    )
    response.raise_for_status()
    return response.json()


@pytest.fixture(scope="session")
def graph_token(sandbox_process: SandboxProcess) -> str:
    # Tokens outlive resets (the signing key is kept), so one per session is enough.
    return fetch_token(sandbox_process)["access_token"]


def graph_client(sandbox: SandboxProcess, token: str | None) -> httpx.Client:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=sandbox.graph_url, headers=headers, timeout=10)


@pytest.fixture
def graph(sandbox: SandboxProcess, graph_token: str) -> Iterator[httpx.Client]:
    """An httpx client on the sandbox's /v1.0 with a valid default-roles token."""
    with graph_client(sandbox, graph_token) as client:
        yield client


def assert_graph_error(response: httpx.Response, status: int, code: str, message: str) -> None:
    """Status, Graph's error envelope, and innerError ids that match the response headers."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert (error["code"], error["message"]) == (code, message)
    inner = error["innerError"]
    assert inner["request-id"] == response.headers["request-id"]
    assert inner["client-request-id"] == response.headers["client-request-id"]
    assert len(inner["date"]) == 19  # Graph's "2024-01-31T12:34:56"


def token_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
