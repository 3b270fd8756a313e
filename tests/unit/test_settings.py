"""Every setting is checked at start-up, and a bad one is named."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from connector.settings import SettingsError, load_settings
from tests.support.signing import SECRET

GENERATED = "Q2hhbmdlLW1lLXRvLWEtcmVhbC1nZW5lcmF0ZWQtc2V"  # secrets.token_urlsafe(32): 43 characters
GOOD = {"CONNECTOR_PROVIDERS": json.dumps({"reg-1": {"webhookSecrets": [SECRET]}})}


def settings_error(**env: str) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings({**GOOD, **env})
    return str(caught.value)


def test_defaults():
    settings = load_settings(GOOD)
    assert settings.graph_base_url == "https://graph.microsoft.com/v1.0"
    assert settings.graph_scope == "https://graph.microsoft.com/.default"
    assert settings.provider("REG-1").webhook_secrets == (SECRET,)
    assert settings.storage is None
    assert not settings.managed_identity_available


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{not json", "CONNECTOR_PROVIDERS: is not valid JSON"),
        ('["reg-1"]', "CONNECTOR_PROVIDERS: must be a JSON object"),
        ('{"reg-1": "whsec_x"}', "CONNECTOR_PROVIDERS['reg-1']: must be a JSON object"),
        ('{"reg-1": {"webhookSecrets": "whsec_x"}}', "CONNECTOR_PROVIDERS['reg-1'].webhookSecrets: must be a list"),
        ('{"reg-1": {"webhookSecrets": ["secret"]}}', "webhookSecrets[0]: must be a string 'whsec_<base64>'"),
        ('{"reg-1": {"webhookSecrets": ["whsec_!!!"]}}', "webhookSecrets[0]: is not valid base64"),
        ('{"reg-1": {"webhookSecrets": ["whsec_c2hvcnQ="]}}', "webhookSecrets[0]: is too short"),
        ('{"a": {}, "A": {}}', "is configured twice"),
        ('{"..": {}}', "CONNECTOR_PROVIDERS['..']: a registrationId must be a non-empty id without '/' or '?', not"),
    ],
)
def test_a_bad_connector_providers_names_the_setting_and_the_problem(raw, expected):
    assert expected in settings_error(CONNECTOR_PROVIDERS=raw)


def test_providers_may_carry_more_keys_and_no_secrets():
    settings = load_settings({"CONNECTOR_PROVIDERS": '{"reg-2": {"futureOption": true}}'})
    assert settings.provider("reg-2").webhook_secrets == ()
    assert settings.provider("reg-2").options == {"futureOption": True}


@pytest.mark.parametrize(
    "url",
    ["graph.microsoft.com/v1.0", "http://graph.microsoft.com/v1.0", "https://graph.microsoft.com", "ftp://x/v1.0"],
)
def test_a_bad_graph_base_url_is_named(url):
    assert settings_error(GRAPH_BASE_URL=url).startswith("GRAPH_BASE_URL:")


def test_a_loopback_sandbox_may_use_http_and_keeps_the_global_graph_scope():
    settings = load_settings({**GOOD, "GRAPH_BASE_URL": "http://127.0.0.1:8080/v1.0/"})
    assert settings.graph_base_url == "http://127.0.0.1:8080/v1.0"
    assert settings.graph_host == "127.0.0.1"
    assert settings.graph_scope == "https://graph.microsoft.com/.default"


def test_a_national_cloud_gets_its_own_scope():
    settings = load_settings({**GOOD, "GRAPH_BASE_URL": "https://graph.microsoft.us/v1.0"})
    assert settings.graph_scope == "https://graph.microsoft.us/.default"


def test_azure_client_id_must_be_a_guid():
    assert settings_error(AZURE_CLIENT_ID="my-identity").startswith("AZURE_CLIENT_ID:")
    settings = load_settings({**GOOD, "AZURE_CLIENT_ID": "6F1C2B5E-9A3D-4E7F-8B1A-2C3D4E5F6A7B"})
    assert settings.azure_client_id == "6f1c2b5e-9a3d-4e7f-8b1a-2c3d4e5f6a7b"


def test_storage_from_a_connection_string_or_development_storage():
    from connector.adapters.storage import queue_client

    settings = load_settings({**GOOD, "AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert queue_client(settings, "q").url == "http://127.0.0.1:10001/devstoreaccount1/q"
    assert settings_error(AzureWebJobsStorage="not a connection string").startswith("AzureWebJobsStorage:")


def test_identity_based_storage_settings():
    storage = load_settings(
        {
            **GOOD,
            "AzureWebJobsStorage__accountName": "connectorstore",
            "AzureWebJobsStorage__credential": "managedidentity",
            "AzureWebJobsStorage__clientId": "6f1c2b5e-9a3d-4e7f-8b1a-2c3d4e5f6a7b",
        }
    ).storage
    assert storage.queue_service_uri == "https://connectorstore.queue.core.windows.net"
    assert storage.table_service_uri == "https://connectorstore.table.core.windows.net"
    assert storage.client_id == "6f1c2b5e-9a3d-4e7f-8b1a-2c3d4e5f6a7b"
    assert settings_error(AzureWebJobsStorage__queueServiceUri="https://q").startswith(
        "AzureWebJobsStorage__tableServiceUri:"
    )


def test_missing_storage_is_named_when_needed():
    with pytest.raises(SettingsError, match=r"^AzureWebJobsStorage: is not set"):
        load_settings(GOOD).require_storage()


def test_the_app_fails_at_start_up_naming_a_bad_setting():
    """Importing function_app is the host's start-up: it must stop there, with the setting's name."""
    result = subprocess.run(
        [sys.executable, "-c", "import function_app"],
        env={"CONNECTOR_PROVIDERS": "{oops", "PATH": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "SettingsError: CONNECTOR_PROVIDERS: is not valid JSON" in result.stderr


def test_throttle_backoff_is_a_bounded_number_of_seconds():
    assert load_settings(GOOD).throttle_backoff_seconds == 30.0
    assert load_settings({**GOOD, "CONNECTOR_THROTTLE_BACKOFF_SECONDS": "0.5"}).throttle_backoff_seconds == 0.5
    for bad in ("soon", "0", "-1", "7200"):
        assert settings_error(CONNECTOR_THROTTLE_BACKOFF_SECONDS=bad).startswith("CONNECTOR_THROTTLE_BACKOFF_SECONDS:")


def test_xapi_and_create_missing_options_are_parsed():
    raw = {
        "reg-x": {
            "xapiCredentials": [{"key": "lms", "secret": GENERATED}],
            "createMissing": True,
            "xapiActivityId": "derived",
            "contentIdPattern": "/courses/(?P<id>[^/]+)",
        }
    }
    provider = load_settings({"CONNECTOR_PROVIDERS": json.dumps(raw)}).provider("reg-x")
    assert provider.xapi_credentials[0].key == "lms"
    assert provider.create_missing is True
    assert provider.xapi_activity_id == "derived"
    assert provider.content_id_pattern.search("https://lms.example/courses/abc").group("id") == "abc"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"xapiCredentials": {"key": "a"}}, "xapiCredentials: must be a list"),
        ({"xapiCredentials": [{"key": "a"}]}, "xapiCredentials[0]: must be"),
        ({"xapiCredentials": [{"key": "a:b", "secret": GENERATED}]}, "xapiCredentials[0].key"),
        ({"xapiCredentials": [{"key": "a", "secret": "short"}]}, "xapiCredentials[0].secret"),
        ({"createMissing": "yes"}, "createMissing: must be true or false"),
        ({"xapiActivityId": "email"}, "xapiActivityId: must be one of registration, derived"),
        ({"contentIdPattern": "(unclosed"}, "contentIdPattern: is not a valid RE2 regular expression"),
        ({"contentIdPattern": "no-group"}, "contentIdPattern: needs a group"),
        ({"contentIdPattern": r"/courses/(?P<id>\w+)(?=/)"}, "contentIdPattern: is not a valid RE2 regular expression"),
        ({"contentIdPattern": r"/(?P<id>(\w)\2)"}, "contentIdPattern: is not a valid RE2 regular expression"),
    ],
)
def test_bad_provider_options_are_named(config, expected):
    assert expected in settings_error(CONNECTOR_PROVIDERS=json.dumps({"reg-x": config}))


@pytest.mark.parametrize("pattern", ["(unclosed", "no-group", r"(?P<id>\w+)(?=/)", 42])
def test_a_bad_content_id_pattern_suggests_a_pattern_that_cannot_backtrack(pattern):
    message = settings_error(CONNECTOR_PROVIDERS=json.dumps({"reg-x": {"contentIdPattern": pattern}}))
    assert '"/courses/(?P<id>[^/?#]+)"' in message
    assert "[^/]+)$" not in message


def test_the_content_id_pattern_runs_on_a_linear_time_engine():
    """Provider-supplied: Python's backtracking `re` took seconds on (?P<id>[^/]+)$ against a 40,000-character IRI."""
    raw = {"reg-x": {"contentIdPattern": "(?P<id>[^/]+)$"}}
    pattern = load_settings({"CONNECTOR_PROVIDERS": json.dumps(raw)}).provider("reg-x").content_id_pattern
    assert type(pattern).__module__.split(".")[0] == "re2"
    assert pattern.search("https://lms.example/courses/" + "a" * 40_000 + "/") is None
    assert pattern.search("https://lms.example/courses/é-101").group("id") == "é-101"


