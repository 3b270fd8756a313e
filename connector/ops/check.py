"""Checks a deployment from the outside: settings, storage, a Graph token, and each provider in Graph.

Each finding says what is wrong and how to fix it; nothing is changed.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from connector.domain import failures
from connector.domain.failures import GraphFailure
from connector.settings import PROVIDER_KEYS, ProviderSettings, Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from connector.adapters.graph import GraphGateway
    from connector.adapters.tenants import Assertions


@dataclass(frozen=True)
class Finding:
    level: str  # "ok", "warn" or "fail"
    what: str
    fix: str | None = None

    def __str__(self) -> str:
        line = f"[{self.level}] {self.what}"
        return f"{line}\n       fix: {self.fix}" if self.fix else line

    def one_line(self) -> str:
        """The problem and its fix on one line, for the other commands' error message."""
        return f"{self.what}; fix: {self.fix}" if self.fix else self.what


async def run_checks(environ: Mapping[str, str] | None = None) -> list[Finding]:
    try:
        settings = load_settings(environ)
    except SettingsError as exc:
        return [Finding("fail", f"settings: {exc}", f"correct the app setting {exc.setting} and restart the app")]
    findings = [_settings_summary(settings)]
    for provider in settings.providers.values():
        findings += _check_provider_config(provider)
    findings += await _check_storage(settings)
    findings += await _check_graph(settings)
    return findings


def _settings_summary(settings: Settings) -> Finding:
    if not settings.providers:
        return Finding(
            "warn",
            "settings: CONNECTOR_PROVIDERS configures no provider; every callback will be answered 404",
            'set CONNECTOR_PROVIDERS to {"<registrationId>": {"webhookSecrets": ["whsec_..."]}}',
        )
    return Finding("ok", f"settings: {len(settings.providers)} provider(s), Graph at {settings.graph_base_url}")


def _check_provider_config(provider: ProviderSettings) -> list[Finding]:
    """What the settings parser lets through but makes a provider useless: a typo, or no credential at all."""
    where = f"provider {provider.registration_id}"
    findings = [
        Finding(
            "fail",
            f'{where}: unknown key "{key}" in CONNECTOR_PROVIDERS; this version ignores it',
            _known_key_for(key),
        )
        for key in provider.unknown_keys
    ]
    webhook, xapi = len(provider.webhook_secrets), len(provider.xapi_credentials)
    platforms = _platform_credentials(provider)
    if not webhook and not xapi and not platforms:
        findings.append(
            Finding(
                "fail",
                f"{where}: no webhookSecrets and no xapiCredentials (nor caliperKeys, scormCloudCredentials, "
                "canvasJwksUrl or canvasAllowUnsigned); every request of this provider will be answered 401",
                "create a webhook secret with `python -m connector new-secret`, or an LRS secret with "
                "`python -m connector new-secret --xapi`, and add it to the provider in CONNECTOR_PROVIDERS",
            )
        )
    elif not findings:
        said = ", ".join([f"{webhook} webhook secret(s)", f"{xapi} xAPI credential(s)", *platforms])
        findings.append(Finding("ok", f"{where}: {said}"))
    return findings + _canvas_exposure(provider, where)


def _platform_credentials(provider: ProviderSettings) -> list[str]:
    """What the provider's platform formats take, in words (only those it has)."""
    said = []
    if provider.caliper_keys:
        said.append(f"{len(provider.caliper_keys)} Caliper key(s)")
    if provider.scorm_cloud_credentials:
        said.append(f"{len(provider.scorm_cloud_credentials)} SCORM Cloud credential(s)")
    if provider.canvas_jwks_url:
        said.append("signed Canvas Live Events")
    if provider.canvas_allow_unsigned:
        said.append("unsigned Canvas Live Events")
    return said


def _canvas_exposure(provider: ProviderSettings, where: str) -> list[Finding]:
    """Canvas events that anyone could send: Instructure signs every Canvas customer's events with the same keys."""
    if provider.canvas_allow_unsigned:
        return [
            Finding(
                "warn",
                f"{where}: canvasAllowUnsigned is true; anyone who knows the provider's /canvas URL can post events",
                "turn on Sign Payload in Canvas's Live Events settings, set canvasJwksUrl and remove "
                "canvasAllowUnsigned",
            )
        ]
    if provider.canvas_jwks_url and not provider.canvas_root_account_uuids:
        return [
            Finding(
                "warn",
                f"{where}: signed Canvas events of any Canvas account are taken (Instructure signs every "
                "customer's events with the same keys)",
                "set canvasRootAccountUuids to your Canvas account's uuid (root_account_uuid in its Live Events)",
            )
        ]
    return []


