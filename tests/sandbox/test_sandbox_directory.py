"""Users, learning contents and service principals (with app-role grants)."""

from __future__ import annotations

import pytest

from sandbox.rules import MSG_BAD_REGISTRATION, MSG_FORBIDDEN
from sandbox.seed import (
    DEFAULT_MI_CLIENT_ID,
    DEFAULT_MI_PRINCIPAL_ID,
    EXAMPLE_ASSIGNER_ID,
    EXAMPLE_CONTENT_EXTERNAL_ID,
    EXAMPLE_CONTENT_ID,
    EXAMPLE_LEARNER_ID,
    GRAPH_SP_ID,
)

from .conftest import REG, assert_graph_error, graph_client

PROVIDER = f"/employeeExperience/learningProviders/{REG}"
GRAPH_SP_BY_APP_ID = "/servicePrincipals(appId='00000003-0000-0000-c000-000000000000')"
ROLE_IDS = {
    "LearningAssignedCourse.ReadWrite.All": "236c1cbd-1187-427f-b0f5-b1852454973b",
    "LearningSelfInitiatedCourse.ReadWrite.All": "7654ed61-8965-4025-846a-0856ec02b5b0",
    "User.Read.All": "df021288-bdef-4463-88db-98f22de89214",
    "LearningContent.Read.All": "8740813e-d8aa-4204-860e-2a0f8f84dbc8",
}


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [u["id"] for u in response.json()["value"]]


# --- users -------------------------------------------------------------------------------------------------
def test_user_by_id_and_by_upn(graph):
    by_id = graph.get(f"/users/{EXAMPLE_LEARNER_ID}").json()
    assert set(by_id) == {"@odata.context", "id", "displayName", "userPrincipalName", "mail", "employeeId"}
    by_upn = graph.get("/users/ADA.LEARNER@contoso.example").json()
    assert by_upn["id"] == by_id["id"] == EXAMPLE_LEARNER_ID


def test_unknown_user(graph):
    response = graph.get("/users/nobody@contoso.example")
    assert_graph_error(
        response,
        404,
        "Request_ResourceNotFound",
        "Resource 'nobody@contoso.example' does not exist or one of its queried reference-property objects are not "
        "present.",
    )


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("mail eq 'ada.learner@CONTOSO.example'", [EXAMPLE_LEARNER_ID]),
        ("userPrincipalName eq 'Grace.Assigner@contoso.example'", [EXAMPLE_ASSIGNER_ID]),
        ("employeeId eq 'E1002'", [EXAMPLE_ASSIGNER_ID]),
        ("employeeId eq 'e1002'", []),
        ("mail eq 'nobody@contoso.example'", []),
        ("mail eq 'Ada.Learner@contoso.example' or employeeId eq 'E1002'", [EXAMPLE_LEARNER_ID, EXAMPLE_ASSIGNER_ID]),
        ("mail eq 'ada.learner@contoso.example' OR mail eq 'ada.learner@contoso.example'", [EXAMPLE_LEARNER_ID]),
        ("employeeId in ('E1001', 'E1002')", [EXAMPLE_LEARNER_ID, EXAMPLE_ASSIGNER_ID]),
    ],
)
def test_user_filters(graph, expression, expected):
    assert ids(graph.get("/users", params={"$filter": expression})) == expected


def test_user_filter_with_quotes_and_or_inside_a_literal(sandbox, graph):
    sandbox.admin.seed(users=[{"id": "u-3", "mail": "o'brien or x@contoso.example", "employeeId": "E 3"}])
    expression = "mail eq 'O''Brien or x@contoso.example' or employeeId eq 'none'"
    assert ids(graph.get("/users", params={"$filter": expression})) == ["u-3"]


def test_user_query_options_are_accepted(graph):
    response = graph.get(
        "/users",
        params={"$filter": "employeeId eq 'E1001'", "$select": "id,mail", "$count": "true"},
        headers={"ConsistencyLevel": "eventual"},
    )
    body = response.json()
    assert body["@odata.count"] == 1
    assert body["value"] == [{"id": EXAMPLE_LEARNER_ID, "mail": "Ada.Learner@contoso.example"}]


@pytest.mark.parametrize("expression", ["displayName eq 'Ada'", "startswith(mail, 'ada')", "mail eq ada"])
def test_unsupported_user_filter(graph, expression):
    response = graph.get("/users", params={"$filter": expression})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "Request_UnsupportedQuery"


def test_users_need_a_directory_role(sandbox):
    token = sandbox.admin.mint_token(roles=["LearningAssignedCourse.ReadWrite.All"])
    with graph_client(sandbox, token) as client:
        response = client.get("/users", params={"$filter": "employeeId eq 'E1001'"})
    assert_graph_error(
        response, 403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
    )


# --- learning contents -------------------------------------------------------------------------------------
def test_content_by_external_id(graph):
    response = graph.get(f"{PROVIDER}/learningContents(externalId='{EXAMPLE_CONTENT_EXTERNAL_ID}')")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["id"], body["externalId"], body["title"]) == (
        EXAMPLE_CONTENT_ID,
        EXAMPLE_CONTENT_EXTERNAL_ID,
        "Sandbox course 101",
    )
    assert "learningProviderId" not in body


