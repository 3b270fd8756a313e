"""Several tenants: Entra's token endpoint (client credentials with the managed identity's token as assertion),
per-tenant consent, and each tenant's own Graph data. Raw HTTP here; the real credentials in the *_tls module."""

from __future__ import annotations

import httpx
import pytest

from sandbox.identity import DEFAULT_ROLES
from sandbox.seed import DEFAULT_MI_PRINCIPAL_ID, EXAMPLE_PROVIDER_ID, TENANT_ID

from .conftest import assert_graph_error, fetch_token, graph_client, token_claims

APP_ID = "a11a11a1-0000-4000-8000-0000000000a1"
TENANT_A = "aaaaaaaa-0000-4000-8000-00000000000a"
TENANT_B = "bbbbbbbb-0000-4000-8000-00000000000b"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
EXCHANGE = "api://AzureADTokenExchange"
ASSIGNMENT = "#microsoft.graph.learningAssignment"
PROVIDER = f"/employeeExperience/learningProviders/{EXAMPLE_PROVIDER_ID}"
ACTIVITY_ID = "same-id-in-both-tenants"


@pytest.fixture
def tenants(sandbox):
    """Tenants A and B consented to the multi-tenant app, each with the same provider id and activity id."""
    admin = sandbox.admin
    admin.register_app(APP_ID, display_name="Learning connector")
    for tenant in (TENANT_A, TENANT_B):
        admin.put_tenant(tenant)
        admin.grant_consent(tenant, APP_ID)
        admin.seed(
            tenant=tenant,
            providers=[{"id": EXAMPLE_PROVIDER_ID}],
            users=[{"id": f"learner-of-{tenant}", "mail": "same.name@customer.example"}],
            activities=[
                {
                    "@odata.type": ASSIGNMENT,
                    "id": ACTIVITY_ID,
                    "externalcourseActivityId": "enrolment-1",
                    "learnerUserId": f"learner-of-{tenant}",
                    "learningContentId": "content-1",
                    "learningProviderId": EXAMPLE_PROVIDER_ID,
                    "status": "notStarted",
                    "assignmentType": "required",
                }
            ],
        )
    return sandbox


def assertion(sandbox) -> str:
    return fetch_token(sandbox, resource=EXCHANGE)["access_token"]


def token_request(sandbox, tenant: str, **overrides) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "client_id": APP_ID,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion(sandbox),
        "scope": GRAPH_SCOPE,
        **overrides,
    }
    return httpx.post(sandbox.token_url(tenant), data={k: v for k, v in form.items() if v is not None})


def tenant_token(sandbox, tenant: str) -> str:
    response = token_request(sandbox, tenant)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def assert_entra_error(response: httpx.Response, status: int, error: str, code: int) -> str:
    """Entra's error shape; returns the description's first line."""
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["error"], body["error_codes"]) == (error, [code])
    first_line, *trail = body["error_description"].split("\r\n")
    assert first_line.startswith(f"AADSTS{code}: ")
    assert [line.split(":")[0] for line in trail] == ["Trace ID", "Correlation ID", "Timestamp"]
    assert body["correlation_id"] == response.headers["client-request-id"]
    assert body["error_uri"] == f"https://login.microsoftonline.com/error?code={code}"
    assert "access_token" not in body
    return first_line


# --- the assertion -------------------------------------------------------------------------------------------
def test_the_managed_identity_issues_the_assertion(sandbox):
    answer = fetch_token(sandbox, resource=EXCHANGE)
    claims = token_claims(answer["access_token"])
    assert claims["aud"] == EXCHANGE
    assert claims["iss"] == f"https://login.microsoftonline.com/{TENANT_ID}/v2.0"
    assert claims["sub"] == DEFAULT_MI_PRINCIPAL_ID
    assert claims["roles"] == []
    with graph_client(sandbox, answer["access_token"]) as client:  # it is no Graph token
        assert_graph_error(client.get(PROVIDER), 401, "InvalidAuthenticationToken", "Invalid audience.")


# --- the token endpoint ----------------------------------------------------------------------------------------
def test_a_consented_tenant_gets_a_graph_token_of_its_own(tenants):
    response = token_request(tenants, TENANT_A)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)
    claims = token_claims(body["access_token"])
    assert (claims["tid"], claims["appid"], claims["aud"]) == (TENANT_A, APP_ID, "https://graph.microsoft.com")
    assert claims["iss"] == f"https://sts.windows.net/{TENANT_A}/"
    assert claims["roles"] == list(DEFAULT_ROLES)
    (tenant,) = [t for t in tenants.admin.tenants() if t["tenantId"] == TENANT_A]
    assert claims["oid"] == tenant["consents"][APP_ID]["servicePrincipalId"]


def test_consent_chooses_the_roles(tenants):
    tenants.admin.grant_consent(TENANT_A, APP_ID, roles=["LearningSelfInitiatedCourse.ReadWrite.All"])
    assert token_claims(tenant_token(tenants, TENANT_A))["roles"] == ["LearningSelfInitiatedCourse.ReadWrite.All"]


