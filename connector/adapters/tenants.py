"""Graph tokens in customer tenants, still without a secret: a provider with a `tenantId` is reached by the
multi-tenant app (CONNECTOR_APP_CLIENT_ID), whose client assertion is the managed identity's token for
api://AzureADTokenExchange (the app trusts the identity through a federated identity credential), exchanged by
azure.identity's ClientAssertionCredential in each tenant that consented to the app.

Imported only when a provider names a tenant: a deployment serving its own tenant never loads it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError, ClientAuthenticationError

from connector.domain.failures import GraphFailure, Kind

if TYPE_CHECKING:
    import ssl
    from types import TracebackType

    from azure.core.credentials import AccessToken
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.identity.aio import ClientAssertionCredential

    from connector.settings import Settings

logger = logging.getLogger(__name__)

ASSERTION_SCOPE = "api://AzureADTokenExchange/.default"
#: How long before its expiry an assertion is replaced (at most half its lifetime), as azure.identity refreshes its own.
ASSERTION_REFRESH_SECONDS = 300
#: The token endpoint's timeouts, and no retry inside an invocation (the host retries the message): a tenant whose
#: endpoint hangs holds its own callbacks this long at most, and with them the instance's concurrent invocations.
TOKEN_CONNECT_TIMEOUT, TOKEN_READ_TIMEOUT = 10, 10


class Assertions:
    """The client assertion every tenant's credential presents: the managed identity's token for
    api://AzureADTokenExchange (one for all tenants: it names the identity, not a tenant).

    azure.identity calls a ClientAssertionCredential's `func` synchronously, on the event loop, in azure.identity.aio
    too. Fetching the token in it would be a blocking HTTP call stopping every callback of every tenant meanwhile.
    So the token is fetched on the async path instead: `refresh()` is awaited before each tenant's token request and
    fetches a new assertion only once the one held nears its expiry; the func (`__call__`) returns the one held, no
    I/O. Chosen over a fetch in a worker thread: no thread and no second (synchronous) HTTP stack per token request,
    and the aio managed-identity credential already in use does the fetching."""

    def __init__(self, credential: AsyncTokenCredential) -> None:
        self._credential = credential
        self._token: str | None = None
        self._expires_on = 0.0
        self._refresh_at = 0.0
        self._problem = "none was fetched yet"
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Fetches a new assertion when the one held is due for renewal; a failure is kept for `__call__` to raise
        (a Graph token still cached needs no assertion)."""
        if time.time() < self._refresh_at:
            return
        async with self._lock:  # one fetch for every tenant that needs it now
            if time.time() < self._refresh_at:
                return
            try:
                token = await self._credential.get_token(ASSERTION_SCOPE)
            except AzureError as exc:
                self._problem = _first_line(str(exc))
                logger.warning("no client assertion from the managed identity: %s", self._problem)
                return
            now = time.time()
            self._token, self._expires_on = token.token, float(token.expires_on)
            self._refresh_at = self._expires_on - min(ASSERTION_REFRESH_SECONDS, (self._expires_on - now) / 2)

    def __call__(self) -> str:
        if self._token is None or time.time() >= self._expires_on:
            raise ClientAuthenticationError(
                f"no client assertion: the managed identity gave no token for {ASSERTION_SCOPE} ({self._problem})"
            )
        return self._token

    async def close(self) -> None:
        await self._credential.close()


class TenantCredential:
    """A Graph token in one customer tenant for the multi-tenant app (AsyncTokenCredential). One per tenant, with
    its own token cache, connection pool and lock, so that a tenant whose token endpoint refuses, fails or hangs
    holds up only its own callbacks. One token request at a time per tenant: callbacks that waited for one share its
    answer (the token, cached, or its failure) instead of each asking again."""

    def __init__(self, inner: ClientAssertionCredential, assertions: Assertions) -> None:
        self._inner = inner
        self._assertions = assertions
        self._lock = asyncio.Lock()
        self._failure: str | None = None
        self._failed_at = 0.0

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        asked_at = time.monotonic()
        async with self._lock:
            if self._failure is not None and self._failed_at >= asked_at:  # a request made while this one waited
                raise ClientAuthenticationError(self._failure)
            await self._assertions.refresh()
            try:
                return await self._inner.get_token(*scopes, **kwargs)
            except AzureError as exc:  # refused, or not reached (ServiceRequestError): the same to a callback
                self._failure, self._failed_at = str(exc), time.monotonic()
                raise ClientAuthenticationError(self._failure) from None

    async def close(self) -> None:
        await self._inner.close()

    async def __aenter__(self) -> TenantCredential:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.close()


