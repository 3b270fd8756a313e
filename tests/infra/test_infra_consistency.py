"""The deployment template (azure.yaml, infra/) against the code it deploys.

No Bicep compiler can run here, so these tests read the Bicep as text (tests/infra/bicep_text.py) and check what a
compiler would not anyway: that the settings the code reads are the settings the template writes, that every queue
and table the code uses is covered by a role, that the role ids are the real built-in ones, that no secret is in
the template, and that the README names the functions and routes the app really has.
"""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

import pytest

from connector.adapters.activity_store import TABLE_NAME
from connector.domain.envelope import POISON_QUEUE_NAME, QUEUE_NAME
from connector.ops.permissions import GRAPH_APP_ID
from connector.settings import STORAGE_SETTING
from tests.infra.bicep_text import (
    BicepFile,
    matching,
    module_params,
    object_keys,
    parse_yaml_subset,
    property_value,
)
from tests.infra.code_settings import settings_read

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = BicepFile.read(INFRA / "main.bicep")
API = BicepFile.read(INFRA / "app" / "api.bicep")
RBAC = BicepFile.read(INFRA / "app" / "rbac.bicep")
KEYVAULT = BicepFile.read(INFRA / "app" / "keyvault.bicep")
STORAGE_DATA = BicepFile.read(INFRA / "app" / "storage-data.bicep")
README = (ROOT / "README.md").read_text()
DEPLOY_DOC = (ROOT / "README.md").read_text().split("## Deploy", 1)[1]  # the Deploy and Operate sections
AZURE_YAML = (ROOT / "azure.yaml").read_text()
PARAMETERS = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]

# The deployed code: connector/ and its packages; the sandbox is a development tool and is not deployed
# (.funcignore).
CODE_FILES = sorted(p for p in (ROOT / "connector").rglob("*.py") if "sandbox" not in p.parts)
CODE_READS = settings_read(CODE_FILES)
CODE_READS.setdefault(STORAGE_SETTING, set()).add("settings.STORAGE_SETTING (the bindings' connection)")

# Built-in role definition ids, checked against the Azure built-in roles reference (MicrosoftDocs azure-docs,
# built-in-roles) and the Azure samples that assign them. Storage Queue Data Contributor ends in ...fb88.
BUILT_IN_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}
ROLE_ID = {name: guid for guid, name in BUILT_IN_ROLES.items()}

# Read by the code but set by the platform, never by the template.
PLATFORM_PROVIDED = {
    "IDENTITY_ENDPOINT": "App Service sets it when the app has a managed identity (azure.identity's protocol)",
    "IDENTITY_HEADER": "App Service sets it with IDENTITY_ENDPOINT",
    "MSI_ENDPOINT": "the older name of IDENTITY_ENDPOINT, set by the platform",
}
# Settings the Functions platform itself reads (so the template may write them although the code does not).
PLATFORM_PREFIXES = ("FUNCTIONS_", "APPLICATIONINSIGHTS_", "AzureWebJobs", "WEBSITE_")
SECRET_PATTERNS = ("AccountKey=", "whsec_", "SharedAccessSignature=", "InstrumentationKey=", "listKeys(", "sig=")
REQUIRED_OUTPUTS = (
    "AZURE_FUNCTION_APP_NAME",
    "AZURE_FUNCTION_URL",
    "AZURE_MANAGED_IDENTITY_PRINCIPAL_ID",
    "AZURE_MANAGED_IDENTITY_CLIENT_ID",
    "AZURE_STORAGE_ACCOUNT_NAME",
    "AZURE_KEY_VAULT_NAME",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
)


def _app_settings() -> dict[str, str]:
    """The app settings api.bicep writes: name -> value expression (original text)."""
    text, masked = API.var_block("appSettings")
    settings = {}
    for name in object_keys(masked):
        match = re.search(rf"\b{name}\s*:\s*([^\n]*)", masked)
        assert match is not None
        value_end = match.start(1) + len(match.group(1).rstrip())  # comments are blank in the masked text
        settings[name] = text[match.start(1) : value_end].strip().rstrip("}").strip()
    return settings


APP_SETTINGS = _app_settings()


