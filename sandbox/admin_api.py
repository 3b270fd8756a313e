"""The unauthenticated admin API under ``/_sandbox``: seed, inspect, reconfigure and break the sandbox.

The tenant-data routes (marked T) act on the identity's own (home) tenant, or with ``?tenantId=`` on a tenant
added through ``PUT /_sandbox/tenants/{id}`` (404 for any other).

    GET    /_sandbox                    URLs and identity settings
    POST   /_sandbox/reset              {"seedExample": bool}: only the home tenant, empty (built-in service
                                        principals stay); no apps, consents, faults, rate limit; startup latency,
                                        empty log, zero counters, default identity settings and create answers;
                                        the identity header secret and signing key survive
  T POST   /_sandbox/seed               {"providers", "activities", "users", "contents", "servicePrincipals"}
  T GET    /_sandbox/state              everything in the tenant, app-role assignments included
  T GET    /_sandbox/activities         [?providerId=]; /_sandbox/activities/{id} (404 if none)
  T GET    /_sandbox/providers          PUT /_sandbox/providers/{id} creates or merges fields
    GET|PUT /_sandbox/identity          {"roles", "tokenLifetimeSeconds", "clientId", "principalId"}
    POST   /_sandbox/token              {"roles", "audience", "lifetimeSeconds", "clientId", "tenantId"}: a token,
                                        no MI or Entra round trip
    GET    /_sandbox/requests           [?method=&pathContains=&sinceSeq=&tenantId=] -> {"value": [...], "lastSeq"}
                                        (tenantId: the requests whose token was of that tenant)
    DELETE /_sandbox/requests
    GET    /_sandbox/stats              counters: "tokenRequests" (managed-identity endpoint), "tokenEndpoint":
                                        {"requests", "issued", "byTenant": {tid: {"requests", "issued"}}} (Entra's),
                                        "rateLimit": {"allowed", "throttled", "byTenant": {tid: {...}}}
    GET|POST|PUT|DELETE /_sandbox/faults   list / append one rule / replace the list / clear (faults.py)
    GET|PUT /_sandbox/latency           {"latencyMs": n} on every Graph request
    GET|PUT|DELETE /_sandbox/rate-limit  {"requestsPerSecond": n > 0, "burst": n >= 1 (default max(1, rate)),
                                        "retryAfterSeconds": int | null (null: the wait, rounded up),
                                        "retryAfterHeader": bool (default true), "tenantId": only that tenant}:
                                        a budget per app per tenant, 429 beyond it (see ratelimit.py);
                                        DELETE [?tenantId=] switches it off (for all, or that tenant's own);
                                        GET -> {"default": limit | null, "tenants": {tid: limit}}
    GET|PUT /_sandbox/create-answers    {"duplicateExternalId": "conflict"|"badRequest",
                                        "unknownReference": "badRequest"|"notFound"}: how a create fails where
                                        Graph's docs leave it unconfirmed (defaults first; see rules.CreateAnswers)
    GET    /_sandbox/tenants            [{"tenantId", "consents": {appId: {"servicePrincipalId", "roles",
                                        "granted"}}}]; PUT /_sandbox/tenants/{id} adds an empty tenant
    GET    /_sandbox/apps               PUT /_sandbox/apps/{appId} {"displayName", "federatedCredentials":
                                        [{"name", "issuer", "subject", "audiences"}]} registers the multi-tenant
                                        app (default credential: the sandbox's managed identity; see entra.py)
    PUT    /_sandbox/tenants/{id}/consents/{appId}   {"roles": [...]}: admin consent (default: the connector's
                                        four roles); the app's service principal appears in that tenant
    DELETE /_sandbox/tenants/{id}/consents/{appId}   [?deleteServicePrincipal=true]: token requests for that
                                        tenant fail with AADSTS65001 (or AADSTS7000229 with the service principal
                                        gone); other tenants are unaffected
    GET    /_sandbox/canvas/jwks        a stand-in for Instructure's published Live Events keys (instructure.py);
    POST   /_sandbox/canvas/sign        an event -> {"token": the event signed with that key, as Canvas signs}

Errors here are plain ``{"error": "..."}`` with 400/404: the admin API is the test's tool, not Graph.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from .faults import FaultRule
from .seed import TENANT_ID, managed_identity_service_principal
from .store import SeedError, Store

if TYPE_CHECKING:
    from .state import SandboxState

ADMIN_PREFIX: Final = "/_sandbox"


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(payload, ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json"},
    )


def _error(message: str, status: int = 400) -> web.Response:
    return _json({"error": message}, status)


async def _body(request: web.Request, *, default: Any = ...) -> Any:
    raw = await request.read()
    if not raw.strip():
        if default is ...:
            raise ValueError("a JSON body is required")
        return default
    return json.loads(raw)


def store_of_tenant(state: SandboxState, tenant_id: str) -> Store:
    """A tenant's data; a 404 (as an aiohttp exception, so any handler can call it) for a tenant never added."""
    store = state.tenants.get(tenant_id)
    if store is None:
        raise web.HTTPNotFound(
            body=json.dumps({"error": f"no tenant {tenant_id}: add it with PUT /_sandbox/tenants/{tenant_id}"}),
            content_type="application/json",
        )
    return store