def tenant_credential(
    settings: Settings, tenant_id: str, assertions: Assertions, verify: ssl.SSLContext
) -> TenantCredential:
    """The multi-tenant app's credential in `tenant_id`, on a connection pool of its own (TLS with `verify`)."""
    import aiohttp
    from azure.core.pipeline.transport import AioHttpTransport
    from azure.identity.aio import ClientAssertionCredential

    assert settings.app_client_id is not None  # settings require it when a provider names a tenant
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=verify), trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
    )
    transport = AioHttpTransport(
        session=session, connection_timeout=TOKEN_CONNECT_TIMEOUT, read_timeout=TOKEN_READ_TIMEOUT
    )
    inner = ClientAssertionCredential(
        tenant_id, settings.app_client_id, assertions, authority=settings.authority_host, transport=transport,
        retry_total=0,
    )  # fmt: skip
    return TenantCredential(inner, assertions)


#: What Entra's AADSTS codes say about a tenant.
_NO_CONSENT = {
    65001: "no admin consent to the connector's app {app} (AADSTS65001: never given, or revoked)",
    700016: "the connector's app {app} is not in the tenant (AADSTS700016: admin consent never given, or the app "
    "was removed)",
}
_TENANT_NOT_FOUND = 90002
_CORRECT_TENANT_ID = (
    "correct the provider's tenantId in CONNECTOR_PROVIDERS (the customer's Tenant ID, in the Microsoft Entra admin "
    "center)"
)
_AADSTS = re.compile(r"AADSTS(\d+)")


@dataclass(frozen=True)
class TenantProblem:
    """Why a customer tenant gives the connector no token, and what must be done: retrying changes nothing."""

    code: str
    problem: str
    fix: str
    admin_consent_url: str | None = None


def tenant_problem(settings: Settings, tenant_id: str, error: str) -> TenantProblem | None:
    """What a token endpoint's error says about the tenant (missing consent, no such tenant), or None for a failure
    that may pass."""
    found = _AADSTS.search(error)
    code = int(found.group(1)) if found else None
    if code in _NO_CONSENT:
        url = settings.admin_consent_url(tenant_id)
        fix = f"a Privileged Role Administrator of tenant {tenant_id} grants admin consent at {url}"
        return TenantProblem("adminConsentRequired", _NO_CONSENT[code].format(app=settings.app_client_id), fix, url)
    if code == _TENANT_NOT_FOUND:
        return TenantProblem("tenantNotFound", "no such tenant (AADSTS90002)", _CORRECT_TENANT_ID)
    return None


@dataclass
class TenantRefused(GraphFailure):
    """A customer tenant refuses the connector a token: dead-lettered at once, with its tenant and the fix."""

    tenant_id: str = ""
    admin_consent_url: str | None = None

    def reason(self) -> dict[str, Any]:
        return {**super().reason(), "tenantId": self.tenant_id, "adminConsentUrl": self.admin_consent_url}


def tenant_token_failure(settings: Settings, tenant_id: str, error: str) -> GraphFailure:
    """A failed token request for a customer tenant as a Graph failure: refused for good until its administrator
    acts (or the tenantId is corrected), else passing (the host retries)."""
    found = tenant_problem(settings, tenant_id, error)
    if found is None:
        return GraphFailure(None, "tokenUnavailable", f"no token for tenant {tenant_id}: {_first_line(error)}",
                            kind=Kind.TRANSIENT)  # fmt: skip
    message = f"tenant {tenant_id}: {found.problem}; {found.fix}, then replay the dead letters"
    return TenantRefused(None, found.code, message, kind=Kind.PERMANENT, tenant_id=tenant_id,
                         admin_consent_url=found.admin_consent_url)  # fmt: skip


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "the identity endpoint gave no token"
