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

from connector.domain.failures import GraphFailure, Kind, first_line

if TYPE_CHECKING:
    import ssl
    from types import TracebackType

    from azure.core.credentials import AccessToken
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.identity.aio import ClientAssertionCredential

    from connector.adapters.graph import GraphGateway
    from connector.settings import Settings

logger = logging.getLogger(__name__)

ASSERTION_SCOPE = "api://AzureADTokenExchange/.default"
#: How long before its expiry an assertion is replaced (at most half its lifetime), as azure.identity refreshes its own.
ASSERTION_REFRESH_SECONDS = 300
#: The token endpoint's timeouts, and no retry inside an invocation (the host retries the message): a tenant whose
#: endpoint hangs holds its own callbacks this long at most, and with them the instance's concurrent invocations.
TOKEN_CONNECT_TIMEOUT, TOKEN_READ_TIMEOUT = 10, 10
#: After the managed identity gave no assertion, how long every tenant uses what it holds before it is asked again:
#: an identity endpoint that fails is not asked once per Graph request of every tenant, one at a time.
ASSERTION_RETRY_SECONDS = 5


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
                self._problem = first_line(str(exc), "the identity endpoint gave no token")
                self._refresh_at = time.time() + ASSERTION_RETRY_SECONDS
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


def tenant_gateway(settings: Settings, tenant_id: str, assertions: Assertions, verify: ssl.SSLContext) -> GraphGateway:
    """The Graph client of a customer tenant: the multi-tenant app's credential there, on connection pools of its
    own (TLS with `verify`)."""
    from connector.adapters.graph import GraphGateway

    return GraphGateway(settings, _tenant_credential(settings, tenant_id, assertions, verify), verify, tenant_id)


def _tenant_credential(
    settings: Settings, tenant_id: str, assertions: Assertions, verify: ssl.SSLContext
) -> TenantCredential:
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
    700016: "the connector's app {app} is not in the tenant (AADSTS700016: admin consent never given, the app "
    "was removed, or CONNECTOR_APP_CLIENT_ID is not the app's client id)",
    7000229: "the connector's app {app} has no service principal in the tenant (AADSTS7000229: admin consent never "
    "given, or the enterprise application was deleted)",
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
        problem = _NO_CONSENT[code].format(app=settings.app_client_id)
        return TenantProblem("adminConsentRequired", problem, consent_fix(tenant_id, url), url)
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


def consent_fix(tenant_id: str, url: str) -> str:
    return f"a Privileged Role Administrator of tenant {tenant_id} grants admin consent at {url}"


def tenant_graph_failure(settings: Settings, tenant_id: str, failure: GraphFailure) -> GraphFailure:
    """Graph's 401 or 403 in a customer tenant names the tenant and the consent link: a consent whose roles were
    removed still gives a token, without the roles. Any other failure is as it came."""
    if failure.status not in (401, 403):
        return failure
    url = settings.admin_consent_url(tenant_id)
    message = (
        f"{failure.message} (tenant {tenant_id}: if the app's roles there were removed, "
        f"{consent_fix(tenant_id, url)}, then replay the dead letters)"
    )
    return TenantRefused(failure.status, failure.code, message, failure.request_id, failure.retry_after,
                         kind=failure.kind, tenant_id=tenant_id, admin_consent_url=url)  # fmt: skip


def tenant_token_failure(settings: Settings, tenant_id: str, error: str) -> GraphFailure:
    """A failed token request for a customer tenant as a Graph failure: refused for good until its administrator
    acts (or the tenantId is corrected), else passing (the host retries)."""
    found = tenant_problem(settings, tenant_id, error)
    if found is None:
        problem = f"no token for tenant {tenant_id}: {first_line(error, 'no detail given')}"
        return GraphFailure(None, "tokenUnavailable", problem, kind=Kind.TRANSIENT)
    message = f"tenant {tenant_id}: {found.problem}; {found.fix}, then replay the dead letters"
    return TenantRefused(None, found.code, message, kind=Kind.PERMANENT, tenant_id=tenant_id,
                         admin_consent_url=found.admin_consent_url)  # fmt: skip
