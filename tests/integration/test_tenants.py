"""One deployment serving providers in several customer tenants, through the real `function_app.app`: Azurite, the
Graph sandbox playing Entra for several tenants over TLS, and the real azure.identity credentials (the managed
identity's token as the client assertion of ClientAssertionCredential, one per tenant).

Every tenant, the managed identity's own included, holds both tenant providers and alike activities (same external
ids), so that an update reaching the wrong tenant would show there.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import os
import sys
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from connector import bootstrap
from connector.adapters.tenants import Assertions
from connector.domain.events import ASSIGNMENT
from sandbox.process import SandboxProcess, start_sandbox_process
from sandbox.seed import TENANT_ID as HOME_TENANT
from tests.conftest import BASE_ENV
from tests.integration.conftest import Connector, QueueRun, empty_storage
from tests.support.functions import call_http_async
from tests.support.signing import SECRET, signed_headers
from tests.support.telemetry import span_exporter
from tests.support.xapi import XAPI_KEY, XAPI_SECRET, basic, progressed

APP_ID = "c0ec7a11-0000-4000-8000-0000000000a1"
TENANT_A = "aaaaaaaa-0000-4000-8000-00000000000a"
TENANT_B = "bbbbbbbb-0000-4000-8000-00000000000b"
NO_SUCH_TENANT = "dddddddd-0000-4000-8000-00000000000d"
REG_A = "a0a0a0a0-1111-4111-8111-0000000000a0"
REG_B = "b0b0b0b0-1111-4111-8111-0000000000b0"
REG_GONE = "d0d0d0d0-1111-4111-8111-0000000000d0"
TENANT_OF = {REG_A: TENANT_A, REG_B: TENANT_B}
ACTIVITIES = 10  # per provider and tenant


def graph_id(tenant: str, registration_id: str, index: int) -> str:
    """Graph ids differ per tenant, as Graph's do; external ids are the same everywhere."""
    return f"{tenant[:4]}-{registration_id[:4]}-{index}"


def seed(admin: Any, tenant: str | None) -> None:
    """Both tenant providers, enabled, with ACTIVITIES assignments each, notStarted."""
    where = tenant or HOME_TENANT
    admin.seed(
        tenant=tenant,
        providers=[
            {"id": reg, "displayName": f"LMS {reg[:4]}", "isCourseActivitySyncEnabled": True} for reg in TENANT_OF
        ],
        activities=[
            {
                "@odata.type": ASSIGNMENT,
                "id": graph_id(where, reg, i),
                "externalcourseActivityId": f"enrolment-{i}",
                "learnerUserId": "learner-1",
                "learningContentId": "content-1",
                "learningProviderId": reg,
                "status": "notStarted",
                "assignmentType": "required",
            }
            for reg in TENANT_OF
            for i in range(ACTIVITIES)
        ],
    )


def progress(index: int, percent: int) -> dict[str, Any]:
    return {
        "@odata.type": ASSIGNMENT,
        "externalcourseActivityId": f"enrolment-{index}",
        "status": "inProgress",
        "completionPercentage": percent,
    }


@pytest.fixture(scope="module")
def tls_sandbox() -> Any:
    """A sandbox that also listens with TLS (azure-identity takes only an https authority). Its throwaway CA is added
    to the trust of the app's TLS context, as an operating system's trust store would hold it: the one thing here
    that differs from Azure, where Entra's certificate chains to a public root."""
    with start_sandbox_process(https=True) as running:
        bootstrap.tls_context().load_verify_locations(cafile=running.ca_path)
        yield running


