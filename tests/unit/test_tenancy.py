"""Tenants kept apart in the use cases (fakes of the ports), and what a customer tenant's token error means."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

from connector.adapters import tenants
from connector.adapters.tenants import Assertions, tenant_graph_failure, tenant_token_failure
from connector.app.apply_update import Delivery, Worker
from connector.app.reconcile import Reconciler, Tally
from connector.app.tenancy import pace_key
from connector.domain.envelope import Envelope, ReconcileSlice
from connector.domain.events import SELF_INITIATED
from connector.domain.failures import GraphFailure, Kind
from connector.settings import load_settings
from tests.support.signing import SECRET
from tests.unit.fakes import FakeGraph, FakeStore

ROOT = Path(__file__).resolve().parents[2]
APP = "c0ec7a11-0000-4000-8000-0000000000a1"
TENANT_A = "aaaaaaaa-0000-4000-8000-00000000000a"
TENANT_B = "bbbbbbbb-0000-4000-8000-00000000000b"
CREATING = {"webhookSecrets": [SECRET], "createMissing": True}
PROVIDERS = {"reg-a": {**CREATING, "tenantId": TENANT_A}, "reg-b": {**CREATING, "tenantId": TENANT_B},
             "reg-home": CREATING}  # fmt: skip
SETTINGS = load_settings({"CONNECTOR_PROVIDERS": json.dumps(PROVIDERS), "CONNECTOR_APP_CLIENT_ID": APP})


def statement(registration_id: str) -> bytes:
    """An xAPI statement's update for a missing activity, whose learner has the same email in every tenant."""
    xapi = {"statementId": "s1", "actor": {"mbox": "mailto:same.name@customer.example"}, "activityId": "course-1"}
    return (
        Envelope(
            id=f"{registration_id}-s1",
            registration_id=registration_id,
            event={"externalcourseActivityId": "xapi-1", "status": "inProgress"},
            source="xapi",
            event_time="2026-11-27T10:00:00Z",
            received_at="2026-11-27T10:00:00Z",
            extra={"xapi": xapi},
        )
        .to_json()
        .encode()
    )


async def test_a_learner_found_in_one_tenant_is_never_taken_for_anothers():
    graphs = {reg: FakeGraph() for reg in PROVIDERS}
    for reg, graph in graphs.items():
        graph.users.append({"id": f"learner-in-{reg}", "mail": "same.name@customer.example"})
        graph.contents.append({"id": f"content-in-{reg}", "externalId": "course-1"})
    store = FakeStore()

    async def graph_for(registration_id: str) -> FakeGraph:
        return graphs[registration_id]

    async def requeue(body: str, delay: int) -> None:
        raise AssertionError("nothing is throttled here")

    worker = Worker(SETTINGS, graph_for, store, store, requeue)
    for reg in PROVIDERS:
        assert (await worker.handle(Delivery(statement(reg), f"m-{reg}"))).status == "applied"
    created = {reg: [c.body for c in graph.calls if c.method == "POST"] for reg, graph in graphs.items()}
    assert {reg: (b["learnerUserId"], b["learningContentId"]) for reg, (b,) in created.items()} == {
        reg: (f"learner-in-{reg}", f"content-in-{reg}") for reg in PROVIDERS
    }
    learner_keys = {key for kind, key in store.lookups if kind == "learner"}
    (home_key,) = [key for key in learner_keys if "|" not in key]  # the managed identity's tenant: keys as before
    assert learner_keys == {home_key, f"{TENANT_A}|{home_key}", f"{TENANT_B}|{home_key}"}
    rows = {reg: store.row(reg, "ext:xapi-1") for reg in PROVIDERS}
    assert {reg: row.tenant_id for reg, row in rows.items()} == {"reg-a": TENANT_A, "reg-b": TENANT_B, "reg-home": None}
    assert rows["reg-a"].odata_type == SELF_INITIATED


def test_a_providers_pace_is_kept_per_registration_and_tenant():
    """A 429's hold learned in one tenant never holds the registration in another (its tenantId changed)."""
    moved = load_settings({"CONNECTOR_PROVIDERS": json.dumps({"reg-a": {**CREATING, "tenantId": TENANT_B}}),
                           "CONNECTOR_APP_CLIENT_ID": APP})  # fmt: skip
    assert (pace_key(SETTINGS, "reg-a"), pace_key(moved, "reg-a"), pace_key(SETTINGS, "reg-home")) == (
        f"reg-a|{TENANT_A}", f"reg-a|{TENANT_B}", "reg-home",
    )  # fmt: skip


