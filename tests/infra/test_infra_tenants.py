"""The optional multi-tenant app registration (infra/app/multi-tenant-app.bicep, Microsoft Graph Bicep extension)
against the code that uses it: off by default, a federated credential trusting the app's own identity with the
audience the code asks for, no secret, the Graph roles the connector needs, and CONNECTOR_APP_CLIENT_ID written only
when there is an app. Read as text, like the rest of tests/infra (no Bicep compiler here)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from connector.adapters.tenants import ASSERTION_SCOPE
from connector.ops.permissions import BASE_ROLES, GRAPH_APP_ID
from connector.settings import APP_CLIENT_ID_SETTING
from tests.infra.bicep_text import BicepFile, module_params, property_value

INFRA = Path(__file__).resolve().parents[2] / "infra"
MAIN = BicepFile.read(INFRA / "main.bicep")
API = BicepFile.read(INFRA / "app" / "api.bicep")
APP_MODULE = BicepFile.read(INFRA / "app" / "multi-tenant-app.bicep")
APP = APP_MODULE.declarations["app"]


def test_the_app_registration_is_an_option_off_by_default():
    line, decorators = MAIN.param_line("createMultiTenantApp")
    module = MAIN.declarations["multiTenantApp"]
    assert (line, module.target, "if (createMultiTenantApp)" in MAIN.text[: module.start]) == (
        "param createMultiTenantApp bool = false",
        "app/multi-tenant-app.bicep",
        True,
    )
    assert "Application.ReadWrite.All" in " ".join(decorators)


def test_the_module_uses_the_generally_available_microsoft_graph_extension():
    config = json.loads((INFRA / "bicepconfig.json").read_text())
    assert re.search(r"^extension microsoftGraphV1$", APP_MODULE.text, re.MULTILINE)
    assert config["extensions"]["microsoftGraphV1"] == "br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:1.0.0"
    assert {d.target for d in APP_MODULE.declarations.values()} == {
        "Microsoft.Graph/applications@v1.0",
        "Microsoft.Graph/servicePrincipals@v1.0",
    }


def test_the_federated_credential_trusts_the_apps_identity_with_the_audience_the_code_asks_for():
    assert "resource managedIdentityCredential 'federatedIdentityCredentials@v1.0'" in APP.text
    assert (
        property_value(APP, "issuer"),
        property_value(APP, "subject"),
        re.search(r"audiences:\s*\[\s*'([^']+)'\s*\]", APP.text).group(1),
    ) == (
        "'${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'",
        "managedIdentityPrincipalId",
        ASSERTION_SCOPE.removesuffix("/.default"),
    )
    assert property_value(MAIN.declarations["multiTenantApp"], "managedIdentityPrincipalId") == (
        "apiUserAssignedIdentity.outputs.principalId"
    )


def test_the_app_is_multi_tenant_with_no_secret_or_certificate():
    assert property_value(APP, "signInAudience") == "'AzureADMultipleOrgs'"
    assert re.search(r"passwordCredentials|keyCredentials", APP_MODULE.masked) is None


def test_the_app_asks_for_the_graph_roles_the_connector_needs_as_application_permissions():
    graph = APP_MODULE.declarations["microsoftGraph"]
    assert (graph.existing, property_value(graph, "appId")) == (True, f"'{GRAPH_APP_ID}'")
    assert (property_value(APP, "resourceAppId"), property_value(APP, "type")) == ("microsoftGraph.appId", "'Role'")
    assert "for role in graphRoles:" in APP.text
    assert MAIN.string_array_var_of_param("multiTenantAppRoles") == list(BASE_ROLES)
    assert property_value(MAIN.declarations["multiTenantApp"], "graphRoles") == "multiTenantAppRoles"


def test_the_app_setting_is_written_only_when_there_is_an_app():
    text, _ = API.var_block("appSettings")
    written = rf"\{{\s*{APP_CLIENT_ID_SETTING}:\s*connectorAppClientId\s*\}}"
    pattern = rf"empty\(connectorAppClientId\)\s*\?\s*\{{\}}\s*:\s*{written}"
    assert re.search(pattern, text)
    assert (
        property_value(MAIN.declarations["api"], "connectorAppClientId"),
        re.search(r"^var appClientId = (.*)$", MAIN.text, re.MULTILINE).group(1),
        "connectorAppClientId" in module_params(MAIN.declarations["api"]),
    ) == ("appClientId", "multiTenantApp.?outputs.appId ?? connectorAppClientId", True)


def test_the_outputs_give_the_app_and_its_consent_link():
    outputs = MAIN.outputs()
    assert outputs[APP_CLIENT_ID_SETTING] == "appClientId"
    assert "{tenantId}/adminconsent?client_id=${appClientId}" in outputs["CONNECTOR_ADMIN_CONSENT_URL"]
