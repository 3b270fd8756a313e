"""The connector's settings, read once from the environment (app settings in Azure, local.settings.json locally).

Every setting is checked when the app starts, so that a typo fails the deployment with the setting's name instead
of failing the first callback at 3 a.m.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import logging
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from re2 import _Regexp

logger = logging.getLogger(__name__)

DEFAULT_GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"
DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
STORAGE_SETTING = "AzureWebJobsStorage"
APP_CLIENT_ID_SETTING = "CONNECTOR_APP_CLIENT_ID"
_LOOPBACK_NAMES = {"localhost"}


class SettingsError(ValueError):
    """A setting is missing or malformed; the message starts with the setting's name."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting


@dataclass(frozen=True)
class XapiCredential:
    key: str
    secret: str


@dataclass(frozen=True)
class ScormCloudCredential:
    user_name: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class ProviderSettings:
    """One learning provider's configuration, from CONNECTOR_PROVIDERS[registrationId]."""

    registration_id: str
    webhook_secrets: tuple[str, ...] = ()
    options: Mapping[str, object] = field(default_factory=dict)
    xapi_credentials: tuple[XapiCredential, ...] = ()
    create_missing: bool = False
    learner_match: str = "email"
    """How a learnerUserId (or assignerUserId) that is not an Entra object id names its user: "email"
    (userPrincipalName or mail) or "employeeId"."""
    xapi_activity_id: str = "registration"
    """How an xAPI statement names its Graph activity: "registration" (context.registration when present, else
    derived) or "derived" (always from the learner and the activity id)."""
    content_id_pattern: _Regexp | None = None
    """Extracts the learning content's external id from the statement's activity IRI (group "id", or group 1); an
    RE2 pattern, with `re`'s search, groups and groupindex."""
    caliper_keys: tuple[str, ...] = ()
    """The API keys a Caliper sensor sends as its Authorization (with or without `Bearer `)."""
    caliper_completion: str = "Completed"
    """Which Caliper action completes an activity: "Completed", "Submitted" or "Graded"."""
    scorm_cloud_credentials: tuple[ScormCloudCredential, ...] = ()
    scorm_failed_in_progress: bool = False
    """A SCORM registration completed but FAILED stays in progress (Graph has no success field)."""
    canvas_jwks_url: str | None = None
    """Where Instructure publishes the keys that sign Canvas Live Events; None: no signed event can be verified."""
    canvas_allow_unsigned: bool = False
    """Unsigned Canvas Live Events are accepted (anyone who knows the URL can send them)."""
    canvas_root_account_uuids: tuple[str, ...] = ()
    """The Canvas accounts whose events are this provider's (`metadata.root_account_uuid`); empty: any account's.
    Instructure signs every Canvas customer's events with the same keys."""
    tenant_id: str | None = None
    """The customer tenant (a GUID, lower case) whose Graph this provider's activities are in, reached through the
    multi-tenant app (CONNECTOR_APP_CLIENT_ID); None: the managed identity's own tenant."""

    @property
    def unknown_keys(self) -> list[str]:
        """Keys of its configuration this version does not use: most likely typos, which `check` reports."""
        return sorted(set(self.options) - PROVIDER_KEYS)


@dataclass(frozen=True)
class StorageSettings:
    """Where the queues and tables live: a connection string (Azurite, or keys) or an identity-based account."""

    connection_string: str | None = None
    queue_service_uri: str | None = None
    table_service_uri: str | None = None
    client_id: str | None = None


