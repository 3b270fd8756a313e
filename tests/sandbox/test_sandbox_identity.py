"""Tokens: the managed-identity endpoint (raw and through azure.identity) and Graph's token checks."""

from __future__ import annotations

import time

import httpx
import pytest

from sandbox.identity import DEFAULT_ROLES
from sandbox.seed import DEFAULT_MI_CLIENT_ID, EXAMPLE_ASSIGNMENT_ID

from .conftest import ASSIGNMENT_URL, assert_graph_error, fetch_token, graph_client, token_claims

PROVIDER_URL = "/employeeExperience/learningProviders/01e8f81b-3060-4dec-acf0-0389665a0a38"


# --- the managed-identity endpoint -------------------------------------------------------------------------
def test_msi_answers_like_app_service(sandbox):
    before = int(time.time())
    answer = fetch_token(sandbox)
    assert set(answer) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert answer["token_type"] == "Bearer"
    assert answer["resource"] == "https://graph.microsoft.com"
    assert answer["client_id"] == DEFAULT_MI_CLIENT_ID
    assert isinstance(answer["expires_on"], str)
    assert before + 3600 <= int(answer["expires_on"]) <= int(time.time()) + 3600
    claims = token_claims(answer["access_token"])
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["roles"] == list(DEFAULT_ROLES)
    assert claims["appid"] == DEFAULT_MI_CLIENT_ID


def test_msi_client_id_is_echoed_and_put_in_the_token(sandbox):
    answer = fetch_token(sandbox, client_id="11111111-2222-3333-4444-555555555555")
    assert answer["client_id"] == "11111111-2222-3333-4444-555555555555"
    assert token_claims(answer["access_token"])["appid"] == "11111111-2222-3333-4444-555555555555"


@pytest.mark.parametrize("header", [None, "wrong-secret", ""])
def test_msi_requires_the_identity_header(sandbox, header):
    headers = {} if header is None else {"X-IDENTITY-HEADER": header}
    response = httpx.get(
        sandbox.identity_endpoint,
        params={"api-version": "2019-08-01", "resource": "https://graph.microsoft.com"},
        headers=headers,
    )
    assert response.status_code == 401
    assert response.json()["statusCode"] == 401
    assert "access_token" not in response.text
    assert sandbox.admin.stats()["tokensIssued"] == 0


@pytest.mark.parametrize(
    "params",
    [
        {"api-version": "2019-08-01"},
        {"resource": "https://graph.microsoft.com"},
        {"api-version": "2017-09-01", "resource": "x"},
    ],
)
def test_msi_requires_api_version_and_resource(sandbox, params):
    response = httpx.get(
        sandbox.identity_endpoint, params=params, headers={"X-IDENTITY-HEADER": sandbox.identity_header}
    )
    assert response.status_code == 400
    assert response.json()["statusCode"] == 400


def test_token_requests_are_counted(sandbox):
    fetch_token(sandbox)
    fetch_token(sandbox)
    httpx.get(sandbox.identity_endpoint, params={"api-version": "2019-08-01", "resource": "r"})  # refused: no header
    stats = sandbox.admin.stats()
    assert (stats["tokenRequests"], stats["tokensIssued"]) == (3, 2)


def test_identity_settings_shape_new_tokens(sandbox):
    sandbox.admin.set_identity(roles=["LearningSelfInitiatedCourse.ReadWrite.All"], token_lifetime_seconds=120)
    answer = fetch_token(sandbox)
    assert int(answer["expires_on"]) - time.time() == pytest.approx(120, abs=5)
    with graph_client(sandbox, answer["access_token"]) as client:
        body = {"@odata.type": "#microsoft.graph.learningAssignment", "status": "completed"}
        assert client.patch(ASSIGNMENT_URL, json=body).status_code == 403


def test_reset_keeps_the_identity_header_and_earlier_tokens(sandbox, graph_token):
    sandbox.admin.reset()
    assert fetch_token(sandbox)["access_token"]
    with graph_client(sandbox, graph_token) as client:
        assert client.get(PROVIDER_URL).status_code == 404  # authenticated; the provider is gone after the reset


