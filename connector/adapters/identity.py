"""Which credential gets tokens (Graph, and Storage when it is identity-based): the app's managed identity in
Azure, a developer's Azure Developer CLI or Azure CLI login elsewhere; never a client secret."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

    from connector.settings import Settings


def create_credential(settings: Settings, client_id: str | None = None) -> AsyncTokenCredential:
    """Managed identity when the platform provides one (IDENTITY_ENDPOINT); user-assigned with AZURE_CLIENT_ID."""
    if settings.managed_identity_available:
        from azure.identity.aio import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=client_id or settings.azure_client_id)
    from azure.identity.aio import AzureCliCredential, AzureDeveloperCliCredential, ChainedTokenCredential

    return ChainedTokenCredential(AzureDeveloperCliCredential(), AzureCliCredential())