@pytest_asyncio.fixture
async def connector(azurite, tls_sandbox: SandboxProcess, monkeypatch) -> AsyncIterator[Connector]:
    """The app's settings with two providers in two consenting customer tenants, and one in a tenant that does not
    exist, besides the test-wide providers of the managed identity's own tenant."""
    providers = json.loads(BASE_ENV["CONNECTOR_PROVIDERS"])
    for reg, tenant in (*TENANT_OF.items(), (REG_GONE, NO_SUCH_TENANT)):
        providers[reg] = {"webhookSecrets": [SECRET], "tenantId": tenant}
    providers[REG_A]["xapiCredentials"] = [{"key": XAPI_KEY, "secret": XAPI_SECRET}]
    env = {
        **BASE_ENV,
        "CONNECTOR_PROVIDERS": json.dumps(providers),
        "CONNECTOR_APP_CLIENT_ID": APP_ID,
        "AZURE_AUTHORITY_HOST": tls_sandbox.authority_url,
        "AzureWebJobsStorage": azurite.connection_string,
        "GRAPH_BASE_URL": tls_sandbox.graph_url,
        **tls_sandbox.identity_env(),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    admin = tls_sandbox.admin
    admin.reset(seed_example=True)
    admin.register_app(APP_ID, display_name="Learning activity connector")
    seed(admin, None)
    for tenant in TENANT_OF.values():
        admin.put_tenant(tenant)
        admin.grant_consent(tenant, APP_ID)
        seed(admin, tenant)
    await empty_storage(azurite)
    yield Connector(azurite, tls_sandbox)
    await bootstrap.close()


async def deliver_all(connector: Connector, sends: list[tuple[str, Any]]) -> list[QueueRun]:
    """Each callback through the webhook function, then every message through the queue function at once."""
    messages = []
    for registration_id, body in sends:
        reply = connector.post(registration_id, body)
        assert reply.status == 202, reply.body
        messages += zip(reply.messages, reply.body["ids"], strict=True)
    return await asyncio.gather(*(connector.run(text, message_id=mid) for text, mid in messages))


def failures(runs: list[QueueRun]) -> list[tuple[BaseException | None, Any]]:
    """What went wrong per run: an exception, or a dead letter; [] when every update was applied or skipped."""
    return [(run.error, run.poison) for run in runs if run.error is not None or run.poison is not None]


def states(connector: Connector, registration_id: str, tenant: str) -> dict[str, tuple[str, int | None]]:
    activities = connector.graph.activities(registration_id, tenant=tenant)
    return {a["externalcourseActivityId"]: (a["status"], a.get("completionPercentage")) for a in activities}


UNTOUCHED = {f"enrolment-{i}": ("notStarted", None) for i in range(ACTIVITIES)}


async def status(registration_id: str, activity_id: str) -> Any:
    headers = signed_headers(b"", content_type=None)
    params = {"registrationId": registration_id, "id": activity_id}
    return (await call_http_async("course_activity_status", "GET", params, headers=headers)).body


async def test_two_providers_in_two_tenants_updated_at_once_change_only_their_own_tenant(connector):
    sends = [(reg, progress(i, 10 + i)) for i in range(ACTIVITIES) for reg in TENANT_OF]
    assert failures(await deliver_all(connector, sends)) == []

    applied = {f"enrolment-{i}": ("inProgress", 10 + i) for i in range(ACTIVITIES)}
    assert (states(connector, REG_A, TENANT_A), states(connector, REG_B, TENANT_A)) == (applied, UNTOUCHED)
    assert (states(connector, REG_B, TENANT_B), states(connector, REG_A, TENANT_B)) == (applied, UNTOUCHED)
    assert (states(connector, REG_A, HOME_TENANT), states(connector, REG_B, HOME_TENANT)) == (UNTOUCHED, UNTOUCHED)
    for reg, tenant in TENANT_OF.items():
        paths = {entry["path"].split("/")[3] for entry in connector.graph.requests(tenant=tenant)}
        assert paths == {reg}  # /employeeExperience/learningProviders/{registrationId}/...
    assert connector.graph.requests(tenant=HOME_TENANT) == []
    seen = await status(REG_A, "enrolment-3")
    assert (seen["tenantId"], seen["state"], seen["learningCourseActivityId"]) == (
        TENANT_A, "applied", graph_id(TENANT_A, REG_A, 3),
    )  # fmt: skip


async def test_a_revoked_consent_dead_letters_only_that_tenants_updates_with_the_admins_fix(connector):
    connector.graph.revoke_consent(TENANT_A, APP_ID)
    revoked, unknown, fine = await deliver_all(
        connector, [(REG_A, progress(0, 50)), (REG_GONE, progress(0, 50)), (REG_B, progress(0, 50))]
    )

    assert (failures([fine]), states(connector, REG_B, TENANT_B)["enrolment-0"]) == ([], ("inProgress", 50))
    consent_url = f"{connector.sandbox.authority_url}/{TENANT_A}/adminconsent?client_id={APP_ID}"
    reason = json.loads(revoked.poison)["deadLetter"]
    assert (reason["code"], reason["tenantId"], reason["adminConsentUrl"]) == (
        "adminConsentRequired", TENANT_A, consent_url,
    )  # fmt: skip
    assert reason["message"] == (
        f"tenant {TENANT_A}: no admin consent to the connector's app {APP_ID} (AADSTS65001: never given, or revoked); "
        f"a Privileged Role Administrator of tenant {TENANT_A} grants admin consent at {consent_url}, then replay the "
        "dead letters"
    )
    gone = json.loads(unknown.poison)["deadLetter"]
    assert (gone["code"], gone["tenantId"]) == ("tenantNotFound", NO_SUCH_TENANT)
    assert "correct the provider's tenantId in CONNECTOR_PROVIDERS" in gone["message"]
    assert states(connector, REG_A, TENANT_A) == UNTOUCHED
    seen = await status(REG_A, "enrolment-0")
    assert (seen["state"], seen["tenantId"], seen["lastError"]["code"]) == ("failed", TENANT_A, "adminConsentRequired")

    connector.graph.grant_consent(TENANT_A, APP_ID)  # what the tenant's administrator does; then the replay
    replayed = json.loads(revoked.poison)
    del replayed["deadLetter"]
    run = await connector.run(json.dumps(replayed), message_id="replayed")
    assert (failures([run]), states(connector, REG_A, TENANT_A)["enrolment-0"]) == ([], ("inProgress", 50))


async def test_an_app_whose_service_principal_was_deleted_is_dead_lettered_with_the_consent_link(connector):
    connector.graph.revoke_consent(TENANT_B, APP_ID, delete_service_principal=True)  # Entra: AADSTS7000229
    (run,) = await deliver_all(connector, [(REG_B, progress(1, 50))])
    reason = json.loads(run.poison)["deadLetter"]
    consent_url = f"{connector.sandbox.authority_url}/{TENANT_B}/adminconsent?client_id={APP_ID}"
    assert (reason["code"], reason["tenantId"], reason["adminConsentUrl"]) == (
        "adminConsentRequired", TENANT_B, consent_url,
    )  # fmt: skip
    assert "has no service principal in the tenant (AADSTS7000229: " in reason["message"]
    assert states(connector, REG_B, TENANT_B) == UNTOUCHED


async def test_a_consent_without_the_roles_is_a_403_naming_the_tenant_and_the_consent_link(connector):
    connector.graph.grant_consent(TENANT_A, APP_ID, roles=["LearningSelfInitiatedCourse.ReadWrite.All"])
    (run,) = await deliver_all(connector, [(REG_A, progress(2, 50))])
    reason = json.loads(run.poison)["deadLetter"]
    consent_url = f"{connector.sandbox.authority_url}/{TENANT_A}/adminconsent?client_id={APP_ID}"
    assert (reason["status"], reason["tenantId"], reason["adminConsentUrl"]) == (403, TENANT_A, consent_url)
    assert (
        f"(tenant {TENANT_A}: if the app's roles there were removed, a Privileged Role Administrator"
        in (reason["message"])
    )
    assert states(connector, REG_A, TENANT_A) == UNTOUCHED


async def test_an_xapi_statement_of_a_tenants_provider_reaches_only_its_tenant(connector):
    registration = "5e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
    for tenant in (None, TENANT_A, TENANT_B):  # the same external id for REG_A everywhere
        where = tenant or HOME_TENANT
        activity = {"id": f"{where[:4]}-xapi", "externalcourseActivityId": registration, "learningProviderId": REG_A,
                    "@odata.type": ASSIGNMENT, "learnerUserId": "learner-1", "learningContentId": "content-1",
                    "status": "notStarted", "assignmentType": "required"}  # fmt: skip
        connector.graph.seed(tenant=tenant, activities=[activity])
    headers = {"content-type": "application/json", "authorization": basic(), "x-experience-api-version": "1.0.3"}
    body = json.dumps([progressed(40, registration=registration)])
    reply = await call_http_async("xapi_statements", "POST", {"registrationId": REG_A}, body=body, headers=headers)
    assert reply.status == 200, reply.body
    assert failures(await connector.drain()) == []
    status_of = [states(connector, REG_A, t)[registration] for t in (TENANT_A, TENANT_B, HOME_TENANT)]
    assert status_of == [("inProgress", 40), ("notStarted", None), ("notStarted", None)]


async def test_reconcile_reads_and_corrects_a_tenants_provider_in_its_own_tenant(connector, monkeypatch):
    from tests.support.functions import indexed

    assert failures(await deliver_all(connector, [(REG_A, progress(3, 60))])) == []
    seed(connector.graph, TENANT_A)  # someone set REG_A's activities back to notStarted in tenant A's Graph
    monkeypatch.setenv("CONNECTOR_RECONCILE_SCHEDULE", "0 0 3 * * *")
    await indexed()["reconcile_course_activities"].get_user_function()(None)
    assert failures(await connector.drain()) == []  # the slices, then the correction they queued
    assert states(connector, REG_A, TENANT_A)["enrolment-3"] == ("inProgress", 60)
    assert states(connector, REG_A, TENANT_B) == UNTOUCHED
    assert states(connector, REG_A, HOME_TENANT) == UNTOUCHED


async def test_a_throttled_tenant_does_not_hold_up_the_other(connector):
    connector.graph.set_rate_limit(0.01, burst=1, retry_after_seconds=60, tenant=TENANT_A)
    sends = [(reg, progress(i, 30)) for i in range(ACTIVITIES) for reg in TENANT_OF]
    assert failures(await deliver_all(connector, sends)) == []
    assert states(connector, REG_B, TENANT_B) == {f"enrolment-{i}": ("inProgress", 30) for i in range(ACTIVITIES)}
    b_requests = connector.graph.requests(tenant=TENANT_B)
    assert (len(b_requests), {e["status"] for e in b_requests}) == (2 * ACTIVITIES, {200, 204})  # a GET, a PATCH each
    a_throttled = [e for e in connector.graph.requests(tenant=TENANT_A) if e["status"] == 429]
    a_applied = [s for s in states(connector, REG_A, TENANT_A).values() if s == ("inProgress", 30)]
    assert len(a_throttled) > 0
    assert connector.graph.stats()["rateLimit"]["byTenant"][TENANT_A]["throttled"] == len(a_throttled)
    # A's other updates, throttled or held by A's pace after its 429, wait on the queue for Graph's 60 s; none of B's.
    assert await connector.count() == ACTIVITIES - len(a_applied)


async def test_one_token_request_per_tenant_under_load(connector):
    for wave in range(2):
        sends = [(reg, progress(i, 40 + wave)) for i in range(ACTIVITIES) for reg in TENANT_OF]
        assert failures(await deliver_all(connector, sends)) == []
    stats = connector.graph.stats()
    assert stats["tokenEndpoint"]["byTenant"] == {
        TENANT_A: {"requests": 1, "issued": 1},
        TENANT_B: {"requests": 1, "issued": 1},
    }
    assert stats["tokenRequests"] == 1  # the managed identity's token, the assertion of both tenants


_watched: dict[str, Any] = {"events": None}
_BLOCKING = {"socket.connect", "socket.getaddrinfo", "socket.sendto", "socket.sendmsg", "open", "time.sleep"}


def _audit(event: str, args: Any) -> None:
    if _watched["events"] is not None and event in _BLOCKING:
        _watched["events"].append(event)


async def test_the_assertion_callback_makes_no_blocking_call_on_the_event_loop(connector, monkeypatch):
    """azure.identity calls the assertion func synchronously on the loop: it must only hand over what the async path
    fetched. Python's audit hooks see every socket connect, DNS lookup, file open and sleep made while it runs."""
    if not _watched.get("hooked"):
        sys.addaudithook(_audit)  # for the rest of the process: it records only while a callback runs
        _watched["hooked"] = True
    calls: list[tuple[bool, list[str]]] = []
    original = Assertions.__call__

    def watched(self: Assertions) -> str:
        asyncio.get_running_loop()  # raises off the loop
        on_loop_thread = threading.current_thread() is threading.main_thread()
        _watched["events"] = seen = []
        try:
            return original(self)
        finally:
            _watched["events"] = None
            calls.append((on_loop_thread, seen))

    monkeypatch.setattr(Assertions, "__call__", watched)
    assert failures(await deliver_all(connector, [(reg, progress(1, 60)) for reg in TENANT_OF])) == []
    assert calls == [(True, []), (True, [])]  # once per tenant, on the loop, nothing blocking
    assert connector.graph.stats()["tokenRequests"] == 1  # fetched once, by the async managed-identity credential


async def test_a_providers_event_cannot_reach_another_tenant(connector):
    b_only = "bbbb-only-activity"
    (theirs,) = [a for a in connector.graph.activities(REG_A, tenant=TENANT_B) if a["id"].endswith("-0")]
    b_only_activity = {**theirs, "id": b_only, "externalcourseActivityId": "b-only"}
    connector.graph.seed(tenant=TENANT_B, activities=[b_only_activity])
    # A Graph id that exists only in tenant B, named by provider A: looked up in A, not found, never patched.
    by_id = {"@odata.type": ASSIGNMENT, "learningCourseActivityId": b_only, "status": "completed"}
    (named,) = await deliver_all(connector, [(REG_A, by_id)])
    assert json.loads(named.poison)["deadLetter"]["code"] == "activityNotFound"
    # A bare queue message naming tenant B: an unknown field, dead-lettered, nothing sent.
    bare = {**progress(2, 70), "registrationId": REG_A, "tenantId": TENANT_B}
    rejected = await connector.run(json.dumps(bare), message_id="bare")
    assert json.loads(rejected.poison)["deadLetter"]["details"][0]["target"] == "tenantId"
    # A webhook's envelope with tenant B written into it: the settings decide, the update goes to tenant A.
    reply = connector.post(REG_A, progress(3, 70))
    forged = {**json.loads(reply.messages[0]), "tenantId": TENANT_B, "tenant": TENANT_B}
    applied = await connector.run(json.dumps(forged), message_id="forged")
    assert (failures([applied]), states(connector, REG_A, TENANT_A)["enrolment-3"]) == ([], ("inProgress", 70))
    assert connector.graph.requests(tenant=TENANT_B) == []
    assert states(connector, REG_A, TENANT_B) == {**UNTOUCHED, "b-only": ("notStarted", None)}


async def test_a_provider_moved_to_another_tenant_never_sends_the_old_tenants_graph_id_there(connector, monkeypatch):
    assert failures(await deliver_all(connector, [(REG_A, progress(4, 20))])) == []
    providers = json.loads(os.environ["CONNECTOR_PROVIDERS"])
    providers[REG_A]["tenantId"] = TENANT_B
    monkeypatch.setenv("CONNECTOR_PROVIDERS", json.dumps(providers))  # new settings, new parts

    assert failures(await deliver_all(connector, [(REG_A, progress(4, 80))])) == []
    b_requests = [(e["method"], e["path"].split("/")[-1]) for e in connector.graph.requests(tenant=TENANT_B)]
    assert b_requests == [
        ("GET", "learningCourseActivities(externalcourseActivityId='enrolment-4')"),
        ("PATCH", graph_id(TENANT_B, REG_A, 4)),
    ]
    assert (states(connector, REG_A, TENANT_A)["enrolment-4"], states(connector, REG_A, TENANT_B)["enrolment-4"]) == (
        ("inProgress", 20), ("inProgress", 80),
    )  # fmt: skip


async def test_check_reports_each_tenants_token_and_consent(connector):
    from connector.ops.check import run_checks

    connector.graph.revoke_consent(TENANT_B, APP_ID)
    findings = [str(f) for f in await run_checks()]
    consent_b = f"{connector.sandbox.authority_url}/{TENANT_B}/adminconsent?client_id={APP_ID}"
    tenant_lines = [f for f in findings if f.split("] ", 1)[1].startswith("tenant ") and " the app " not in f]
    assert tenant_lines == [
        f"[ok] tenant {TENANT_A} (provider {REG_A}): a token for https://graph.microsoft.com/.default was obtained: "
        "admin consent in place",
        f"[fail] tenant {TENANT_B} (provider {REG_B}): no admin consent to the connector's app {APP_ID} (AADSTS65001: "
        f"never given, or revoked)\n       fix: a Privileged Role Administrator of tenant {TENANT_B} grants admin "
        f"consent at {consent_b}",
        f"[fail] tenant {NO_SUCH_TENANT} (provider {REG_GONE}): no such tenant (AADSTS90002)\n       fix: correct the "
        "provider's tenantId in CONNECTOR_PROVIDERS (the customer's Tenant ID, in the Microsoft Entra admin center)",
    ]
    assert f"[ok] provider {REG_A} (LMS a0a0): course activity sync enabled" in findings
    assert f"[ok] tenant {TENANT_A} (provider {REG_A}): the app holds LearningAssignedCourse.ReadWrite.All" in "".join(
        findings
    )


async def test_check_says_which_roles_a_tenants_consent_lacks(connector):
    from connector.ops.check import run_checks

    connector.graph.grant_consent(TENANT_A, APP_ID, roles=["LearningAssignedCourse.ReadWrite.All"])
    findings = [str(f) for f in await run_checks()]
    consent_a = f"{connector.sandbox.authority_url}/{TENANT_A}/adminconsent?client_id={APP_ID}"
    assert (
        f"[fail] tenant {TENANT_A} (provider {REG_A}): the app lacks LearningSelfInitiatedCourse.ReadWrite.All\n"
        "       fix: add the missing roles to the app's API permissions (Microsoft Graph, application), then a "
        f"Privileged Role Administrator of tenant {TENANT_A} grants admin consent at {consent_a}"
    ) in findings


async def test_logs_and_spans_carry_the_tenant(connector, caplog):
    spans = span_exporter()
    spans.clear()
    caplog.set_level(logging.INFO, logger="connector")
    assert failures(await deliver_all(connector, [(REG_A, progress(5, 90))])) == []
    (applied,) = [r for r in caplog.records if "applied to" in r.getMessage()]
    assert (applied.tenantId, applied.registrationId) == (TENANT_A, REG_A)
    finished = spans.get_finished_spans()
    tenants = {s.name: s.attributes.get("connector.tenant_id") for s in finished}
    assert (tenants["apply course activity update"], tenants["Graph PATCH"]) == (TENANT_A, TENANT_A)


async def test_check_without_the_managed_identity_says_each_tenant_is_not_checked(connector, monkeypatch):
    from connector.ops.check import run_checks

    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER"):  # an operator's machine: no identity endpoint
        monkeypatch.delenv(name)
    findings = [str(f) for f in await run_checks()]
    tenant_lines = [f.split("\n")[0] for f in findings if f.split("] ", 1)[1].startswith("tenant ")]
    assert tenant_lines == [
        f"[warn] tenant {tenant} (provider {reg}): not checked: its token needs the app's managed identity "
        "(IDENTITY_ENDPOINT), which is not here"
        for reg, tenant in (*TENANT_OF.items(), (REG_GONE, NO_SUCH_TENANT))
    ]
    assert connector.graph.stats()["tokenEndpoint"]["requests"] == 0


async def test_the_status_export_names_each_activitys_tenant(connector, command):
    assert failures(await deliver_all(connector, [(REG_A, progress(6, 15)), (REG_B, progress(6, 15))])) == []
    providers = os.environ["CONNECTOR_PROVIDERS"]  # the tenants' providers, as the app has them
    for reg, tenant in TENANT_OF.items():
        listed = command("status", "--registration-id", reg, CONNECTOR_PROVIDERS=providers)
        assert listed.returncode == 0, listed.stderr
        (row,) = csv.DictReader(io.StringIO(listed.stdout))
        assert (row["externalcourseActivityId"], row["state"], row["tenantId"]) == ("enrolment-6", "applied", tenant)
        (entry,) = json.loads(command("status", "--registration-id", reg, "--format", "json",
                                      CONNECTOR_PROVIDERS=providers).stdout)  # fmt: skip
        assert entry["tenantId"] == tenant