def add_routes(app: web.Application, state_key: web.AppKey[SandboxState]) -> None:
    """Register the admin routes; handlers find the state under ``state_key``."""

    def state_of(request: web.Request) -> SandboxState:
        return request.app[state_key]

    def store_of(request: web.Request) -> Store:
        """The tenant of ``?tenantId=`` (default: the home tenant)."""
        state = state_of(request)
        tenant_id = request.query.get("tenantId")
        return state.store if tenant_id is None else store_of_tenant(state, tenant_id)

    async def info(request: web.Request) -> web.Response:
        state = state_of(request)
        return _json({"graph": state.graph_url, "identity": state.identity.describe()})

    async def reset(request: web.Request) -> web.Response:
        try:
            options = await _body(request, default={})
        except ValueError as exc:
            return _error(f"invalid JSON: {exc}")
        if not isinstance(options, dict) or set(options) - {"seedExample"}:
            return _error('reset takes {"seedExample": bool}')
        seeded = state_of(request).reset(seed_example=bool(options.get("seedExample")))
        return _json({"reset": True, "seeded": seeded})

    async def seed(request: web.Request) -> web.Response:
        try:
            document = await _body(request)
            return _json(store_of(request).seed(document))
        except (ValueError, SeedError) as exc:
            return _error(str(exc))

    async def state_dump(request: web.Request) -> web.Response:
        return _json(store_of(request).snapshot())

    async def list_activities(request: web.Request) -> web.Response:
        provider_id = request.query.get("providerId")
        activities = store_of(request).activities.values()
        return _json([a for a in activities if provider_id is None or a["learningProviderId"] == provider_id])

    async def get_activity(request: web.Request) -> web.Response:
        activity = store_of(request).activities.get(request.match_info["id"])
        return _error("no such activity", 404) if activity is None else _json(activity)

    async def list_providers(request: web.Request) -> web.Response:
        return _json(list(store_of(request).providers.values()))

    async def put_provider(request: web.Request) -> web.Response:
        try:
            fields = await _body(request, default={})
            if not isinstance(fields, dict):
                raise SeedError("provider fields must be a JSON object")
            return _json(store_of(request).put_provider(request.match_info["id"], fields))
        except (ValueError, SeedError) as exc:
            return _error(str(exc))

    async def get_identity(request: web.Request) -> web.Response:
        return _json(state_of(request).identity.describe())

    async def put_identity(request: web.Request) -> web.Response:
        state = state_of(request)
        identity = state.identity
        old_principal_id = identity.principal_id
        try:
            settings = await _body(request)
            if not isinstance(settings, dict):
                raise ValueError("identity settings must be a JSON object")
            identity.configure(settings)
        except ValueError as exc:
            return _error(str(exc))
        store = state.store
        if old_principal_id != identity.principal_id:
            store.remove_service_principal(old_principal_id)
        store.put_service_principal(managed_identity_service_principal(identity.client_id, identity.principal_id))
        return _json(identity.describe())

    async def mint_token(request: web.Request) -> web.Response:
        """A token without the managed-identity round trip: for tests of roles, audiences and expiry."""
        identity = state_of(request).identity
        try:
            spec = await _body(request, default={})
            keys = {"roles", "audience", "lifetimeSeconds", "clientId", "tenantId"}
            if not isinstance(spec, dict) or set(spec) - keys:
                raise ValueError(f"token takes {sorted(keys)}")
            tenant_id = spec.get("tenantId", TENANT_ID)
            if not isinstance(tenant_id, str) or not tenant_id:
                raise ValueError("tenantId must be a non-empty string")
            roles = spec.get("roles")
            if roles is not None and (not isinstance(roles, list) or not all(isinstance(r, str) for r in roles)):
                raise ValueError("roles must be a list of strings")
            lifetime = spec.get("lifetimeSeconds")
            if lifetime is not None and type(lifetime) is not int:
                raise ValueError("lifetimeSeconds must be an integer (negative for an expired token)")
            token, expires_on = identity.issue(
                spec.get("audience", "https://graph.microsoft.com"),
                client_id=spec.get("clientId"),
                roles=roles,
                lifetime_seconds=lifetime,
                tenant_id=tenant_id,
            )
        except ValueError as exc:
            return _error(str(exc))
        return _json({"access_token": token, "expires_on": expires_on})

    async def get_requests(request: web.Request) -> web.Response:
        query = request.query
        since = query.get("sinceSeq")
        if since is not None and not since.lstrip("-").isdigit():
            return _error("sinceSeq must be an integer")
        log = state_of(request).log
        entries = log.query(
            query.get("method"), query.get("pathContains"), None if since is None else int(since), query.get("tenantId")
        )
        return _json({"value": entries, "lastSeq": log.seq})

    async def clear_requests(request: web.Request) -> web.Response:
        state_of(request).log.clear()
        return _json({"cleared": True})

    async def stats(request: web.Request) -> web.Response:
        state = state_of(request)
        described = state.stats.describe(state.faults.injected, state.identity.tokens_issued)
        described["rateLimit"] = state.rate_limiter.counters()
        described["tokenEndpoint"] = state.entra.counters()
        return _json(described)

    async def get_faults(request: web.Request) -> web.Response:
        return _json(state_of(request).faults.describe())

    async def add_fault(request: web.Request) -> web.Response:
        try:
            rule = FaultRule.from_json(await _body(request))
        except (ValueError, TypeError) as exc:
            return _error(str(exc))
        faults = state_of(request).faults
        faults.rules.append(rule)
        return _json(faults.describe())

    async def put_faults(request: web.Request) -> web.Response:
        try:
            rules = await _body(request)
            if not isinstance(rules, list):
                raise ValueError("PUT /faults takes a JSON list of rules")
            parsed = [FaultRule.from_json(r) for r in rules]
        except (ValueError, TypeError) as exc:
            return _error(str(exc))
        faults = state_of(request).faults
        faults.rules[:] = parsed
        return _json(faults.describe())

    async def clear_faults(request: web.Request) -> web.Response:
        state_of(request).faults.rules.clear()
        return _json([])

    async def get_latency(request: web.Request) -> web.Response:
        return _json({"latencyMs": state_of(request).faults.latency_ms})

    async def put_latency(request: web.Request) -> web.Response:
        try:
            settings = await _body(request)
            value = settings.get("latencyMs") if isinstance(settings, dict) else None
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError('latency takes {"latencyMs": number >= 0}')
        except ValueError as exc:
            return _error(str(exc))
        state_of(request).faults.latency_ms = float(value)
        return _json({"latencyMs": float(value)})

    def add_settings_routes(path: str, settings_of: Callable[[SandboxState], Any]) -> None:
        """GET and PUT of a settings object with ``describe()`` and ``configure(json)`` (ValueError: a 400)."""

        async def get(request: web.Request) -> web.Response:
            return _json(settings_of(state_of(request)).describe())

        async def put(request: web.Request) -> web.Response:
            settings = settings_of(state_of(request))
            try:
                settings.configure(await _body(request))
            except ValueError as exc:
                return _error(str(exc))
            return _json(settings.describe())

        app.router.add_get(path, get)
        app.router.add_put(path, put)

    async def clear_rate_limit(request: web.Request) -> web.Response:
        limiter = state_of(request).rate_limiter
        limiter.clear(request.query.get("tenantId"))
        return _json(limiter.describe())

    def describe_tenant(state: SandboxState, tenant_id: str) -> dict[str, Any]:
        return {"tenantId": tenant_id, "consents": state.entra.consents_of(tenant_id)}

    async def list_tenants(request: web.Request) -> web.Response:
        state = state_of(request)
        return _json([describe_tenant(state, tenant_id) for tenant_id in state.tenants])

    async def put_tenant(request: web.Request) -> web.Response:
        state = state_of(request)
        tenant_id = request.match_info["tenantId"]
        state.add_tenant(tenant_id)
        return _json(describe_tenant(state, tenant_id))

    async def list_apps(request: web.Request) -> web.Response:
        return _json(list(state_of(request).entra.apps.values()))

    async def put_app(request: web.Request) -> web.Response:
        state = state_of(request)
        try:
            settings = await _body(request, default={})
            return _json(state.entra.register_app(request.match_info["appId"], settings, state.identity.principal_id))
        except ValueError as exc:
            return _error(str(exc))

    async def grant_consent(request: web.Request) -> web.Response:
        state = state_of(request)
        tenant_id, app_id = request.match_info["tenantId"], request.match_info["appId"]
        try:
            settings = await _body(request, default={})
            if not isinstance(settings, dict) or set(settings) - {"roles"}:
                raise ValueError('consent takes {"roles": [...]}')
            state.entra.grant(store_of_tenant(state, tenant_id), tenant_id, app_id, settings.get("roles"))
        except ValueError as exc:
            return _error(str(exc))
        except LookupError as exc:
            return _error(str(exc), 404)
        return _json(describe_tenant(state, tenant_id))

    async def revoke_consent(request: web.Request) -> web.Response:
        state = state_of(request)
        tenant_id, app_id = request.match_info["tenantId"], request.match_info["appId"]
        delete_sp = request.query.get("deleteServicePrincipal", "false").lower() == "true"
        try:
            state.entra.revoke(store_of_tenant(state, tenant_id), tenant_id, app_id, delete_service_principal=delete_sp)
        except LookupError as exc:
            return _error(str(exc), 404)
        return _json(describe_tenant(state, tenant_id))

    p = ADMIN_PREFIX
    router = app.router
    router.add_get(p, info)
    router.add_post(f"{p}/reset", reset)
    router.add_post(f"{p}/seed", seed)
    router.add_get(f"{p}/state", state_dump)
    router.add_get(f"{p}/activities", list_activities)
    router.add_get(f"{p}/activities/{{id}}", get_activity)
    router.add_get(f"{p}/providers", list_providers)
    router.add_put(f"{p}/providers/{{id}}", put_provider)
    router.add_get(f"{p}/identity", get_identity)
    router.add_put(f"{p}/identity", put_identity)
    router.add_post(f"{p}/token", mint_token)
    router.add_get(f"{p}/requests", get_requests)
    router.add_delete(f"{p}/requests", clear_requests)
    router.add_get(f"{p}/stats", stats)
    router.add_get(f"{p}/faults", get_faults)
    router.add_post(f"{p}/faults", add_fault)
    router.add_put(f"{p}/faults", put_faults)
    router.add_delete(f"{p}/faults", clear_faults)
    router.add_get(f"{p}/latency", get_latency)
    router.add_put(f"{p}/latency", put_latency)
    router.add_get(f"{p}/tenants", list_tenants)
    router.add_put(f"{p}/tenants/{{tenantId}}", put_tenant)
    router.add_put(f"{p}/tenants/{{tenantId}}/consents/{{appId}}", grant_consent)
    router.add_delete(f"{p}/tenants/{{tenantId}}/consents/{{appId}}", revoke_consent)
    router.add_get(f"{p}/apps", list_apps)
    router.add_put(f"{p}/apps/{{appId}}", put_app)
    add_settings_routes(f"{p}/rate-limit", lambda state: state.rate_limiter)
    router.add_delete(f"{p}/rate-limit", clear_rate_limit)
    add_settings_routes(f"{p}/create-answers", lambda state: state.create_answers)