def _optional_in_readme() -> set[str]:
    """Settings the README's configuration table marks as not required."""
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return {m.group(1) for m in re.finditer(r"^\| `([^`]+)` \| no \|", section, re.MULTILINE)}


STORAGE_SERVICE_URIS = {f"{STORAGE_SETTING}__{s}ServiceUri" for s in ("blob", "queue", "table")}


def _satisfied_by_template(name: str) -> str | None:
    """Why the template covers a setting the code reads, or None."""
    if name in APP_SETTINGS:
        return "written by infra/app/api.bicep"
    identity_storage = STORAGE_SERVICE_URIS | {f"{STORAGE_SETTING}__{s}" for s in ("credential", "clientId")}
    if name == STORAGE_SETTING and identity_storage <= APP_SETTINGS.keys():
        return "identity-based form: AzureWebJobsStorage__*ServiceUri + __credential + __clientId"
    if name == f"{STORAGE_SETTING}__accountName" and APP_SETTINGS.keys() >= STORAGE_SERVICE_URIS:
        return "the alternative to the service URIs the template writes"
    if name in PLATFORM_PROVIDED:
        return PLATFORM_PROVIDED[name]
    if name in _optional_in_readme():
        return "optional (README configuration table: required = no)"
    return None


# ----------------------------------------------------------------------------------------------------------------
# Settings: what the code reads and what the template writes
# ----------------------------------------------------------------------------------------------------------------


def test_the_code_scan_finds_each_way_of_reading_a_setting(tmp_path):
    module = tmp_path / "example.py"
    module.write_text(
        "import os\n"
        "PREFIX = 'Store'\n"
        "def load(env):\n"
        "    prefix = f'{PREFIX}__'\n"
        "    env.get('A')\n"
        "    os.environ['B']\n"
        "    os.getenv('C')\n"
        "    env.get(prefix + 'd')\n"
        "    _parse_seconds('E', env, 1.0)\n"
        "    config.get('not_a_setting')\n"
    )
    assert set(settings_read([module])) == {"A", "B", "C", "Store__d", "E"}


def test_the_code_scan_finds_the_settings_the_code_is_known_to_read():
    assert {"CONNECTOR_PROVIDERS", "GRAPH_BASE_URL", "AZURE_CLIENT_ID", f"{STORAGE_SETTING}__accountName"} <= set(
        CODE_READS
    )


@pytest.mark.parametrize("name", sorted(CODE_READS))
def test_every_setting_the_code_reads_is_written_by_the_template_or_documented(name):
    assert _satisfied_by_template(name), (
        f"{name} (read in {sorted(CODE_READS[name])}) is neither written nor documented"
    )


@pytest.mark.parametrize("name", sorted(APP_SETTINGS))
def test_every_setting_the_template_writes_is_read_by_the_code_or_the_platform(name):
    assert name in CODE_READS or name.startswith(PLATFORM_PREFIXES)


def test_optional_settings_the_template_leaves_out_are_named_in_the_deploy_doc():
    left_out = {name for name in _optional_in_readme() & set(CODE_READS) if name not in APP_SETTINGS}
    assert {name for name in left_out if f"`{name}`" not in DEPLOY_DOC} == set()


def test_host_storage_is_identity_based_with_the_user_assigned_identity():
    assert (
        APP_SETTINGS[f"{STORAGE_SETTING}__credential"],
        APP_SETTINGS[f"{STORAGE_SETTING}__clientId"],
    ) == ("'managedidentity'", "identityClientId")


def test_no_storage_connection_string_is_written():
    assert STORAGE_SETTING not in APP_SETTINGS


def test_host_storage_uses_the_accounts_own_service_endpoints():
    # The per-service URIs, as the Flex quickstart writes them: right in every cloud and for the scale controller,
    # where __accountName makes the host assume global Azure's endpoints.
    uris = {name: APP_SETTINGS.get(name) for name in STORAGE_SERVICE_URIS}
    assert (uris, f"{STORAGE_SETTING}__accountName" in APP_SETTINGS) == (
        {
            f"{STORAGE_SETTING}__blobServiceUri": "stg.properties.primaryEndpoints.blob",
            f"{STORAGE_SETTING}__queueServiceUri": "stg.properties.primaryEndpoints.queue",
            f"{STORAGE_SETTING}__tableServiceUri": "stg.properties.primaryEndpoints.table",
        },
        False,
    )


