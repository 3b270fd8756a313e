"""Which tenant an update is for, and what keeps tenants apart in the use cases.

The tenant comes from the settings alone (the provider's tenantId), never from a message: a provider's events can
reach no other tenant. What the worker remembers about another tenant's directory (a learner's or a content's Graph
id) is kept under that tenant's name.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from connector.app.ports import LookupCache
from connector.settings import Settings

#: The tenant of the update being handled (None: the managed identity's own): a dimension of its log records.
current_tenant: ContextVar[str | None] = ContextVar("connector_tenant", default=None)


def tenant_of(settings: Settings, registration_id: str) -> str | None:
    """The provider's tenant; None for the managed identity's own, or for a registrationId not configured."""
    provider = settings.provider(registration_id)
    return provider.tenant_id if provider is not None else None


@contextmanager
def serving(settings: Settings, registration_id: str) -> Iterator[None]:
    """While handling the registration's work, `current_tenant` is its tenant (its log records and spans read it)."""
    token = current_tenant.set(tenant_of(settings, registration_id))
    try:
        yield
    finally:
        current_tenant.reset(token)


def pace_key(settings: Settings, registration_id: str) -> str:
    """What a registration's pace is kept under (connector/app/pacing.py): the registration and its tenant, so that
    a hold learned in one tenant never holds the registration in another (once its tenantId changed). The managed
    identity's own tenant keeps the registrationId alone, as before."""
    tenant = tenant_of(settings, registration_id)
    return registration_id if tenant is None else f"{registration_id}|{tenant}"


class TenantLookups:
    """A LookupCache whose keys name the tenant: the same email or content id is another user or content there."""

    def __init__(self, cache: LookupCache, tenant_id: str) -> None:
        self._cache = cache
        self._prefix = f"{tenant_id}|"

    async def cached(self, kind: str, key: str) -> str | None:
        return await self._cache.cached(kind, self._prefix + key)

    async def cache(self, kind: str, key: str, value: str) -> None:
        await self._cache.cache(kind, self._prefix + key, value)


def lookups_in(cache: LookupCache, tenant_id: str | None) -> LookupCache:
    """The lookups of a tenant; those of the managed identity's own tenant keep their keys as they always were."""
    return cache if tenant_id is None else TenantLookups(cache, tenant_id)