@pytest.mark.parametrize(
    "secret",
    ["short", "0123456789abcdef", "x" * 31, "x" * 43, "a-b_c" * 8, "correct horse battery staple", "p@ssw0rd!" * 4, 42],
)
def test_an_lrs_secret_must_be_generated_and_the_error_says_how(secret):
    config = {"xapiCredentials": [{"key": "lms", "secret": secret}]}
    message = settings_error(CONNECTOR_PROVIDERS=json.dumps({"reg-x": config}))
    assert message.startswith("CONNECTOR_PROVIDERS['reg-x'].xapiCredentials[0].secret: must be a generated secret")
    assert "python -m connector new-secret --xapi" in message


@pytest.mark.parametrize(
    "secret", [GENERATED, "0123456789abcdef0123456789ABCDEF", "9f86d081884c7d659a2feaa0c55ad015" * 2]
)
def test_a_generated_lrs_secret_is_accepted(secret):
    config = {"xapiCredentials": [{"key": "lms", "secret": secret}]}
    assert load_settings({"CONNECTOR_PROVIDERS": json.dumps({"reg-x": config})}).provider("reg-x").xapi_credentials


def test_the_platforms_keys_are_parsed():
    raw = {
        "reg-x": {
            "caliperKeys": [GENERATED],
            "caliperCompletion": "Graded",
            "scormCloudCredentials": [{"userName": "viva", "password": GENERATED}],
            "scormFailedInProgress": True,
            "canvasJwksUrl": "https://8axpcl50e4.execute-api.us-east-1.amazonaws.com/main/jwks",
            "canvasAllowUnsigned": False,
            "canvasRootAccountUuids": ["Kq2uJ4oTy8wB1cR5dXe7F3gH9iL0mN6pS2tV4"],
        }
    }
    provider = load_settings({"CONNECTOR_PROVIDERS": json.dumps(raw)}).provider("reg-x")
    assert provider.caliper_keys == (GENERATED,)
    assert provider.caliper_completion == "Graded"
    assert [(c.user_name, c.password) for c in provider.scorm_cloud_credentials] == [("viva", GENERATED)]
    assert GENERATED not in repr(provider.scorm_cloud_credentials)
    assert provider.scorm_failed_in_progress is True
    assert provider.canvas_jwks_url.endswith("/main/jwks")
    assert provider.canvas_root_account_uuids == ("Kq2uJ4oTy8wB1cR5dXe7F3gH9iL0mN6pS2tV4",)
    assert provider.unknown_keys == []