@dataclass(frozen=True)
class Settings:
    providers: Mapping[str, ProviderSettings]
    graph_base_url: str = DEFAULT_GRAPH_BASE_URL
    azure_client_id: str | None = None
    storage: StorageSettings | None = None
    managed_identity_available: bool = False
    throttle_backoff_seconds: float = 30.0
    app_client_id: str | None = None
    """The multi-tenant app registration that trusts the managed identity: how providers with a tenantId are
    reached."""
    authority_host: str = DEFAULT_AUTHORITY_HOST
    reconcile_schedule: str | None = None
    """The reconciliation timer's NCRONTAB schedule (UTC), read by the Functions host; None: not set, the timer off."""
    reconcile_since_days: float = 30.0
    """The timer reconciles the activities with an attempt in these last days."""

    def provider(self, registration_id: str) -> ProviderSettings | None:
        """Looks a provider up by its registrationId; GUIDs compare without regard to case."""
        found = self.providers.get(registration_id)
        if found is None:
            found = self.providers.get(registration_id.lower())
        return found

    @property
    def graph_host(self) -> str:
        return urlsplit(self.graph_base_url).hostname or ""

    @property
    def graph_scope(self) -> str:
        """The token scope: the Graph host's own, except that a loopback sandbox stands in for global Graph."""
        host = self.graph_host
        return "https://graph.microsoft.com/.default" if _is_loopback(host) else f"https://{host}/.default"

    @property
    def tenants(self) -> dict[str, list[ProviderSettings]]:
        """Each customer tenant a provider names, with its providers."""
        found: dict[str, list[ProviderSettings]] = {}
        for provider in self.providers.values():
            if provider.tenant_id is not None:
                found.setdefault(provider.tenant_id, []).append(provider)
        return found

    def admin_consent_url(self, tenant_id: str) -> str:
        """Where a customer tenant's administrator grants the multi-tenant app its Graph application roles."""
        return f"{self.authority_host}/{tenant_id}/adminconsent?client_id={self.app_client_id}"

    def require_storage(self) -> StorageSettings:
        if self.storage is None:
            raise SettingsError(
                STORAGE_SETTING,
                "is not set: give a connection string, or identity-based AzureWebJobsStorage__accountName "
                "(or __queueServiceUri and __tableServiceUri)",
            )
        return self.storage


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Reads and checks every setting; raises SettingsError naming the first bad one."""
    env = os.environ if environ is None else environ
    providers = _parse_providers(env.get("CONNECTOR_PROVIDERS"))
    return Settings(
        providers=providers,
        graph_base_url=_parse_graph_base_url(env.get("GRAPH_BASE_URL")),
        azure_client_id=_parse_client_id("AZURE_CLIENT_ID", env.get("AZURE_CLIENT_ID")),
        storage=_parse_storage(env),
        managed_identity_available=bool(env.get("IDENTITY_ENDPOINT") or env.get("MSI_ENDPOINT")),
        throttle_backoff_seconds=_parse_amount(
            "CONNECTOR_THROTTLE_BACKOFF_SECONDS", env.get("CONNECTOR_THROTTLE_BACKOFF_SECONDS"), 30.0, "seconds", 3600
        ),
        app_client_id=_parse_app_client_id(env.get(APP_CLIENT_ID_SETTING), providers),
        authority_host=_parse_authority_host(env.get("AZURE_AUTHORITY_HOST")),
        reconcile_schedule=_parse_schedule("CONNECTOR_RECONCILE_SCHEDULE", env.get("CONNECTOR_RECONCILE_SCHEDULE")),
        reconcile_since_days=_parse_amount(
            "CONNECTOR_RECONCILE_SINCE_DAYS", env.get("CONNECTOR_RECONCILE_SINCE_DAYS"), 30.0, "days", 3650
        ),
    )


#: Every environment variable load_settings reads.
SETTING_NAMES = (
    "CONNECTOR_PROVIDERS",
    "GRAPH_BASE_URL",
    "AZURE_CLIENT_ID",
    "IDENTITY_ENDPOINT",
    "MSI_ENDPOINT",
    "CONNECTOR_THROTTLE_BACKOFF_SECONDS",
    APP_CLIENT_ID_SETTING,
    "AZURE_AUTHORITY_HOST",
    "CONNECTOR_RECONCILE_SCHEDULE",
    "CONNECTOR_RECONCILE_SINCE_DAYS",
    STORAGE_SETTING,
    *(f"{STORAGE_SETTING}__{part}" for part in ("accountName", "queueServiceUri", "tableServiceUri", "clientId")),
)


def get_settings() -> Settings:
    """The settings the environment holds now, parsed once for each distinct set of values (a dozen lookups per
    call): a process sees its app settings; a test that changes one gets settings (and parts) of its own."""
    return _parsed(tuple(os.environ.get(name) for name in SETTING_NAMES))


@lru_cache(maxsize=16)
def _parsed(values: tuple[str | None, ...]) -> Settings:
    return load_settings({name: value for name, value in zip(SETTING_NAMES, values, strict=True) if value is not None})


def _parse_providers(raw: str | None) -> dict[str, ProviderSettings]:
    name = "CONNECTOR_PROVIDERS"
    if raw is None or not raw.strip():
        logger.warning("%s is not set: no provider can send callbacks until one is configured", name)
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(name, f"is not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(data, dict):
        raise SettingsError(name, 'must be a JSON object keyed by registrationId, e.g. {"<id>": {...}}')
    providers: dict[str, ProviderSettings] = {}
    for registration_id, config in data.items():
        where = f"{name}[{registration_id!r}]"
        if not registration_id.strip().strip(".") or "/" in registration_id or "?" in registration_id:
            raise SettingsError(where, "a registrationId must be a non-empty id without '/' or '?', not only dots")
        if not isinstance(config, dict):
            raise SettingsError(where, 'must be a JSON object, e.g. {"webhookSecrets": ["whsec_..."]}')
        secrets = config.get("webhookSecrets", [])
        if not isinstance(secrets, list):
            raise SettingsError(f"{where}.webhookSecrets", "must be a list of secrets")
        for index, secret in enumerate(secrets):
            _check_webhook_secret(f"{where}.webhookSecrets[{index}]", secret)
        key = registration_id.lower()
        if key in providers:
            raise SettingsError(where, "is configured twice (registrationIds compare without regard to case)")
        unknown = set(config) - PROVIDER_KEYS
        if unknown:
            logger.warning("%s has keys this version does not use: %s", where, ", ".join(sorted(unknown)))
        options = {k: v for k, v in config.items() if k != "webhookSecrets"}
        providers[key] = ProviderSettings(
            registration_id,
            tuple(secrets),
            options,
            xapi_credentials=tuple(
                XapiCredential(*pair)
                for pair in _parse_credentials(
                    f"{where}.xapiCredentials", config.get("xapiCredentials", []), ("key", "secret"), "--xapi"
                )
            ),
            create_missing=_parse_flag(f"{where}.createMissing", config.get("createMissing", False)),
            learner_match=_parse_choice(
                f"{where}.learnerMatch", config.get("learnerMatch", "email"), ("email", "employeeId")
            ),
            xapi_activity_id=_parse_choice(
                f"{where}.xapiActivityId", config.get("xapiActivityId", "registration"), ("registration", "derived")
            ),
            content_id_pattern=_parse_pattern(f"{where}.contentIdPattern", config.get("contentIdPattern")),
            **_platform_options(where, config),
            tenant_id=_parse_tenant_id(f"{where}.tenantId", config.get("tenantId")),
        )
    return providers


PROVIDER_KEYS = {
    "webhookSecrets",
    "xapiCredentials",
    "createMissing",
    "learnerMatch",
    "xapiActivityId",
    "contentIdPattern",
    "caliperKeys",
    "caliperCompletion",
    "scormCloudCredentials",
    "scormFailedInProgress",
    "canvasJwksUrl",
    "canvasAllowUnsigned",
    "canvasRootAccountUuids",
    "tenantId",
}


def _parse_tenant_id(where: str, raw: object) -> str | None:
    if raw is None:
        return None
    try:
        if isinstance(raw, str):
            return str(uuid.UUID(raw.strip()))
    except ValueError:
        pass
    raise SettingsError(
        where,
        "must be the customer's tenant id, a GUID like 8d3f7c1e-0b7a-4f5e-9a1d-2c6b4e8f0a13 (Microsoft Entra admin "
        "center, Overview: Tenant ID), not a domain name",
    )


def _parse_app_client_id(raw: str | None, providers: Mapping[str, ProviderSettings]) -> str | None:
    app_client_id = _parse_client_id(APP_CLIENT_ID_SETTING, raw, "of the multi-tenant app registration")
    tenant_provider = next((p for p in providers.values() if p.tenant_id is not None), None)
    if app_client_id is None and tenant_provider is not None:
        raise SettingsError(
            APP_CLIENT_ID_SETTING,
            f"is required when a provider names a tenantId (CONNECTOR_PROVIDERS[{tenant_provider.registration_id!r}]"
            "): the application (client) id of the multi-tenant app registration that trusts the managed identity "
            "(see the README, Serve many tenants)",
        )
    return app_client_id


def _parse_authority_host(raw: str | None) -> str:
    name = "AZURE_AUTHORITY_HOST"
    if raw is None or not raw.strip():
        return DEFAULT_AUTHORITY_HOST
    url = raw.strip().rstrip("/")
    if "://" not in url:  # azure.identity's own constants name the host alone, e.g. login.microsoftonline.us
        url = f"https://{url}"
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise SettingsError(name, f"must be the https URL of an Entra authority, like {DEFAULT_AUTHORITY_HOST}")
    return url


def _parse_credentials(where: str, raw: object, names: tuple[str, str], option: str) -> list[tuple[str, str]]:
    """A list of HTTP Basic credentials, `[{"<user>": "...", "<secret>": "..."}]`, each secret generated."""
    user, secret = names
    one = f'{{"{user}": "...", "{secret}": "..."}}'
    if not isinstance(raw, list):
        raise SettingsError(where, f"must be a list like [{one}]")
    credentials = []
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        if not isinstance(item, dict) or set(item) != {user, secret}:
            raise SettingsError(at, f"must be {one}, as in [{one}]")
        name = item[user]
        if not isinstance(name, str) or not name.strip() or ":" in name:
            raise SettingsError(f"{at}.{user}", "must be a non-empty string without ':' (HTTP Basic user)")
        _check_generated(f"{at}.{secret}", item[secret], option)
        credentials.append((name, item[secret]))
    return credentials


def _platform_options(where: str, config: Mapping[str, object]) -> dict[str, Any]:
    """The keys of the platforms' own formats (IMS Caliper, SCORM Cloud postbacks, Canvas Live Events)."""
    keys = config.get("caliperKeys", [])
    if not isinstance(keys, list):
        raise SettingsError(f"{where}.caliperKeys", 'must be a list of API keys, e.g. ["<key>"]')
    for index, key in enumerate(keys):
        _check_generated(f"{where}.caliperKeys[{index}]", key, "--caliper")
    return {
        "caliper_keys": tuple(keys),
        "caliper_completion": _parse_choice(
            f"{where}.caliperCompletion", config.get("caliperCompletion", "Completed"), CALIPER_COMPLETIONS
        ),
        "scorm_cloud_credentials": tuple(
            ScormCloudCredential(*pair)
            for pair in _parse_credentials(
                f"{where}.scormCloudCredentials",
                config.get("scormCloudCredentials", []),
                ("userName", "password"),
                "--scorm-cloud",
            )
        ),
        "scorm_failed_in_progress": _parse_flag(
            f"{where}.scormFailedInProgress", config.get("scormFailedInProgress", False)
        ),
        "canvas_jwks_url": _parse_jwks_url(f"{where}.canvasJwksUrl", config.get("canvasJwksUrl")),
        "canvas_allow_unsigned": _parse_flag(f"{where}.canvasAllowUnsigned", config.get("canvasAllowUnsigned", False)),
        "canvas_root_account_uuids": _parse_names(
            f"{where}.canvasRootAccountUuids", config.get("canvasRootAccountUuids", []), "a Canvas account's uuid"
        ),
    }