def _known_key_for(key: str) -> str:
    by_lower = {known.lower(): known for known in PROVIDER_KEYS}
    close = difflib.get_close_matches(key.lower(), by_lower, n=1, cutoff=0.6)
    if close:
        return f'rename "{key}" to "{by_lower[close[0]]}"'
    return f'remove "{key}"; the keys a provider takes are {", ".join(sorted(PROVIDER_KEYS))}'


_STORAGE_ROLES_FIX = (
    "check AzureWebJobsStorage; with identity-based storage, give the identity Storage Queue Data Contributor "
    "and Storage Table Data Contributor on the account"
)


def storage_problem(settings: Settings, doing: str, exc: BaseException, fix: str = _STORAGE_ROLES_FIX) -> Finding:
    """A storage call that failed: no token (not signed in), or the account refused or could not be reached."""
    from azure.core.exceptions import ClientAuthenticationError

    if isinstance(exc, ClientAuthenticationError) and exc.status_code is None:  # no answer: the credential failed
        return no_token(settings, "storage", "the storage account", exc)
    return Finding("fail", f"storage: cannot {doing}: {first_line(exc)}", fix)


def no_token(settings: Settings, area: str, audience: str, exc: BaseException, as_whom: str = "") -> Finding:
    """No token could be had: from the managed identity in Azure, from the operator's az/azd login elsewhere."""
    if settings.managed_identity_available:
        return Finding(
            "fail",
            f"{area}: no token for {audience} from the managed identity (IDENTITY_ENDPOINT): {first_line(exc)}",
            "in Azure, check AZURE_CLIENT_ID names the app's user-assigned identity; from your machine, leave "
            "IDENTITY_ENDPOINT unset so that your own login is used",
        )
    return Finding(
        "fail",
        f"{area}: no token for {audience}: you are not signed in to Azure (neither azd nor the Azure CLI gave one)",
        f"run `az login` (or `azd auth login`){as_whom}, then run this command again",
    )


async def _check_storage(settings: Settings) -> list[Finding]:
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    from connector.adapters.activity_store import TABLE_NAME
    from connector.adapters.storage import queue_client, table_client
    from connector.domain.envelope import QUEUE_NAME

    try:
        settings.require_storage()
    except SettingsError as exc:
        return [Finding("fail", f"storage: {exc}", "set AzureWebJobsStorage (or AzureWebJobsStorage__accountName)")]
    findings = []
    try:
        async with queue_client(settings, QUEUE_NAME, retry_total=0) as queue:
            count = (await queue.get_queue_properties()).approximate_message_count
        findings.append(Finding("ok", f"storage: queue {QUEUE_NAME} reachable, {count} message(s) waiting"))
    except ResourceNotFoundError:
        findings.append(Finding("ok", f"storage: reachable; queue {QUEUE_NAME} is created by the first callback"))
    except AzureError as exc:
        return [storage_problem(settings, f"read queue {QUEUE_NAME}", exc)]
    findings.append(await _check_poison_queue(settings))
    try:
        async with table_client(settings, TABLE_NAME, retry_total=0) as table:
            async for _ in table.list_entities(results_per_page=1):
                break
        findings.append(Finding("ok", f"storage: table {TABLE_NAME} reachable"))
    except ResourceNotFoundError:
        findings.append(Finding("ok", f"storage: table {TABLE_NAME} is created by the first update"))
    except AzureError as exc:
        findings.append(storage_problem(settings, f"read table {TABLE_NAME}", exc))
    return findings