def test_the_platforms_keys_default_to_taking_nothing():
    provider = load_settings(GOOD).provider("reg-1")
    assert (provider.caliper_keys, provider.scorm_cloud_credentials, provider.canvas_jwks_url) == ((), (), None)
    assert (provider.caliper_completion, provider.canvas_allow_unsigned) == ("Completed", False)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"caliperKeys": GENERATED}, "caliperKeys: must be a list"),
        ({"caliperKeys": ["caliper-api-key"]}, "caliperKeys[0]: must be a generated secret"),
        ({"caliperCompletion": "Viewed"}, "caliperCompletion: must be one of Completed, Submitted, Graded"),
        ({"scormCloudCredentials": {"userName": "v"}}, "scormCloudCredentials: must be a list"),
        ({"scormCloudCredentials": [{"user": "v", "password": GENERATED}]}, "scormCloudCredentials[0]: must be"),
        ({"scormCloudCredentials": [{"userName": "a:b", "password": GENERATED}]}, "scormCloudCredentials[0].userName"),
        ({"scormCloudCredentials": [{"userName": "v", "password": "secret"}]}, "scormCloudCredentials[0].password"),
        ({"scormFailedInProgress": "no"}, "scormFailedInProgress: must be true or false"),
        ({"canvasJwksUrl": "8axpcl50e4.execute-api.us-east-1.amazonaws.com/main/jwks"}, "canvasJwksUrl: must be"),
        ({"canvasJwksUrl": "http://keys.example/jwks"}, "canvasJwksUrl: must use https"),
        ({"canvasAllowUnsigned": 1}, "canvasAllowUnsigned: must be true or false"),
        ({"canvasRootAccountUuids": "Kq2u"}, "canvasRootAccountUuids: must be a list of non-empty strings"),
    ],
)
def test_bad_platform_keys_are_named(config, expected):
    assert expected in settings_error(CONNECTOR_PROVIDERS=json.dumps({"reg-x": config}))