def _parse_names(where: str, raw: object, what: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(item, str) and item.strip() for item in raw):
        raise SettingsError(where, f"must be a list of non-empty strings, each {what}")
    return tuple(item.strip() for item in raw)


#: The Caliper actions that may complete an activity (connector.domain.formats.caliper.COMPLETIONS).
CALIPER_COMPLETIONS = ("Completed", "Submitted", "Graded")


def _parse_jwks_url(where: str, raw: object) -> str | None:
    if raw is None:
        return None
    rule = "must be the https URL of Instructure's published key set (JWKS)"
    if not isinstance(raw, str):
        raise SettingsError(where, rule)
    parts = urlsplit(raw)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SettingsError(where, rule)
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise SettingsError(where, "must use https (plain http is allowed only on loopback, for tests)")
    return raw


def _check_generated(where: str, secret: object, option: str) -> None:
    if not _generated(secret):
        raise SettingsError(
            where,
            f"must be a generated secret: at least {_MIN_XAPI_SECRET} URL-safe characters (letters, digits, '-', "
            f"'_'), not a word or a pattern; create one with: python -m connector new-secret {option}",
        )


#: LRS secrets guard an anonymous route: `new-secret --xapi` prints secrets.token_urlsafe(32), 43 characters.
_MIN_XAPI_SECRET = 32
_URL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _generated(secret: object) -> bool:
    """Long, URL-safe, and varied (a generated one uses dozens of different characters; hex uses 16)."""
    return (
        isinstance(secret, str)
        and len(secret) >= _MIN_XAPI_SECRET
        and set(secret) <= _URL_SAFE
        and len(set(secret)) >= 10
    )