async def _check_poison_queue(settings: Settings) -> Finding:
    """How many dead letters wait, and since when: the oldest one's age says how long an activity has been stuck."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    from connector.adapters.storage import queue_client
    from connector.domain.envelope import POISON_QUEUE_NAME

    try:
        async with queue_client(settings, POISON_QUEUE_NAME, retry_total=0) as poison:
            count = (await poison.get_queue_properties()).approximate_message_count
            oldest = await poison.peek_messages(max_messages=1) if count else []
    except ResourceNotFoundError:
        count, oldest = 0, []
    except AzureError as exc:
        return storage_problem(settings, f"read queue {POISON_QUEUE_NAME}", exc)
    if not count:
        return Finding("ok", f"storage: no dead letters in {POISON_QUEUE_NAME}")
    age = f", the oldest {_age(oldest[0].inserted_on)} old" if oldest and oldest[0].inserted_on else ""
    return Finding(
        "warn",
        f"storage: {count} dead letter(s) in {POISON_QUEUE_NAME}{age}",
        "see which activities and why with `python -m connector replay --dry-run`; fix the cause, then "
        "`python -m connector replay`",
    )


def _age(since: datetime) -> str:
    seconds = max(0, int((datetime.now(UTC) - since).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if days:
        return f"{days} d {hours % 24} h"
    if hours:
        return f"{hours} h {minutes % 60} min"
    return f"{minutes} min" if minutes else f"{seconds} s"


async def _check_graph(settings: Settings) -> list[Finding]:
    """The managed identity's own tenant (when a provider is there, or none names a tenant), then each tenant."""
    home = [provider for provider in settings.providers.values() if provider.tenant_id is None]
    findings = await _check_home_graph(settings, home) if home or not settings.tenants else []
    if settings.tenants:
        from connector.adapters.identity import create_credential
        from connector.adapters.tenants import Assertions

        if settings.managed_identity_available and settings.azure_client_id is None:
            findings.append(_NO_USER_ASSIGNED_IDENTITY)
        assertions = Assertions(create_credential(settings))  # the managed identity's token, every tenant's assertion
        try:
            for tenant_id, providers in settings.tenants.items():
                findings += await _check_tenant(settings, tenant_id, providers, assertions)
        finally:
            await assertions.close()
    return findings


async def _check_home_graph(settings: Settings, providers: list[ProviderSettings]) -> list[Finding]:
    from azure.core.exceptions import AzureError

    from connector.adapters.graph import GraphGateway
    from connector.adapters.identity import create_credential

    gateway = GraphGateway(settings, create_credential(settings))
    try:
        try:
            token = await gateway.token()
        except AzureError as exc:  # refused, or the identity endpoint could not be reached
            return [no_token(settings, "graph", settings.graph_scope, exc)]
        roles = _roles("graph: the identity", providers, token, _GRANT_FIX)
        ok = Finding("ok", f"graph: a token for {settings.graph_scope} was obtained")
        return [ok, roles, *await _check_providers(gateway, providers)]
    finally:
        await gateway.close()


_NO_USER_ASSIGNED_IDENTITY = Finding(
    "warn",
    "tenants: AZURE_CLIENT_ID is not set, so the app's system-assigned identity signs the client assertion; a "
    "federated identity credential trusts a user-assigned managed identity",
    "set AZURE_CLIENT_ID to the client id of the user-assigned identity that CONNECTOR_APP_CLIENT_ID trusts (the "
    "template does)",
)
_FEDERATION_FIX = (
    "check that the app CONNECTOR_APP_CLIENT_ID trusts the managed identity: a federated identity credential with "
    "issuer https://login.microsoftonline.com/<the identity's tenant>/v2.0, subject the identity's object (principal) "
    "id and audience api://AzureADTokenExchange (a change takes a few minutes to apply)"
)


async def _check_tenant(
    settings: Settings, tenant_id: str, providers: list[ProviderSettings], assertions: Assertions
) -> list[Finding]:
    """One line for the tenant's token and consent, one for the roles its providers need, then its providers
    through its own Graph client."""
    from azure.core.exceptions import ClientAuthenticationError

    from connector.adapters.tenants import consent_fix, tenant_gateway, tenant_problem
    from connector.bootstrap import tls_context

    where = f"tenant {tenant_id} (provider {', '.join(p.registration_id for p in providers)})"
    if not settings.managed_identity_available:
        return [
            Finding(
                "warn",
                f"{where}: not checked: its token needs the app's managed identity (IDENTITY_ENDPOINT), which is "
                "not here",
                "run check with the app's identity; meanwhile dead letters and the status endpoint name a tenant "
                "that refuses, with its fix",
            )
        ]
    gateway = tenant_gateway(settings, tenant_id, assertions, tls_context())
    try:
        try:
            token = await gateway.token()
        except ClientAuthenticationError as exc:
            found = tenant_problem(settings, tenant_id, str(exc))
            if found is not None:
                return [Finding("fail", f"{where}: {found.problem}", found.fix)]
            return [Finding("fail", f"{where}: no token: {first_line(exc)}", _FEDERATION_FIX)]
        fix = (
            f"add the missing roles to the app's API permissions (Microsoft Graph, application), then "
            f"{consent_fix(tenant_id, settings.admin_consent_url(tenant_id))}"
        )
        ok = Finding("ok", f"{where}: a token for {settings.graph_scope} was obtained: admin consent in place")
        return [ok, _roles(f"{where}: the app", providers, token, fix), *await _check_providers(gateway, providers)]
    finally:
        await gateway.close()