ENTRA_ERROR = "{code}: {message}\r\nTrace ID: 1\r\nCorrelation ID: 2\r\nTimestamp: 2026-11-27 10:00:00Z"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("AADSTS65001", "adminConsentRequired"),
        ("AADSTS700016", "adminConsentRequired"),
        ("AADSTS7000229", "adminConsentRequired"),
        ("AADSTS90002", "tenantNotFound"),
    ],
)
def test_a_tenant_that_refuses_is_a_permanent_failure_naming_the_tenant_and_the_fix(code, expected):
    failure = tenant_token_failure(SETTINGS, TENANT_A, ENTRA_ERROR.format(code=code, message="refused"))
    reason = failure.reason()
    assert (failure.kind, reason["code"], reason["tenantId"]) == (Kind.PERMANENT, expected, TENANT_A)
    assert reason["message"].startswith(f"tenant {TENANT_A}: ")
    assert reason["message"].endswith(", then replay the dead letters")
    consent = f"https://login.microsoftonline.com/{TENANT_A}/adminconsent?client_id={APP}"
    assert reason["adminConsentUrl"] == (consent if expected == "adminConsentRequired" else None)
    assert (consent in reason["message"]) == (expected == "adminConsentRequired")


@pytest.mark.parametrize(
    "error",
    [
        ENTRA_ERROR.format(code="AADSTS70021", message="No matching federated identity record found"),
        "no client assertion: the managed identity gave no token for api://AzureADTokenExchange/.default (down)",
        "Cannot connect to host login.microsoftonline.com:443",
    ],
)
def test_any_other_token_failure_is_retried_with_its_first_line(error):
    failure = tenant_token_failure(SETTINGS, TENANT_B, error)
    assert (failure.kind, failure.code) == (Kind.TRANSIENT, "tokenUnavailable")
    assert failure.message == f"no token for tenant {TENANT_B}: {error.splitlines()[0]}"


def test_a_403_in_a_customer_tenant_names_the_tenant_and_the_consent_link():
    forbidden = GraphFailure(403, "Forbidden", "Missing role permissions on the request.", "req-1")
    failure = tenant_graph_failure(SETTINGS, TENANT_A, forbidden)
    consent = f"https://login.microsoftonline.com/{TENANT_A}/adminconsent?client_id={APP}"
    reason = failure.reason()
    assert (failure.kind, reason["status"], reason["requestId"]) == (Kind.PERMANENT, 403, "req-1")
    assert (reason["tenantId"], reason["adminConsentUrl"]) == (TENANT_A, consent)
    assert reason["message"] == (
        f"Missing role permissions on the request. (tenant {TENANT_A}: if the app's roles there were removed, a "
        f"Privileged Role Administrator of tenant {TENANT_A} grants admin consent at {consent}, then replay the dead "
        "letters)"
    )
    not_found = GraphFailure(404, "NotFound", "no such activity")
    assert tenant_graph_failure(SETTINGS, TENANT_A, not_found) is not_found


class FailingIdentity:
    """A managed identity endpoint that is down: every token request fails, counted."""

    def __init__(self) -> None:
        self.requests = 0

    async def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.requests += 1
        raise ServiceRequestError("identity endpoint unreachable")

    async def close(self) -> None:
        pass


async def test_an_identity_that_fails_is_asked_again_only_after_a_pause(monkeypatch):
    identity = FailingIdentity()
    assertions = Assertions(identity)  # type: ignore[arg-type]
    now = [1_000_000.0]
    monkeypatch.setattr(tenants.time, "time", lambda: now[0])
    for _ in range(50):  # every tenant's Graph requests meanwhile
        await assertions.refresh()
    assert identity.requests == 1
    with pytest.raises(ClientAuthenticationError, match="identity endpoint unreachable"):
        assertions()
    now[0] += tenants.ASSERTION_RETRY_SECONDS
    await assertions.refresh()
    assert identity.requests == 2


async def test_a_slice_of_a_provider_no_longer_configured_reads_no_tenant():
    async def no_graph(registration_id: str) -> None:
        raise AssertionError("no Graph may be read for a provider whose tenant is unknown")

    async def no_queue(text: str, delay: int) -> None:
        raise AssertionError("nothing is queued")

    reconciler = Reconciler(SETTINGS, FakeStore(), no_graph, no_queue, lambda: None)  # type: ignore[arg-type]
    assert await reconciler.run_slice(ReconcileSlice("reg-removed", "run-1")) == Tally()


PROBE = """
import asyncio, json, sys
import function_app
from connector import bootstrap


async def graph_of(registration_id):
    await bootstrap.current().graph(registration_id)
    await bootstrap.close()
    return "connector.adapters.tenants" in sys.modules


print(json.dumps(asyncio.run(graph_of(sys.argv[1]))))
"""


@pytest.mark.parametrize(("registration_id", "loaded"), [("reg-home", False), ("reg-a", True)])
def test_the_tenant_code_is_loaded_only_for_a_provider_in_another_tenant(registration_id, loaded):
    """Cold start of a deployment serving its own tenant stays as it was: the Graph client of the managed identity's
    tenant never imports connector.adapters.tenants. Checked in a fresh interpreter (no request is sent)."""
    env = {
        **os.environ,
        "CONNECTOR_PROVIDERS": json.dumps(PROVIDERS),
        "CONNECTOR_APP_CLIENT_ID": APP,
        "IDENTITY_ENDPOINT": "http://127.0.0.1:9/msi/token",
        "IDENTITY_HEADER": "unused",
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE, registration_id], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) is loaded