def test_a_generated_key_or_password_error_says_which_command_makes_one():
    message = settings_error(CONNECTOR_PROVIDERS=json.dumps({"reg-x": {"caliperKeys": ["x" * 43]}}))
    assert "python -m connector new-secret --caliper" in message
    config = {"scormCloudCredentials": [{"userName": "v", "password": "x"}]}
    assert "new-secret --scorm-cloud" in settings_error(CONNECTOR_PROVIDERS=json.dumps({"reg-x": config}))


def test_the_caliper_completions_are_the_mappers():
    from connector.domain.formats.caliper import COMPLETIONS
    from connector.settings import CALIPER_COMPLETIONS

    assert CALIPER_COMPLETIONS == COMPLETIONS


TENANT = "8d3f7c1e-0b7a-4f5e-9a1d-2c6b4e8f0a13"
APP = "a11a11a1-0000-4000-8000-0000000000a1"


def tenant_providers(**config: object) -> str:
    return json.dumps({"reg-t": {"webhookSecrets": [SECRET], "tenantId": TENANT, **config}, "reg-home": {}})


def test_a_provider_may_name_its_customers_tenant_with_the_multi_tenant_app():
    settings = load_settings({"CONNECTOR_PROVIDERS": tenant_providers(), "CONNECTOR_APP_CLIENT_ID": APP.upper()})
    assert (settings.provider("reg-t").tenant_id, settings.provider("reg-home").tenant_id) == (TENANT, None)
    assert settings.app_client_id == APP
    assert settings.tenants == {TENANT: [settings.provider("reg-t")]}
    assert settings.admin_consent_url(TENANT) == (
        f"https://login.microsoftonline.com/{TENANT}/adminconsent?client_id={APP}"
    )
    assert settings.provider("reg-t").unknown_keys == []


def test_a_tenant_needs_the_multi_tenant_apps_client_id():
    message = settings_error(CONNECTOR_PROVIDERS=tenant_providers())
    assert message.startswith("CONNECTOR_APP_CLIENT_ID: is required when a provider names a tenantId")
    assert "CONNECTOR_PROVIDERS['reg-t']" in message
    assert load_settings(GOOD).app_client_id is None  # no tenant, no app needed


@pytest.mark.parametrize("tenant", ["contoso.onmicrosoft.com", "", "not-a-guid", 42, ["x"]])
def test_a_tenant_id_must_be_a_guid(tenant):
    message = settings_error(CONNECTOR_PROVIDERS=tenant_providers(tenantId=tenant), CONNECTOR_APP_CLIENT_ID=APP)
    assert message.startswith("CONNECTOR_PROVIDERS['reg-t'].tenantId: must be the customer's tenant id, a GUID")


def test_the_app_client_id_must_be_a_guid():
    message = settings_error(CONNECTOR_PROVIDERS=tenant_providers(), CONNECTOR_APP_CLIENT_ID="connector-app")
    assert message == "CONNECTOR_APP_CLIENT_ID: must be the client id (a GUID) of the multi-tenant app registration"


def test_the_authority_host_is_https_and_names_the_consent_url():
    env = {"CONNECTOR_PROVIDERS": tenant_providers(), "CONNECTOR_APP_CLIENT_ID": APP}
    settings = load_settings({**env, "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.us/"})
    assert settings.admin_consent_url(TENANT).startswith(f"https://login.microsoftonline.us/{TENANT}/adminconsent?")
    bare = load_settings({**env, "AZURE_AUTHORITY_HOST": "login.microsoftonline.us"})  # as azure.identity names it
    assert bare.authority_host == "https://login.microsoftonline.us"
    for bad in ("http://login.microsoftonline.com", "https://login.example/tenant", "login.example/tenant"):
        assert settings_error(**env, AZURE_AUTHORITY_HOST=bad).startswith("AZURE_AUTHORITY_HOST: must be the https")