async def _check_providers(gateway: GraphGateway, providers: list[ProviderSettings]) -> list[Finding]:
    """Each provider exists in its tenant's Graph with course activity sync enabled."""
    findings = []
    for provider in providers:
        registration_id = provider.registration_id
        try:
            found = await gateway.get_provider(registration_id)
        except GraphFailure as failure:
            findings.append(_provider_failure(registration_id, failure))
            continue
        name = found.get("displayName") or registration_id
        if found.get("isCourseActivitySyncEnabled") is True:
            findings.append(Finding("ok", f"provider {registration_id} ({name}): course activity sync enabled"))
        else:
            findings.append(
                Finding(
                    "fail",
                    f"provider {registration_id} ({name}): isCourseActivitySyncEnabled is not true; Graph will "
                    "answer 400 'This provider isn't enabled for the given tenant.'",
                    "a Viva Learning admin sets it: PATCH /employeeExperience/learningProviders/"
                    f'{registration_id} {{"isCourseActivitySyncEnabled": true}} '
                    "(delegated LearningProvider.ReadWrite)",
                )
            )
    return findings


_GRANT_FIX = (
    "python -m connector grant-permissions --principal-id <the identity's object id> (it grants what the providers "
    "need; new roles reach tokens within minutes)"
)


def _roles(whose: str, providers: list[ProviderSettings], token: str, fix: str) -> Finding:
    """Whether the token carries the application roles these providers need: the base ones, and for those that
    create missing activities (createMissing) the lookups of learners and content. Read from the token's `roles`
    claim (Graph's tokens are JWTs; the claim is informative, not verified here: Graph checks it)."""
    from connector.ops.permissions import roles_needed

    creating = sorted(p.registration_id for p in providers if p.create_missing)
    held = _token_roles(token)
    needed = roles_needed(create_missing=bool(creating))
    who = f"; providers that create missing activities: {', '.join(creating)}" if creating else ""
    if held is None:
        fix = f"make sure it holds {', '.join(needed)}"
        return Finding("warn", f"{whose}'s token's roles cannot be read{who}", fix)
    missing = [role for role in needed if role not in held]
    if not missing:
        return Finding("ok", f"{whose} holds {', '.join(needed)}{who}")
    return Finding("fail", f"{whose} lacks {', '.join(missing)}{who}", fix)


def _token_roles(token: str) -> set[str] | None:
    import base64
    import json

    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    roles = claims.get("roles") if isinstance(claims, dict) else None
    return {str(role) for role in roles} if isinstance(roles, list) else set()


def _provider_failure(registration_id: str, failure: GraphFailure) -> Finding:
    seen = f"provider {registration_id}: {graph_answered(failure)}"
    if failure.status is None:
        return Finding("fail", seen, "check GRAPH_BASE_URL and that this machine can reach it")
    if failure.status == 404:
        return Finding(
            "fail", seen, "check the registrationId: it must be a learning provider registered in this tenant"
        )
    if failure.status in (401, 403):
        return Finding(
            "warn",
            f"{seen}; reading a provider may need a delegated LearningProvider.Read token",
            "confirm in the Viva Learning admin center that the provider's course activity sync is on, and that the "
            "identity has its roles: python -m connector grant-permissions --principal-id <objectId>",
        )
    return Finding("fail", seen, "retry; if it persists, look the request id up with Microsoft support")


def graph_answered(failure: GraphFailure) -> str:
    """What Graph said (or that it was not reached), with its request id for a support case."""
    if failure.status is None:
        return f"Graph was not reached ({failure})"
    return f"Graph answered {failure} (request-id {failure.request_id})"


def first_line(exc: BaseException) -> str:
    """An exception's first line, for one-line operator messages."""
    return failures.first_line(str(exc), type(exc).__name__)
