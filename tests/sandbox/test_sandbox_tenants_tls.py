"""The real credential classes end to end, over TLS with a CA only these tests trust: the managed identity's token
as client assertion, azure.identity's ClientAssertionCredential per tenant, Graph answering per tenant."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox.process import SandboxProcess, start_sandbox_process
from sandbox.seed import EXAMPLE_PROVIDER_ID

APP_ID = "a11a11a1-0000-4000-8000-0000000000a1"
TENANTS = ("aaaaaaaa-0000-4000-8000-00000000000a", "bbbbbbbb-0000-4000-8000-00000000000b")
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
ACTIVITY_URL = f"/employeeExperience/learningProviders/{EXAMPLE_PROVIDER_ID}/learningCourseActivities/activity-1"


@pytest.fixture(scope="module")
def tls_sandbox() -> Iterator[SandboxProcess]:
    with start_sandbox_process(https=True) as process:
        yield process
    assert process.process.returncode == 0, process.stderr_tail()


@pytest.fixture
def sandbox(tls_sandbox: SandboxProcess) -> SandboxProcess:
    """Two customer tenants that consented to the multi-tenant app, each with one activity."""
    admin = tls_sandbox.admin
    admin.reset()
    admin.register_app(APP_ID)
    for tenant in TENANTS:
        admin.put_tenant(tenant)
        admin.grant_consent(tenant, APP_ID)
        admin.seed(
            tenant=tenant,
            providers=[{"id": EXAMPLE_PROVIDER_ID}],
            activities=[
                {
                    "@odata.type": "#microsoft.graph.learningSelfInitiatedCourse",
                    "id": "activity-1",
                    "externalcourseActivityId": "enrolment-1",
                    "learnerUserId": "learner-1",
                    "learningContentId": "content-1",
                    "learningProviderId": EXAMPLE_PROVIDER_ID,
                    "status": "inProgress",
                }
            ],
        )
    return tls_sandbox


async def managed_identity_assertion(sandbox: SandboxProcess, monkeypatch) -> str:
    from azure.identity.aio import ManagedIdentityCredential

    for name, value in sandbox.identity_env().items():
        monkeypatch.setenv(name, value)
    async with ManagedIdentityCredential() as credential:
        return (await credential.get_token("api://AzureADTokenExchange/.default")).token


def assertion_credential(sandbox: SandboxProcess, tenant: str, assertion: str):
    from azure.identity.aio import ClientAssertionCredential

    return ClientAssertionCredential(
        tenant, APP_ID, lambda: assertion, authority=sandbox.authority_url, connection_verify=sandbox.ca_path
    )


def complete(sandbox: SandboxProcess, token: str) -> int:
    body = {"@odata.type": "#microsoft.graph.learningSelfInitiatedCourse", "status": "completed"}
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.patch(sandbox.graph_url + ACTIVITY_URL, json=body, headers=headers).status_code


async def test_client_assertion_credential_per_tenant_and_a_revoked_consent(sandbox, monkeypatch):
    from azure.core.exceptions import ClientAuthenticationError

    assertion = await managed_identity_assertion(sandbox, monkeypatch)
    first, second = TENANTS
    async with assertion_credential(sandbox, first, assertion) as credential:
        token = await credential.get_token(GRAPH_SCOPE)
        assert (await credential.get_token(GRAPH_SCOPE)).token == token.token  # cached by azure.identity
    assert complete(sandbox, token.token) == 204
    assert sandbox.admin.activity("activity-1", tenant=first)["status"] == "completed"
    assert sandbox.admin.activity("activity-1", tenant=second)["status"] == "inProgress"

    sandbox.admin.revoke_consent(first, APP_ID)
    async with assertion_credential(sandbox, first, assertion) as credential:
        with pytest.raises(ClientAuthenticationError, match="AADSTS65001"):
            await credential.get_token(GRAPH_SCOPE)
    async with assertion_credential(sandbox, second, assertion) as credential:
        token = await credential.get_token(GRAPH_SCOPE)
    assert complete(sandbox, token.token) == 204
    assert sandbox.admin.activity("activity-1", tenant=second)["status"] == "completed"
    assert sandbox.admin.stats()["tokenEndpoint"]["byTenant"] == {
        first: {"requests": 2, "issued": 1},
        second: {"requests": 1, "issued": 1},
    }


async def test_the_authority_host_setting_works_too(sandbox, monkeypatch):
    from azure.identity.aio import ClientAssertionCredential

    assertion = await managed_identity_assertion(sandbox, monkeypatch)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", sandbox.authority_url)
    async with ClientAssertionCredential(
        TENANTS[1], APP_ID, lambda: assertion, connection_verify=sandbox.ca_path
    ) as credential:
        token = await credential.get_token(GRAPH_SCOPE)
    assert complete(sandbox, token.token) == 204


async def test_an_untrusted_certificate_is_refused(sandbox, monkeypatch):
    from azure.core.exceptions import ServiceRequestError
    from azure.identity.aio import ClientAssertionCredential

    assertion = await managed_identity_assertion(sandbox, monkeypatch)
    async with ClientAssertionCredential(TENANTS[0], APP_ID, lambda: assertion, authority=sandbox.authority_url) as c:
        with pytest.raises(ServiceRequestError, match="CERTIFICATE_VERIFY_FAILED"):
            await c.get_token(GRAPH_SCOPE)
    assert sandbox.admin.stats()["tokenEndpoint"]["requests"] == 0


def test_msal_reads_the_openid_configuration_then_gets_a_token(sandbox, monkeypatch):
    """MSAL (behind azure.identity's other confidential credentials) discovers the token endpoint first; instance
    discovery, which would ask login.microsoftonline.com, is off."""
    import msal

    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # requests lets these override a session's verify
        monkeypatch.delenv(name, raising=False)

    answer = httpx.get(
        sandbox.identity_endpoint,
        params={"api-version": "2019-08-01", "resource": "api://AzureADTokenExchange"},
        headers={"X-IDENTITY-HEADER": sandbox.identity_header},
    ).json()
    app = msal.ConfidentialClientApplication(
        APP_ID,
        client_credential={"client_assertion": lambda: answer["access_token"]},
        authority=f"{sandbox.authority_url}/{TENANTS[0]}",
        instance_discovery=False,
        verify=sandbox.ca_path,
    )
    result = app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert "access_token" in result, result
    assert complete(sandbox, result["access_token"]) == 204