@pytest.mark.parametrize(
    ("overrides", "status", "error", "code"),
    [
        ({"grant_type": None}, 400, "invalid_request", 900144),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
        ({"client_id": None}, 400, "invalid_request", 900144),
        ({"scope": None}, 400, "invalid_request", 900144),
        ({"client_secret": "s3cret"}, 401, "invalid_client", 7000215),
        ({"client_assertion": None}, 401, "invalid_client", 7000216),
        ({"client_assertion_type": "urn:other"}, 400, "invalid_request", 900144),
        ({"client_assertion": "not.a.jwt"}, 400, "invalid_request", 50027),
        ({"client_id": "0b0b0b0b-0000-4000-8000-000000000000"}, 400, "unauthorized_client", 700016),
        ({"scope": "https://graph.microsoft.com/User.Read"}, 400, "invalid_scope", 1002012),
        ({"scope": "https://management.azure.com/.default"}, 400, "invalid_resource", 500011),
    ],
)
def test_bad_token_requests(tenants, overrides, status, error, code):
    assert_entra_error(token_request(tenants, TENANT_A, **overrides), status, error, code)


def test_an_unknown_tenant(tenants):
    first_line = assert_entra_error(
        token_request(tenants, "cccccccc-0000-4000-8000-00000000000c"), 400, "invalid_request", 90002
    )
    assert "Tenant 'cccccccc-0000-4000-8000-00000000000c' not found" in first_line


def test_a_tenant_that_never_consented(tenants):
    tenants.admin.put_tenant("dddddddd-0000-4000-8000-00000000000d")
    response = token_request(tenants, "dddddddd-0000-4000-8000-00000000000d")
    first_line = assert_entra_error(response, 400, "unauthorized_client", 700016)
    assert f"Application with identifier '{APP_ID}' was not found in the directory" in first_line


def test_revoked_consent_fails_only_its_tenant(tenants):
    tenants.admin.revoke_consent(TENANT_A, APP_ID)
    response = token_request(tenants, TENANT_A)
    first_line = assert_entra_error(response, 400, "invalid_grant", 65001)
    assert f"application with ID '{APP_ID}' named 'Learning connector'" in first_line
    assert response.json()["suberror"] == "consent_required"
    assert token_request(tenants, TENANT_B).status_code == 200
    tenants.admin.grant_consent(TENANT_A, APP_ID)
    assert token_request(tenants, TENANT_A).status_code == 200


def test_an_app_removed_from_a_tenant(tenants):
    tenants.admin.revoke_consent(TENANT_A, APP_ID, delete_service_principal=True)
    first_line = assert_entra_error(token_request(tenants, TENANT_A), 401, "invalid_client", 7000229)
    assert f"The client application {APP_ID} is missing service principal in the tenant {TENANT_A}" in first_line
    assert {t["tenantId"]: t["consents"] for t in tenants.admin.tenants()}[TENANT_A] == {}


def test_an_assertion_for_another_audience(tenants):
    graph_token = fetch_token(tenants)["access_token"]
    first_line = assert_entra_error(
        token_request(tenants, TENANT_A, client_assertion=graph_token), 400, "invalid_request", 70021
    )
    assert "Assertion Audience: 'https://graph.microsoft.com'" in first_line


def test_an_expired_assertion(tenants):
    expired = tenants.admin.mint_token(audience=EXCHANGE, lifetime_seconds=-5)
    assert_entra_error(token_request(tenants, TENANT_A, client_assertion=expired), 400, "invalid_client", 700024)


def test_an_assertion_no_federated_credential_trusts(tenants):
    tenants.admin.register_app(
        APP_ID,
        display_name="Learning connector",
        federated_credentials=[
            {"issuer": f"https://login.microsoftonline.com/{TENANT_ID}/v2.0", "subject": "someone-else"}
        ],
    )
    first_line = assert_entra_error(token_request(tenants, TENANT_A), 400, "invalid_request", 70021)
    assert f"Assertion Subject: '{DEFAULT_MI_PRINCIPAL_ID}'" in first_line


def test_token_requests_are_counted_per_tenant(tenants):
    token_request(tenants, TENANT_A)
    token_request(tenants, TENANT_A)
    token_request(tenants, TENANT_B, client_secret="x")
    counters = tenants.admin.stats()["tokenEndpoint"]
    assert counters["byTenant"] == {TENANT_A: {"requests": 2, "issued": 2}, TENANT_B: {"requests": 1, "issued": 0}}
    assert (counters["requests"], counters["issued"]) == (3, 2)


def test_faults_can_break_one_tenants_token_endpoint(tenants):
    tenants.admin.add_fault(target="entra", status=503, path_contains=TENANT_A)
    assert_entra_error(token_request(tenants, TENANT_A), 503, "temporarily_unavailable", 90033)
    assert token_request(tenants, TENANT_B).status_code == 200
    assert tenants.admin.stats()["tokenEndpoint"]["byTenant"][TENANT_A] == {"requests": 1, "issued": 0}