def test_content_lookups_that_fail(graph, sandbox):
    response = graph.get(f"{PROVIDER}/learningContents(externalId='nope')")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "notFound"
    unknown_provider = (
        f"/employeeExperience/learningProviders/nope/learningContents(externalId='{EXAMPLE_CONTENT_EXTERNAL_ID}')"
    )
    assert_graph_error(graph.get(unknown_provider), 400, "badRequest", MSG_BAD_REGISTRATION)
    other = "0f0f0f0f-0000-4000-8000-000000000002"
    sandbox.admin.put_provider(other)
    of_other = (
        f"/employeeExperience/learningProviders/{other}/learningContents(externalId='{EXAMPLE_CONTENT_EXTERNAL_ID}')"
    )
    assert graph.get(of_other).status_code == 404
    token = sandbox.admin.mint_token(roles=["User.Read.All"])
    with graph_client(sandbox, token) as client:
        response = client.get(f"{PROVIDER}/learningContents(externalId='{EXAMPLE_CONTENT_EXTERNAL_ID}')")
    assert_graph_error(response, 403, "Forbidden", MSG_FORBIDDEN)


# --- service principals ------------------------------------------------------------------------------------
@pytest.fixture
def directory_admin(sandbox):
    token = sandbox.admin.mint_token(roles=["Application.Read.All", "AppRoleAssignment.ReadWrite.All"])
    with graph_client(sandbox, token) as client:
        yield client


def test_graph_service_principal_has_the_real_role_ids(directory_admin):
    response = directory_admin.get(GRAPH_SP_BY_APP_ID)
    assert response.status_code == 200, response.text
    sp = response.json()
    assert (sp["id"], sp["displayName"]) == (GRAPH_SP_ID, "Microsoft Graph")
    roles = {r["value"]: r["id"] for r in sp["appRoles"]}
    assert ROLE_IDS.items() <= roles.items()
    assert (
        directory_admin.get(f"/servicePrincipals/{GRAPH_SP_ID}").json()["appId"]
        == "00000003-0000-0000-c000-000000000000"
    )


def test_managed_identity_service_principal(sandbox, directory_admin):
    sp = directory_admin.get(f"/servicePrincipals(appId='{DEFAULT_MI_CLIENT_ID}')").json()
    assert (sp["id"], sp["servicePrincipalType"]) == (DEFAULT_MI_PRINCIPAL_ID, "ManagedIdentity")
    sandbox.admin.set_identity(client_id="c1c1c1c1-0000-4000-8000-000000000001", principal_id="p-new")
    assert directory_admin.get(f"/servicePrincipals(appId='{DEFAULT_MI_CLIENT_ID}')").status_code == 404
    assert (
        directory_admin.get("/servicePrincipals(appId='c1c1c1c1-0000-4000-8000-000000000001')").json()["id"] == "p-new"
    )


def test_grant_app_roles(directory_admin):
    url = f"/servicePrincipals/{GRAPH_SP_ID}/appRoleAssignedTo"
    assert directory_admin.get(url).json()["value"] == []
    grant = {"principalId": DEFAULT_MI_PRINCIPAL_ID, "resourceId": GRAPH_SP_ID, "appRoleId": ROLE_IDS["User.Read.All"]}
    response = directory_admin.post(url, json=grant)
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["principalId"], created["appRoleId"], created["resourceDisplayName"]) == (
        DEFAULT_MI_PRINCIPAL_ID,
        ROLE_IDS["User.Read.All"],
        "Microsoft Graph",
    )
    assert [a["appRoleId"] for a in directory_admin.get(url).json()["value"]] == [ROLE_IDS["User.Read.All"]]
    assert_graph_error(
        directory_admin.post(url, json=grant),
        400,
        "Request_BadRequest",
        "Permission being assigned already exists on the object",
    )


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"appRoleId": "00000000-0000-0000-0000-000000000000"}, "Permission being assigned was not found"),
        ({"principalId": "nobody"}, "principalId"),
        ({"resourceId": "elsewhere"}, "resourceId"),
    ],
)
def test_grant_app_role_validation(directory_admin, change, fragment):
    grant = {"principalId": DEFAULT_MI_PRINCIPAL_ID, "resourceId": GRAPH_SP_ID, "appRoleId": ROLE_IDS["User.Read.All"]}
    response = directory_admin.post(f"/servicePrincipals/{GRAPH_SP_ID}/appRoleAssignedTo", json={**grant, **change})
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]


def test_service_principals_need_directory_roles(graph):
    # The default managed-identity token has no Application.* role.
    assert_graph_error(
        graph.get(GRAPH_SP_BY_APP_ID),
        403,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )


def test_unknown_service_principal(directory_admin):
    assert directory_admin.get("/servicePrincipals(appId='nope')").json()["error"]["code"] == "Request_ResourceNotFound"
    assert directory_admin.get("/servicePrincipals/nope").status_code == 404