def _parse_flag(where: str, raw: object) -> bool:
    if not isinstance(raw, bool):
        raise SettingsError(where, "must be true or false")
    return raw


def _parse_choice(where: str, raw: object, choices: tuple[str, ...]) -> str:
    if raw not in choices:
        raise SettingsError(where, f"must be one of {', '.join(choices)}")
    return str(raw)


_PATTERN_EXAMPLE = 'e.g. "/courses/(?P<id>[^/?#]+)"'


def _parse_pattern(where: str, raw: object) -> _Regexp | None:
    """Compiled with RE2, whose matching time is linear in the IRI: the pattern is the provider's, the IRI the
    provider's learners' (Python's backtracking engine spent seconds on "(?P<id>[^/]+)$" and a long IRI)."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise SettingsError(where, f"must be a regular expression with a group, {_PATTERN_EXAMPLE}")
    import re2

    options = re2.Options()
    options.log_errors = False  # the error is raised here, naming the setting
    try:
        pattern = re2.compile(raw, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise SettingsError(
            where,
            f"is not a valid RE2 regular expression ({reason}; RE2 matches in linear time and has no lookarounds "
            f"or backreferences), {_PATTERN_EXAMPLE}",
        ) from None
    if pattern.groups == 0:
        raise SettingsError(where, f"needs a group that captures the content id, {_PATTERN_EXAMPLE}")
    return pattern


def _check_webhook_secret(where: str, secret: object) -> None:
    if not isinstance(secret, str) or not secret.startswith("whsec_"):
        raise SettingsError(
            where, "must be a string 'whsec_<base64>' (create one with: python -m connector new-secret)"
        )
    try:
        encoded = secret.removeprefix("whsec_").rstrip("=")
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError(where, "is not valid base64 after 'whsec_'") from None
    if len(key) < 16:
        raise SettingsError(where, "is too short: use at least 16 random bytes (24 characters of base64)")


def _parse_graph_base_url(raw: str | None) -> str:
    name = "GRAPH_BASE_URL"
    if raw is None or not raw.strip():
        return DEFAULT_GRAPH_BASE_URL
    url = raw.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SettingsError(name, f"must be an absolute https URL like {DEFAULT_GRAPH_BASE_URL}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise SettingsError(name, "must use https (plain http is allowed only for a loopback sandbox)")
    if parts.query or parts.fragment:
        raise SettingsError(name, "must not carry a query or fragment")
    if not re.search(r"/(v1\.0|beta)$", parts.path):
        raise SettingsError(name, "must end with the API version, e.g. /v1.0")
    return url


def _parse_client_id(name: str, raw: str | None, whose: str = "of the user-assigned managed identity") -> str | None:
    if raw is None or not raw.strip():
        return None
    try:
        return str(uuid.UUID(raw.strip()))
    except ValueError:
        raise SettingsError(name, f"must be the client id (a GUID) {whose}") from None


def _parse_amount(name: str, raw: str | None, default: float, unit: str, most: float) -> float:
    """A positive number of `unit` (seconds, days), at most `most`; `default` when not set."""
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(name, f"must be a number of {unit}") from None
    if not 0 < value <= most:
        raise SettingsError(name, f"must be more than 0 and at most {most:g} {unit}")
    return value


_NCRONTAB_FIELD = re.compile(r"^(\*|\d+|\d+-\d+|\*/\d+|\d+-\d+/\d+|\d+(,\d+)+|[A-Za-z]{3}(-[A-Za-z]{3})?)$")


def _parse_schedule(name: str, raw: str | None) -> str | None:
    """A six-field NCRONTAB expression ({second} {minute} {hour} {day} {month} {day-of-week}), as the timer takes."""
    if raw is None or not raw.strip():
        logger.warning("%s is not set: the reconciliation timer does not run", name)
        return None
    parts = raw.split()
    if len(parts) != 6 or not all(_NCRONTAB_FIELD.match(part) for part in parts):
        raise SettingsError(name, 'must be a six-field NCRONTAB schedule in UTC, e.g. "0 0 3 * * *" (03:00 daily)')
    return raw.strip()


def _parse_storage(env: Mapping[str, str]) -> StorageSettings | None:
    raw = env.get(STORAGE_SETTING)
    if raw and raw.strip():
        value = raw.strip()
        if value.replace(" ", "").lower().startswith("usedevelopmentstorage=true"):
            return StorageSettings(connection_string=value)  # the Functions convention for the local emulator
        fields = dict(part.split("=", 1) for part in value.split(";") if "=" in part)
        if "AccountName" not in fields and not any(k.endswith("Endpoint") for k in fields):
            raise SettingsError(STORAGE_SETTING, "is not a storage connection string (no AccountName or endpoint)")
        return StorageSettings(connection_string=value)
    prefix = f"{STORAGE_SETTING}__"
    account = env.get(prefix + "accountName")
    queue_uri = env.get(prefix + "queueServiceUri")
    table_uri = env.get(prefix + "tableServiceUri")
    if not (account or queue_uri or table_uri):
        return None
    if account:
        queue_uri = queue_uri or f"https://{account}.queue.core.windows.net"
        table_uri = table_uri or f"https://{account}.table.core.windows.net"
    if not queue_uri:
        raise SettingsError(prefix + "queueServiceUri", "is required when __accountName is not set")
    if not table_uri:
        raise SettingsError(prefix + "tableServiceUri", "is required when __accountName is not set")
    client_id = _parse_client_id(prefix + "clientId", env.get(prefix + "clientId"))
    return StorageSettings(queue_service_uri=queue_uri, table_service_uri=table_uri, client_id=client_id)


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