def test_openid_configuration(tenants):
    base = tenants.graph_url.removesuffix("/v1.0")
    response = httpx.get(f"{base}/{TENANT_A}/v2.0/.well-known/openid-configuration")
    assert response.status_code == 200
    body = response.json()
    assert body["token_endpoint"] == f"{base}/{TENANT_A}/oauth2/v2.0/token"
    assert body["authorization_endpoint"] == f"{base}/{TENANT_A}/oauth2/v2.0/authorize"
    assert body["issuer"] == f"https://login.microsoftonline.com/{TENANT_A}/v2.0"
    unknown = httpx.get(f"{base}/nobody/v2.0/.well-known/openid-configuration")
    assert_entra_error(unknown, 400, "invalid_tenant", 90002)


# --- each tenant's own Graph data ----------------------------------------------------------------------------
def test_a_tenants_token_sees_only_that_tenants_data(tenants):
    with graph_client(tenants, tenant_token(tenants, TENANT_A)) as client:
        body = {"@odata.type": ASSIGNMENT, "status": "completed"}
        assert client.patch(f"{PROVIDER}/learningCourseActivities/{ACTIVITY_ID}", json=body).status_code == 204
        users = client.get("/users", params={"$filter": "mail eq 'same.name@customer.example'"}).json()["value"]
    assert [u["id"] for u in users] == [f"learner-of-{TENANT_A}"]
    assert tenants.admin.activity(ACTIVITY_ID, tenant=TENANT_A)["status"] == "completed"
    assert tenants.admin.activity(ACTIVITY_ID, tenant=TENANT_B)["status"] == "notStarted"
    assert [e["tenant"] for e in tenants.admin.requests()] == [TENANT_A, TENANT_A]
    assert tenants.admin.requests(tenant=TENANT_B) == []


def test_a_provider_of_another_tenant_is_unknown(tenants):
    tenants.admin.put_provider("only-in-b", tenant=TENANT_B)
    with graph_client(tenants, tenant_token(tenants, TENANT_A)) as client:
        response = client.get("/employeeExperience/learningProviders/only-in-b/learningCourseActivities('x')")
        assert client.get("/employeeExperience/learningProviders/only-in-b").status_code == 404
    assert response.status_code == 400  # Graph's "make sure the registrationId ... is registered for your tenant"


def test_the_home_tenant_keeps_its_data(tenants, graph):
    assert graph.get(PROVIDER).json()["displayName"] == "Contoso Learning (sandbox)"  # the example seed, home only
    assert tenants.admin.activity(ACTIVITY_ID) is None
    assert len(tenants.admin.activities()) == 2


def test_each_tenant_has_its_own_rate_limit(tenants):
    tenants.admin.set_rate_limit(0.001, burst=1, tenant=TENANT_A)
    with (
        graph_client(tenants, tenant_token(tenants, TENANT_A)) as a,
        graph_client(tenants, tenant_token(tenants, TENANT_B)) as b,
    ):
        assert [a.get(PROVIDER).status_code for _ in range(2)] == [200, 429]
        assert [b.get(PROVIDER).status_code for _ in range(2)] == [200, 200]
    assert tenants.admin.stats()["rateLimit"]["byTenant"] == {TENANT_A: {"allowed": 1, "throttled": 1}}


def test_a_minted_token_can_name_a_tenant(tenants):
    token = tenants.admin.mint_token(tenant=TENANT_B)
    with graph_client(tenants, token) as client:
        assert client.get(f"{PROVIDER}/learningCourseActivities/{ACTIVITY_ID}").json()["learnerUserId"] == (
            f"learner-of-{TENANT_B}"
        )


def test_reset_forgets_the_tenants(tenants):
    token = tenant_token(tenants, TENANT_A)
    tenants.admin.reset()
    assert [t["tenantId"] for t in tenants.admin.tenants()] == [TENANT_ID]
    assert tenants.admin.apps() == []
    with graph_client(tenants, token) as client:
        response = client.get(PROVIDER)
    assert_graph_error(response, 401, "InvalidAuthenticationToken", "Access token validation failure. Invalid tenant.")


# --- the admin API's refusals ---------------------------------------------------------------------------------
def test_admin_refusals(tenants):
    admin_url = tenants.admin_url
    assert httpx.get(f"{admin_url}/activities", params={"tenantId": "nobody"}).status_code == 404
    assert httpx.put(f"{admin_url}/tenants/nobody/consents/{APP_ID}", json={}).status_code == 404
    assert httpx.put(f"{admin_url}/tenants/{TENANT_A}/consents/unregistered", json={}).status_code == 404
    assert httpx.put(f"{admin_url}/tenants/{TENANT_A}/consents/{APP_ID}", json={"roles": "all"}).status_code == 400
    assert httpx.delete(f"{admin_url}/tenants/{TENANT_A}/consents/unregistered").status_code == 404
    for bad in ({"federatedCredentials": [{"issuer": "x"}]}, {"federatedCredentials": "x"}, {"owner": "me"}):
        assert httpx.put(f"{admin_url}/apps/{APP_ID}", json=bad).status_code == 400, bad
    assert token_request(tenants, TENANT_A).status_code == 200  # nothing above changed the app or its consents