# --- Graph's token checks ----------------------------------------------------------------------------------
@pytest.mark.parametrize("authorization", [None, "", "Bearer", "bearer", "Basic dXNlcjpwYXNz"])
def test_graph_requires_a_bearer_token(sandbox, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = httpx.get(sandbox.graph_url + PROVIDER_URL, headers=headers)
    assert_graph_error(response, 401, "InvalidAuthenticationToken", "Access token is empty.")
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_graph_rejects_a_tampered_token(sandbox, graph_token):
    header, payload, signature = graph_token.split(".")
    forged_payload = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    for token in (f"{header}.{forged_payload}.{signature}", f"{header}.{payload}.{signature[::-1]}", "not-a-jwt"):
        with graph_client(sandbox, token) as client:
            response = client.get(PROVIDER_URL)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_graph_rejects_an_expired_token(sandbox):
    token = sandbox.admin.mint_token(lifetime_seconds=-5)
    with graph_client(sandbox, token) as client:
        response = client.get(PROVIDER_URL)
    assert_graph_error(response, 401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")


def test_graph_rejects_another_audience(sandbox):
    token = sandbox.admin.mint_token(audience="https://management.azure.com")
    with graph_client(sandbox, token) as client:
        assert_graph_error(client.get(PROVIDER_URL), 401, "InvalidAuthenticationToken", "Invalid audience.")


@pytest.mark.parametrize(
    "audience", ["https://graph.microsoft.com", "https://graph.microsoft.com/", "00000003-0000-0000-c000-000000000000"]
)
def test_graph_accepts_its_audiences(sandbox, audience):
    with graph_client(sandbox, sandbox.admin.mint_token(audience=audience)) as client:
        assert client.get(PROVIDER_URL).status_code == 200


def test_token_is_checked_on_every_route(sandbox):
    for method, path in [
        ("PATCH", ASSIGNMENT_URL),
        ("GET", f"/employeeExperience/learningCourseActivities/{EXAMPLE_ASSIGNMENT_ID}"),
        ("GET", "/users"),
        ("GET", "/servicePrincipals(appId='00000003-0000-0000-c000-000000000000')"),
        ("GET", "/no/such/route"),
    ]:
        response = httpx.request(method, sandbox.graph_url + path, json={})
        assert response.status_code == 401, (method, path)


# --- azure.identity against the sandbox --------------------------------------------------------------------
async def test_managed_identity_credential_gets_a_token_graph_accepts(sandbox, monkeypatch):
    from azure.identity.aio import ManagedIdentityCredential

    for name, value in sandbox.identity_env().items():
        monkeypatch.setenv(name, value)
    credential = ManagedIdentityCredential()
    try:
        token = await credential.get_token("https://graph.microsoft.com/.default")
        again = await credential.get_token("https://graph.microsoft.com/.default")
    finally:
        await credential.close()
    assert again.token == token.token  # cached by azure.identity: one round trip
    assert sandbox.admin.stats()["tokenRequests"] == 1
    assert token.expires_on == pytest.approx(time.time() + 3600, abs=10)
    with graph_client(sandbox, token.token) as client:
        assert client.get(PROVIDER_URL).status_code == 200


async def test_managed_identity_credential_with_a_user_assigned_client_id(sandbox, monkeypatch):
    import os

    from azure.identity.aio import ManagedIdentityCredential

    client_id = "0d5e6f70-1111-4222-8333-944455556666"
    for name, value in sandbox.identity_env(client_id=client_id).items():
        monkeypatch.setenv(name, value)
    # What the product does: AZURE_CLIENT_ID selects the user-assigned identity.
    async with ManagedIdentityCredential(client_id=os.environ["AZURE_CLIENT_ID"]) as credential:
        token = await credential.get_token("https://graph.microsoft.com/.default")
    assert token_claims(token.token)["appid"] == client_id


async def test_managed_identity_credential_reports_a_wrong_identity_header(sandbox, monkeypatch):
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity.aio import ManagedIdentityCredential

    monkeypatch.setenv("IDENTITY_ENDPOINT", sandbox.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", "not-the-secret")
    async with ManagedIdentityCredential() as credential:
        with pytest.raises(ClientAuthenticationError):
            await credential.get_token("https://graph.microsoft.com/.default")


def test_sync_managed_identity_credential_msal_path(sandbox, monkeypatch):
    from azure.identity import ManagedIdentityCredential

    for name, value in sandbox.identity_env().items():
        monkeypatch.setenv(name, value)
    with ManagedIdentityCredential() as credential:
        token = credential.get_token("https://graph.microsoft.com/.default")
    with graph_client(sandbox, token.token) as client:
        assert client.get(PROVIDER_URL).status_code == 200
