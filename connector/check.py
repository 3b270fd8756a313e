"""Checks a deployment from the outside: settings, storage, a Graph token, and each provider in Graph.

Each finding says what is wrong and how to fix it; nothing is changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from connector.graph import GraphFailure
from connector.settings import Settings, SettingsError, load_settings


@dataclass(frozen=True)
class Finding:
    level: str  # "ok", "warn" or "fail"
    what: str
    fix: str | None = None

    def __str__(self) -> str:
        line = f"[{self.level}] {self.what}"
        return f"{line}\n       fix: {self.fix}" if self.fix else line


async def run_checks(environ: Mapping[str, str] | None = None) -> list[Finding]:
    try:
        settings = load_settings(environ)
    except SettingsError as exc:
        return [Finding("fail", f"settings: {exc}", f"correct the app setting {exc.setting} and restart the app")]
    findings = [_settings_summary(settings)]
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


async def _check_storage(settings: Settings) -> list[Finding]:
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    from connector.messages import QUEUE_NAME
    from connector.state import TABLE_NAME
    from connector.storage import queue_client, table_client

    try:
        settings.require_storage()
    except SettingsError as exc:
        return [Finding("fail", f"storage: {exc}", "set AzureWebJobsStorage (or AzureWebJobsStorage__accountName)")]
    fix = (
        "check AzureWebJobsStorage; with identity-based storage, give the identity Storage Queue Data Contributor "
        "and Storage Table Data Contributor on the account"
    )
    findings = []
    try:
        async with queue_client(settings, QUEUE_NAME, retry_total=0) as queue:
            count = (await queue.get_queue_properties()).approximate_message_count
        findings.append(Finding("ok", f"storage: queue {QUEUE_NAME} reachable, {count} message(s) waiting"))
    except ResourceNotFoundError:
        findings.append(Finding("ok", f"storage: reachable; queue {QUEUE_NAME} is created by the first callback"))
    except AzureError as exc:
        return [Finding("fail", f"storage: cannot read queue {QUEUE_NAME}: {first_line(exc)}", fix)]
    try:
        async with table_client(settings, TABLE_NAME, retry_total=0) as table:
            async for _ in table.list_entities(results_per_page=1):
                break
        findings.append(Finding("ok", f"storage: table {TABLE_NAME} reachable"))
    except ResourceNotFoundError:
        findings.append(Finding("ok", f"storage: table {TABLE_NAME} is created by the first update"))
    except AzureError as exc:
        findings.append(Finding("fail", f"storage: cannot read table {TABLE_NAME}: {first_line(exc)}", fix))
    return findings


async def _check_graph(settings: Settings) -> list[Finding]:
    from azure.core.exceptions import ClientAuthenticationError

    from connector.graph import GraphGateway
    from connector.identity import create_credential

    credential = create_credential(settings)
    try:
        await credential.get_token(settings.graph_scope)
    except ClientAuthenticationError as exc:
        await credential.close()
        who = "the managed identity" if settings.managed_identity_available else "your Azure CLI / azd login"
        return [
            Finding(
                "fail",
                f"graph: no token for {settings.graph_scope} from {who}: {first_line(exc)}",
                "in Azure, check AZURE_CLIENT_ID names the app's user-assigned identity; locally, run `az login`",
            )
        ]
    findings = [Finding("ok", f"graph: a token for {settings.graph_scope} was obtained")]
    gateway = GraphGateway(settings, credential)
    try:
        for provider in settings.providers.values():
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
            if not provider.webhook_secrets:
                findings.append(
                    Finding(
                        "warn",
                        f"provider {registration_id}: no webhookSecrets; its webhook calls will be answered 401",
                        "create one with `python -m connector new-secret` and add it to CONNECTOR_PROVIDERS",
                    )
                )
    finally:
        await gateway.close()
    return findings


def _provider_failure(registration_id: str, failure: GraphFailure) -> Finding:
    seen = f"provider {registration_id}: Graph answered {failure} (request-id {failure.request_id})"
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


def first_line(exc: BaseException) -> str:
    """An exception's first line, for one-line operator messages."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
