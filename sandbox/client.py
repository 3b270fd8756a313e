"""A small synchronous client for the admin API, for tests and benchmark drivers.

Sync on purpose: test code seeds and asserts between async steps, and a blocking call is the simplest
thing there. Every method raises ``httpx.HTTPStatusError`` when the sandbox refuses the request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx


def _tenant(tenant: str | None) -> dict[str, str]:
    return {} if tenant is None else {"tenantId": tenant}


def _given(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that were given (not None): the admin API keeps its default for the others."""
    return {k: v for k, v in settings.items() if v is not None}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class SandboxClient:
    """``SandboxClient("http://127.0.0.1:PORT/_sandbox")``: the admin API as methods."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SandboxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, path, json=json, params=params)
        response.raise_for_status()
        return response.json()

    # tenant data (the home tenant unless ``tenant`` names one added with put_tenant) --------------------------
    def reset(self, *, seed_example: bool = False) -> dict[str, Any] | None:
        """Only the home tenant, empty; no apps, consents, faults, rate limit; empty log and counters (optionally
        re-seed the example into the home tenant); returns what was seeded."""
        return self._call("POST", "/reset", {"seedExample": seed_example})["seeded"]

    def seed(
        self,
        *,
        providers: list[dict[str, Any]] | None = None,
        activities: list[dict[str, Any]] | None = None,
        users: list[dict[str, Any]] | None = None,
        contents: list[dict[str, Any]] | None = None,
        service_principals: list[dict[str, Any]] | None = None,
        tenant: str | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        """Add providers, activities, users (learners, found by id, UPN, mail, employeeId), contents (found by
        ``learningContents(externalId=)``) and service principals to a tenant; returns what was stored."""
        document = {
            "providers": providers or [],
            "activities": activities or [],
            "users": users or [],
            "contents": contents or [],
            "servicePrincipals": service_principals or [],
        }
        return self._call("POST", "/seed", document, params=_tenant(tenant))

    def state(self, *, tenant: str | None = None) -> dict[str, Any]:
        return self._call("GET", "/state", params=_tenant(tenant))

    def activities(self, provider_id: str | None = None, *, tenant: str | None = None) -> list[dict[str, Any]]:
        params = {"providerId": provider_id} if provider_id else {}
        return self._call("GET", "/activities", params={**params, **_tenant(tenant)})

    def activity(self, activity_id: str, *, tenant: str | None = None) -> dict[str, Any] | None:
        response = self._http.get(f"/activities/{activity_id}", params=_tenant(tenant))
        if response.status_code == 404 and "no such activity" in response.text:
            return None
        response.raise_for_status()
        return response.json()

    def put_provider(self, registration_id: str, *, tenant: str | None = None, **fields: Any) -> dict[str, Any]:
        """Create or update a provider, e.g. ``put_provider(reg, isCourseActivitySyncEnabled=False)``."""
        return self._call("PUT", f"/providers/{registration_id}", fields, params=_tenant(tenant))

    # tenants, the multi-tenant app and consents (Entra's token endpoint, see entra.py) ------------------------
    def tenants(self) -> list[dict[str, Any]]:
        """Every tenant: ``[{"tenantId", "consents": {app id: {"servicePrincipalId", "roles", "granted"}}}]``."""
        return self._call("GET", "/tenants")

    def put_tenant(self, tenant_id: str) -> dict[str, Any]:
        """Add an empty tenant (its own providers, activities, users, contents; Graph's service principal)."""
        return self._call("PUT", f"/tenants/{tenant_id}")

    def register_app(
        self,
        app_id: str,
        *,
        display_name: str | None = None,
        federated_credentials: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Register the multi-tenant app; by default its one federated credential trusts the sandbox's managed
        identity (issuer ``https://login.microsoftonline.com/{home tenant}/v2.0``, subject its principal id,
        audience ``api://AzureADTokenExchange``). Credentials: ``[{"name", "issuer", "subject", "audiences"}]``."""
        settings = {"displayName": display_name, "federatedCredentials": federated_credentials}
        return self._call("PUT", f"/apps/{app_id}", _given(settings))

    def apps(self) -> list[dict[str, Any]]:
        return self._call("GET", "/apps")

    def grant_consent(self, tenant_id: str, app_id: str, *, roles: list[str] | None = None) -> dict[str, Any]:
        """The tenant's admin consents to the app (again): its tokens there carry ``roles`` (default: the four
        the connector needs)."""
        return self._call("PUT", f"/tenants/{tenant_id}/consents/{app_id}", _given({"roles": roles}))

    def revoke_consent(self, tenant_id: str, app_id: str, *, delete_service_principal: bool = False) -> dict[str, Any]:
        """Token requests for that tenant fail from now on: AADSTS65001 (consent revoked), or with
        ``delete_service_principal`` AADSTS7000229 (the app's service principal is gone from the tenant). Other
        tenants are unaffected; tokens already issued stay valid until they expire, as with Entra."""
        params = {"deleteServicePrincipal": "true"} if delete_service_principal else None
        return self._call("DELETE", f"/tenants/{tenant_id}/consents/{app_id}", params=params)

    # create answers ----------------------------------------------------------------------------------------
    def create_answers(self) -> dict[str, str]:
        """How a create fails where the docs leave it unconfirmed (``duplicateExternalId``, ``unknownReference``)."""
        return self._call("GET", "/create-answers")

    def set_create_answers(
        self, *, duplicate_external_id: str | None = None, unknown_reference: str | None = None
    ) -> dict[str, str]:
        """``duplicate_external_id``: "conflict" (409, default) or "badRequest" (400 invalid field);
        ``unknown_reference`` (learner, assigner or content): "badRequest" (400, default) or "notFound" (404).
        A reset restores the defaults."""
        settings = {"duplicateExternalId": duplicate_external_id, "unknownReference": unknown_reference}
        return self._call("PUT", "/create-answers", _given(settings))

    # identity ----------------------------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        return self._call("GET", "/identity")

    def set_identity(
        self,
        *,
        roles: list[str] | None = None,
        token_lifetime_seconds: int | None = None,
        client_id: str | None = None,
        principal_id: str | None = None,
    ) -> dict[str, Any]:
        """Settings for tokens issued from now on (tokens already issued keep their roles)."""
        settings = {
            "roles": roles,
            "tokenLifetimeSeconds": token_lifetime_seconds,
            "clientId": client_id,
            "principalId": principal_id,
        }
        return self._call("PUT", "/identity", _given(settings))

    def mint_token(
        self,
        *,
        roles: list[str] | None = None,
        audience: str = "https://graph.microsoft.com",
        lifetime_seconds: int | None = None,
        client_id: str | None = None,
        tenant: str | None = None,
    ) -> str:
        """A signed token without the managed-identity round trip (negative lifetime: already expired)."""
        spec = {
            "audience": audience,
            "roles": roles,
            "lifetimeSeconds": lifetime_seconds,
            "clientId": client_id,
            "tenantId": tenant,
        }
        return self._call("POST", "/token", _given(spec))["access_token"]

    # observation -------------------------------------------------------------------------------------------
    def requests(
        self,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        since_seq: int | None = None,
        tenant: str | None = None,
    ) -> list[dict[str, Any]]:
        """The Graph request log (paths decoded, without the /v1.0 prefix), oldest first; ``tenant``: only the
        requests whose token was of that tenant."""
        params = {"method": method, "pathContains": path_contains, "sinceSeq": since_seq, "tenantId": tenant}
        return self._call("GET", "/requests", params=_given(params))["value"]

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def wait_for_requests(
        self,
        predicate: Callable[[list[dict[str, Any]]], bool],
        *,
        method: str | None = None,
        path_contains: str | None = None,
        tenant: str | None = None,
        timeout: float = 10.0,
        interval: float = 0.02,
    ) -> list[dict[str, Any]]:
        """Poll the log until ``predicate(entries)`` holds; raises TimeoutError with the last entries."""
        deadline = time.monotonic() + timeout
        while True:
            entries = self.requests(method=method, path_contains=path_contains, tenant=tenant)
            if predicate(entries):
                return entries
            if time.monotonic() >= deadline:
                raise TimeoutError(f"request log condition not met within {timeout}s; last entries: {entries[-5:]}")
            time.sleep(interval)

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/stats")

    # faults ------------------------------------------------------------------------------------------------
    def faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "/faults")

    def add_fault(self, rule: dict[str, Any] | None = None, **fields: Any) -> list[dict[str, Any]]:
        """Append a rule, given as the admin API's dict or as snake_case keywords
        (``add_fault(status=429, retry_after=5, count=1)``); returns the rule list."""
        return self._call("POST", "/faults", {**(rule or {}), **{_camel(k): v for k, v in fields.items()}})

    def set_faults(self, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._call("PUT", "/faults", rules)

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def latency(self) -> float:
        """The latency (ms) added to every Graph request."""
        return self._call("GET", "/latency")["latencyMs"]

    def set_latency(self, latency_ms: float) -> None:
        self._call("PUT", "/latency", {"latencyMs": latency_ms})

    # rate limit --------------------------------------------------------------------------------------------
    def rate_limit(self) -> dict[str, Any]:
        """``{"default": limit or None, "tenants": {tenant id: limit}}``."""
        return self._call("GET", "/rate-limit")

    def set_rate_limit(
        self,
        requests_per_second: float,
        *,
        burst: float | None = None,
        retry_after_seconds: int | None = None,
        retry_after_header: bool = True,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """Give each app in each tenant (or only in ``tenant``) a budget of ``requests_per_second``, holding up to
        ``burst`` (default: one second's worth); beyond it Graph requests get 429 with ``Retry-After`` (the wait
        rounded up, or ``retry_after_seconds``; none if ``retry_after_header`` is false) and "Retry after N
        minutes". Counted in ``stats()["rateLimit"]``; a reset or :meth:`clear_rate_limit` switches it off."""
        settings = {
            "requestsPerSecond": requests_per_second,
            "burst": burst,
            "retryAfterSeconds": retry_after_seconds,
            "retryAfterHeader": retry_after_header,
            "tenantId": tenant,
        }
        return self._call("PUT", "/rate-limit", _given(settings))

    def clear_rate_limit(self, tenant: str | None = None) -> dict[str, Any]:
        """No rate limit at all, or none of ``tenant``'s own (it then has the limit of every tenant, if any)."""
        return self._call("DELETE", "/rate-limit", params=_tenant(tenant))