def test_the_code_reads_the_queue_and_table_uris_the_template_writes():
    assert {f"{STORAGE_SETTING}__queueServiceUri", f"{STORAGE_SETTING}__tableServiceUri"} <= CODE_READS.keys()


def test_azure_client_id_is_the_identity_client_id():
    assert APP_SETTINGS["AZURE_CLIENT_ID"] == "identityClientId"


def test_application_insights_uses_entra_authentication_with_the_identity():
    assert (
        APP_SETTINGS["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "'ClientId=${identityClientId};Authorization=AAD'"
    )


def test_application_insights_has_local_authentication_disabled():
    assert property_value(MAIN.declarations["monitoring"], "disableLocalAuth") == "true"


def test_connector_providers_is_a_key_vault_reference():
    assert APP_SETTINGS["CONNECTOR_PROVIDERS"] == "'@Microsoft.KeyVault(SecretUri=${connectorProvidersSecretUri})'"


def test_key_vault_references_resolve_with_the_user_assigned_identity():
    assert property_value(API.declarations["api"], "keyVaultAccessIdentityResourceId") == "identityId"


def test_key_vault_uses_rbac_authorization():
    assert property_value(KEYVAULT.declarations["vault"], "enableRbacAuthorization") == "true"


def test_key_vault_has_purge_protection():
    assert property_value(KEYVAULT.declarations["vault"], "enablePurgeProtection") == "true"


def test_the_secret_reference_is_versionless_so_rotation_is_picked_up():
    assert KEYVAULT.outputs()["connectorProvidersSecretUri"] == "connectorProvidersSecret.properties.secretUri"


def test_graph_base_url_is_written_only_when_the_parameter_is_set():
    text, _ = API.var_block("appSettings")
    assert re.search(r"empty\(graphBaseUrl\)\s*\?\s*\{\}\s*:\s*\{\s*GRAPH_BASE_URL:\s*graphBaseUrl\s*\}", text)


# ----------------------------------------------------------------------------------------------------------------
# The secret parameter and how azd fills it
# ----------------------------------------------------------------------------------------------------------------


def test_connector_providers_parameter_is_secure():
    _, decorators = MAIN.param_line("connectorProviders")
    assert "@secure()" in decorators


def test_connector_providers_parameter_is_an_object_defaulting_to_no_provider():
    # An object, so that azd substitutes the JSON environment value as JSON (a string parameter would break on its
    # quotes); `{}` so that a deployment without providers starts and says so.
    line, _ = MAIN.param_line("connectorProviders")
    assert line == "param connectorProviders object = {}"


def test_connector_providers_comes_from_the_azd_environment():
    assert PARAMETERS["connectorProviders"] == {"value": "${CONNECTOR_PROVIDERS}"}


def test_the_key_vault_secret_holds_the_json_text_of_the_parameter():
    assert property_value(MAIN.declarations["keyVault"], "connectorProvidersJson") == "string(connectorProviders)"


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_every_parameter_in_the_parameters_file_is_declared(name):
    assert name in MAIN.params()


@pytest.mark.parametrize("name", sorted(n for n, required in MAIN.params().items() if required))
def test_every_required_parameter_is_in_the_parameters_file(name):
    assert name in PARAMETERS


# ----------------------------------------------------------------------------------------------------------------
# Queues, table and roles
# ----------------------------------------------------------------------------------------------------------------


def _code_constants(suffix: str) -> set[str]:
    """Values of module-level string constants whose name ends with `suffix`, in the deployed code."""
    found = set()
    for path in CODE_FILES:
        for node in ast.parse(path.read_text()).body:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id.endswith(suffix)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                found.add(node.value.value)
    return found


CODE_TABLES = _code_constants("TABLE_NAME") | {TABLE_NAME}
CODE_QUEUES = _code_constants("QUEUE_NAME") | {QUEUE_NAME, POISON_QUEUE_NAME}


def _role_assignments() -> list[tuple[str, str, str, str | None]]:
    """(scope resource type, role name, principal expression, the collection a looped scope iterates) for every role
    assignment in rbac.bicep."""
    role_vars = RBAC.string_vars()
    found = []
    for declaration in RBAC.declarations.values():
        if not declaration.target.startswith("Microsoft.Authorization/roleAssignments@"):
            continue
        scope = RBAC.declarations[property_value(declaration, "scope").split("[")[0]]
        role = re.search(r"roleDefinitions',\s*(\w+)\)", property_value(declaration, "roleDefinitionId")).group(1)
        found.append(
            (
                scope.target.split("@")[0],
                BUILT_IN_ROLES.get(role_vars[role], role_vars[role]),
                property_value(declaration, "principalId"),
                scope.loop,
            )
        )
    return found


ROLE_ASSIGNMENTS = _role_assignments()
ACCOUNT = "Microsoft.Storage/storageAccounts"


@pytest.mark.parametrize("queue", [QUEUE_NAME, POISON_QUEUE_NAME])
def test_queue_the_code_uses_is_created_by_the_template(queue):
    assert queue in MAIN.string_array_var("queueNames")


def test_table_the_code_uses_is_created_by_the_template():
    assert TABLE_NAME in MAIN.string_array_var("tableNames")


def test_the_template_creates_exactly_the_queues_the_code_names():
    # Every *QUEUE_NAME constant in the code (the f-string POISON_QUEUE_NAME comes from the import).
    assert set(MAIN.string_array_var("queueNames")) == CODE_QUEUES


def test_the_template_creates_exactly_the_tables_the_code_names():
    # Every *TABLE_NAME constant in the code; all are covered by the account-wide Table Data Contributor role.
    assert set(MAIN.string_array_var("tableNames")) == CODE_TABLES


def test_queues_and_tables_are_created_in_the_account_the_roles_cover():
    data = module_params(MAIN.declarations["storageData"])
    assert (
        "storageAccountName" in data,
        property_value(MAIN.declarations["storageData"], "storageAccountName"),
        property_value(MAIN.declarations["rbac"], "storageAccountName"),
    ) == (True, "storage.outputs.name", "storage.outputs.name")


QUEUE = "Microsoft.Storage/storageAccounts/queueServices/queues"
TABLE = "Microsoft.Storage/storageAccounts/tableServices/tables"
SECRET = "Microsoft.KeyVault/vaults/secrets"
IDENTITY = "managedIdentityPrincipalId"


@pytest.mark.parametrize(
    ("scope", "role", "each_of"),
    [
        (ACCOUNT, "Storage Blob Data Owner", None),
        (QUEUE, "Storage Queue Data Contributor", "queueNames"),
        (TABLE, "Storage Table Data Contributor", "tableNames"),
        ("Microsoft.Insights/components", "Monitoring Metrics Publisher", None),
        (SECRET, "Key Vault Secrets User", None),
    ],
)
def test_the_identity_has_the_role_it_needs_on_the_narrowest_scope(scope, role, each_of):
    # Queue, table and secret roles on the queues, tables and secret themselves, not the account or the vault.
    assert (scope, role, IDENTITY, each_of) in ROLE_ASSIGNMENTS


def test_the_identity_has_no_other_role():
    assert len([a for a in ROLE_ASSIGNMENTS if a[2] == IDENTITY]) == 5


def test_the_operator_gets_queue_access_only_and_only_when_asked():
    operator = [a for a in ROLE_ASSIGNMENTS if a[2] != IDENTITY]
    assert (operator, property_value(MAIN.declarations["rbac"], "operatorPrincipalId")) == (
        [(QUEUE, "Storage Queue Data Contributor", "operatorPrincipalId", "queueNames")],
        "operatorQueueAccess ? principalId : ''",
    )


def test_role_assignment_scopes_are_the_deployed_resources():
    scopes = {d.symbol: (property_value(d, "name"), d.loop) for d in RBAC.declarations.values() if d.existing}
    assert scopes == {
        "storageAccount": ("storageAccountName", None),
        "queueService": ("'default'", None),
        "queues": ("queueName", "queueNames"),
        "tableService": ("'default'", None),
        "tables": ("tableName", "tableNames"),
        "vault": ("keyVaultName", None),
        "connectorProvidersSecret": ("connectorProvidersSecretName", None),
        "applicationInsights": ("appInsightsName", None),
    }


@pytest.mark.parametrize("names", ["queueNames", "tableNames"])
def test_the_roles_cover_the_queues_and_tables_the_template_creates(names):
    # main.bicep's list -> storage-data.bicep, which creates them and outputs their names -> rbac.bicep's roles.
    created = STORAGE_DATA.declarations["queues" if names == "queueNames" else "tables"]
    assert (
        property_value(MAIN.declarations["storageData"], names),
        created.loop,
        STORAGE_DATA.outputs()[names].split(" in ")[1].split(":")[0],
        property_value(MAIN.declarations["rbac"], names),
    ) == (names, names, names, f"storageData.outputs.{names}")


def test_the_secret_role_is_on_the_secret_the_app_reads():
    assert (
        property_value(MAIN.declarations["rbac"], "connectorProvidersSecretName"),
        KEYVAULT.outputs()["connectorProvidersSecretName"],
        property_value(API.declarations["api"], "keyVaultAccessIdentityResourceId"),
    ) == ("keyVault.outputs.connectorProvidersSecretName", "connectorProvidersSecret.name", "identityId")


@pytest.mark.parametrize("path", sorted(INFRA.rglob("*.bicep")), ids=lambda p: p.name)
def test_every_role_id_in_the_template_is_a_real_built_in_role(path):
    guids = set(re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", path.read_text().lower()))
    assert guids - BUILT_IN_ROLES.keys() - {GRAPH_APP_ID} == set()  # and Microsoft Graph's app id, the same everywhere


@pytest.mark.parametrize(("name", "guid"), sorted(RBAC.string_vars().items()))
def test_each_role_id_is_commented_with_its_role_name(name, guid):
    line = next(line for line in RBAC.text.splitlines() if line.startswith(f"var {name} "))
    assert line.endswith(f"// {BUILT_IN_ROLES[guid]}")


def test_the_bindings_use_the_queues_and_connection_the_template_provides(functions):
    used = set()
    connections = set()
    for function in functions:
        for binding in function.get_bindings():
            if getattr(binding, "queue_name", None):
                used.add(binding.queue_name)
                connections.add(binding.connection)
    assert (used, connections) == ({QUEUE_NAME, POISON_QUEUE_NAME}, {STORAGE_SETTING})


# ----------------------------------------------------------------------------------------------------------------
# Hosting: Flex Consumption, Python 3.11, bounded scale, no shared keys, no secrets
# ----------------------------------------------------------------------------------------------------------------


def test_storage_has_shared_key_access_disabled():
    assert property_value(MAIN.declarations["storage"], "allowSharedKeyAccess") == "false"


def test_the_plan_is_flex_consumption():
    plan = MAIN.declarations["appServicePlan"]
    assert (property_value(plan, "sku.name"), property_value(plan, "sku.tier")) == ("'FC1'", "'FlexConsumption'")


def test_the_runtime_is_the_python_the_code_targets():
    pyproject = (ROOT / "pyproject.toml").read_text()
    api = MAIN.declarations["api"]
    version = property_value(api, "runtimeVersion").strip("'")
    assert (property_value(api, "runtimeName"), f">={version}," in pyproject) == ("'python'", True)


def test_the_runtime_is_set_in_function_app_config():
    runtime = re.search(r"runtime:\s*\{([^}]*)\}", API.declarations["api"].text).group(1).split()
    assert runtime == ["name:", "runtimeName", "version:", "runtimeVersion"]


def test_no_worker_runtime_setting_on_flex_consumption():
    assert {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION"} & APP_SETTINGS.keys() == set()


def test_maximum_instance_count_is_a_parameter_passed_to_the_scale_settings():
    line, decorators = MAIN.param_line("maximumInstanceCount")
    assert (
        line.startswith("param maximumInstanceCount int"),
        property_value(MAIN.declarations["api"], "maximumInstanceCount"),
        property_value(API.declarations["api"], "maximumInstanceCount"),
        any(d.startswith("@maxValue(") for d in decorators),
    ) == (True, "maximumInstanceCount", "maximumInstanceCount", True)


def test_the_per_instance_concurrency_quoted_in_the_template_is_host_json():
    queues = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    quoted = {int(n) for n in re.findall(r"at most (\d+) updates in flight per instance", MAIN.text)}
    assert quoted == {queues["batchSize"] + queues["newBatchThreshold"]}


def test_the_default_maximum_instance_count_is_one_every_region_accepts():
    # 40: the lowest maximum the Flex Consumption documentation and Microsoft's Flex Bicep samples allow (newer
    # documentation says 1; regions that still apply 40 reject lower values). One default: api.bicep requires it.
    line, _ = MAIN.param_line("maximumInstanceCount")
    assert (line, API.params()["maximumInstanceCount"]) == ("param maximumInstanceCount int = 40", True)


def test_the_readme_gives_the_default_scale_limit_and_the_graph_pace_it_implies():
    queues = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    per_instance = queues["batchSize"] + queues["newBatchThreshold"]
    default = int(re.search(r"^param maximumInstanceCount int = (\d+)", MAIN.text, re.MULTILINE).group(1))
    row = next(line for line in DEPLOY_DOC.splitlines() if line.startswith("| `MAXIMUM_INSTANCE_COUNT` |"))
    pace = f"{per_instance} \N{MULTIPLICATION SIGN} {default} = {per_instance * default}"
    assert (row.split("|")[3].split()[0], pace in DEPLOY_DOC) == (str(default), True)


def _publishing_credential_policies() -> dict[str, str]:
    api = API.declarations["api"]
    start = re.search(r"\n\s*basicPublishingCredentialsPolicies\s*:\s*\[", api.masked)
    assert start is not None, "api.bicep passes no basicPublishingCredentialsPolicies"
    block = api.text[start.end() : matching(api.masked, start.end() - 1)]
    return dict(re.findall(r"name:\s*'(\w+)'\s*allow:\s*(\w+)", block))


def test_basic_publishing_credentials_are_disabled_for_ftp_and_scm():
    assert _publishing_credential_policies() == {"ftp": "false", "scm": "false"}


def test_site_config_keeps_tls_1_2_and_turns_ftp_off():
    # siteConfig replaces the AVM module's default object, so its safer values must be restated.
    api = API.declarations["api"]
    assert (property_value(api, "siteConfig.minTlsVersion"), property_value(api, "siteConfig.ftpsState")) == (
        "'1.2'",
        "'Disabled'",
    )


def test_network_rules_are_off_by_default_and_cover_storage_and_key_vault_together():
    line, _ = MAIN.param_line("appSubnetId")
    allow_unless = r"networkAcls:\s*empty\((\w+)\)\s*\?\s*\{\s*defaultAction:\s*'Allow'"
    assert (
        line,
        re.search(allow_unless, MAIN.declarations["storage"].text).group(1),
        property_value(MAIN.declarations["keyVault"], "allowedSubnetId"),
        re.search(allow_unless, KEYVAULT.declarations["vault"].text).group(1),
        property_value(MAIN.declarations["api"], "virtualNetworkSubnetId"),
    ) == ("param appSubnetId string = ''", "appSubnetId", "appSubnetId", "allowedSubnetId", "appSubnetId")


@pytest.mark.parametrize(
    "path", [*sorted(INFRA.rglob("*.bicep")), INFRA / "main.parameters.json", ROOT / "azure.yaml"], ids=lambda p: p.name
)
def test_no_secret_literal_in_the_template(path):
    text = path.read_text()
    assert [pattern for pattern in SECRET_PATTERNS if pattern in text] == []


# ----------------------------------------------------------------------------------------------------------------
# Wiring: modules, outputs, names (what a compiler would check, read from the text)
# ----------------------------------------------------------------------------------------------------------------

LOCAL_MODULES = {
    symbol: declaration for symbol, declaration in MAIN.declarations.items() if declaration.target.startswith("app/")
}


@pytest.mark.parametrize("symbol", sorted(LOCAL_MODULES))
def test_a_local_module_gets_only_parameters_it_declares(symbol):
    declared = BicepFile.read(INFRA / LOCAL_MODULES[symbol].target).params()
    assert set(module_params(LOCAL_MODULES[symbol])) - declared.keys() == set()


@pytest.mark.parametrize("symbol", sorted(LOCAL_MODULES))
def test_a_local_module_gets_every_parameter_it_requires(symbol):
    required = {
        name for name, needed in BicepFile.read(INFRA / LOCAL_MODULES[symbol].target).params().items() if needed
    }
    assert required - set(module_params(LOCAL_MODULES[symbol])) == set()


LOCAL_MODULE_OUTPUTS_USED = sorted(
    {m for m in re.findall(r"\b(\w+)\.outputs\.(\w+)", MAIN.masked) if m[0] in LOCAL_MODULES}
)


@pytest.mark.parametrize(("symbol", "output"), LOCAL_MODULE_OUTPUTS_USED)
def test_outputs_used_from_local_modules_exist(symbol, output):
    assert output in BicepFile.read(INFRA / LOCAL_MODULES[symbol].target).outputs()


def test_every_file_the_template_mentions_exists():
    mentioned, missing = [], []
    for path in [*INFRA.rglob("*.bicep"), ROOT / "azure.yaml"]:
        text = re.sub(r"https?://\S+", "", path.read_text())
        for name in re.findall(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-]+\.(?:md|py|json|bicep|txt|lock))\b", text):
            mentioned.append(name)
            if not any((base / name).exists() for base in (ROOT, INFRA, path.parent)):
                missing.append(f"{path.name}: {name}")
    assert (bool(mentioned), missing) == (True, [])


@pytest.mark.parametrize(
    "reference", sorted(d.target for d in MAIN.declarations.values() if d.target.startswith("br/")), ids=str
)
def test_registry_modules_are_azure_verified_modules_pinned_to_a_version(reference):
    assert re.fullmatch(r"br/public:avm/res/[\w/-]+:\d+\.\d+\.\d+", reference)


@pytest.mark.parametrize("key", sorted(set(re.findall(r"\babbrs\.(\w+)", MAIN.masked))))
def test_abbreviations_used_are_defined(key):
    assert key in json.loads((INFRA / "abbreviations.json").read_text())


@pytest.mark.parametrize("name", REQUIRED_OUTPUTS)
def test_main_outputs_what_azd_and_the_docs_use(name):
    assert name in MAIN.outputs()


def test_the_webhook_url_output_has_the_apps_route(functions, route_prefix):
    webhook = next(f for f in functions if f.get_function_name() == "course_activity_webhook")
    assert MAIN.outputs()["CONNECTOR_WEBHOOK_URL"].endswith(f"/{route_prefix}/{webhook.get_trigger().route}'")


def test_the_xapi_endpoint_output_is_where_the_apps_xapi_routes_are(functions, route_prefix):
    endpoint = MAIN.outputs()["CONNECTOR_XAPI_ENDPOINT"].split("}", 1)[1].rstrip("'")  # after the host
    routes = [
        f"/{route_prefix}/{f.get_trigger().route}"
        for f in functions
        if "/xapi/" in (getattr(f.get_trigger(), "route", None) or "")
    ]
    assert [r for r in routes if not r.startswith(endpoint)] == []


def test_dev_tools_and_infra_are_not_deployed():
    ignored = set((ROOT / ".funcignore").read_text().split())
    assert {"infra", "azure.yaml", "tests", "devtools", "sandbox"} <= ignored


# ----------------------------------------------------------------------------------------------------------------
# azure.yaml
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def azd():
    return parse_yaml_subset(AZURE_YAML)


def test_azure_yaml_is_well_formed():
    assert parse_yaml_subset(AZURE_YAML)["name"]


def test_azure_yaml_requires_the_azd_release_that_passes_json_into_object_parameters(azd):
    # azd 1.23.4 (azure-dev #6694) substitutes a JSON environment value into an object parameter (connectorProviders);
    # older releases fail with "error unmarshalling Bicep template parameters".
    prerequisites = DEPLOY_DOC.split("### Prerequisites", 1)[1].split("\n### ", 1)[0]
    assert (azd["requiredVersions"]["azd"], "1.23.4" in prerequisites, "not verified" in prerequisites) == (
        ">= 1.23.4",
        True,
        False,
    )


def test_azure_yaml_deploys_this_folder_as_a_python_function_app(azd):
    api = azd["services"]["api"]
    assert (list(azd["services"]), api["project"], api["language"], api["host"]) == (["api"], ".", "python", "function")


@pytest.mark.parametrize(
    ("platform", "shell", "variable"),
    [
        ("posix", "sh", "$AZURE_MANAGED_IDENTITY_PRINCIPAL_ID"),
        ("windows", "pwsh", "$env:AZURE_MANAGED_IDENTITY_PRINCIPAL_ID"),
    ],
)
def test_postprovision_grants_graph_permissions_to_the_identity(azd, platform, shell, variable):
    hook = azd["hooks"]["postprovision"][platform]
    command = f'python -m connector grant-permissions --principal-id "{variable}"'
    assert (hook["shell"], command in hook["run"].splitlines()) == (shell, True)


@pytest.mark.parametrize("platform", ["posix", "windows"])
def test_the_hook_never_reads_the_developers_local_settings(azd, platform):
    # local.settings.json points at the local Graph sandbox and its identity endpoint: the grant must not go there.
    assert "--settings" not in azd["hooks"]["postprovision"][platform]["run"]


def test_the_hook_reads_an_output_of_the_template():
    assert "AZURE_MANAGED_IDENTITY_PRINCIPAL_ID" in MAIN.outputs()


def test_a_failed_grant_stops_azd_up(azd):
    hooks = azd["hooks"]["postprovision"]
    assert {hooks[p]["continueOnError"] for p in ("posix", "windows")} == {"false"}


def test_the_service_name_matches_the_azd_service_tag(azd):
    service = re.search(r"param serviceName string = '(\w+)'", API.text).group(1)
    tags = property_value(API.declarations["api"], "tags")
    assert (tags, service in azd["services"]) == ("union(tags, { 'azd-service-name': serviceName })", True)


# ----------------------------------------------------------------------------------------------------------------
# README and the deploy doc against the app
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def functions():
    # get_functions() may be called once per app object, and two helpers cache it: devtools.runner.index_functions
    # and tests.support.functions.indexed. The other tests use the latter in this process, so this does too (calling
    # the former as well would make whichever runs second raise).
    os.environ.setdefault("CONNECTOR_PROVIDERS", "{}")
    from tests.support.functions import indexed

    return list(indexed().values())


@pytest.fixture(scope="module")
def route_prefix():
    return json.loads((ROOT / "host.json").read_text())["extensions"]["http"]["routePrefix"]


def _methods(function) -> list[str]:
    return [getattr(m, "value", str(m)) for m in (function.get_trigger().methods or [])]


def test_readme_names_every_function(functions):
    assert [f.get_function_name() for f in functions if f"`{f.get_function_name()}`" not in README] == []


def test_readme_shows_every_http_route_as_the_app_serves_it(functions, route_prefix):
    routes = [
        f"`{method} /{route_prefix}/{f.get_trigger().route}`"
        for f in functions
        if f.get_trigger().type == "httpTrigger"
        for method in _methods(f)
    ]
    assert (bool(routes), [r for r in routes if r not in README]) == (True, [])


def test_readme_shows_the_queue_each_queue_function_listens_to(functions):
    queues = [f"queue `{f.get_trigger().queue_name}`" for f in functions if f.get_trigger().type == "queueTrigger"]
    assert (bool(queues), [q for q in queues if q not in README]) == (True, [])


def test_the_deploy_doc_asks_for_the_key_of_a_real_http_function(functions):
    named = set(re.findall(r"--function-name (\w+)", DEPLOY_DOC))
    http = {f.get_function_name() for f in functions if f.get_trigger().type == "httpTrigger"}
    assert (bool(named), named - http) == (True, set())


@pytest.mark.parametrize(
    "variable",
    sorted(
        m for p in PARAMETERS.values() for m in re.findall(r"\$\{(\w+)\}", p["value"]) if not m.startswith("AZURE_")
    ),
)
def test_the_deploy_doc_explains_every_azd_variable_the_template_reads(variable):
    assert f"`{variable}`" in DEPLOY_DOC or f"azd env set {variable}" in DEPLOY_DOC


def test_the_deploy_doc_says_how_to_rerun_the_hook():
    assert "azd hooks run postprovision" in DEPLOY_DOC
