"""Entra ID's token endpoint for several tenants: a multi-tenant app trading a managed-identity token for Graph's.

The flow (see shared/notes/graph.md, "Many tenants without a secret"): the managed-identity endpoint issues a token
for ``api://AzureADTokenExchange`` (issuer ``https://login.microsoftonline.com/{home tenant}/v2.0``, subject the
identity's object id); a multi-tenant app registration trusts it through a federated identity credential; the
app presents it as client assertion to ``POST /{tenant}/oauth2/v2.0/token`` of each customer tenant that has
consented, and gets a Graph token whose ``tid`` is that tenant. Graph requests with it see only that tenant.

What azure-identity's ``ClientAssertionCredential`` (1.27, sync and aio alike: its own AadClient, no MSAL network
calls, so no discovery requests) sends: a form with ``grant_type=client_credentials``, ``client_id``,
``client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer``, ``client_assertion``, ``scope``
(and ``claims`` for CAE). It reads ``access_token``, ``expires_in`` (or ``expires_on``), ``token_type``,
``refresh_in``; on an error ``error`` and ``error_description``. It refuses an authority that is not https
(``authority=`` or ``AZURE_AUTHORITY_HOST``), hence the sandbox's ``--https``. MSAL-based clients first read
``GET /{tenant}/v2.0/.well-known/openid-configuration`` (served here) and, unless instance discovery is off
(msal ``instance_discovery=False``, azure-identity ``disable_instance_discovery=True``), ask
login.microsoftonline.com whether the host is an authority, which no sandbox can answer.

Checks, in this order, each answered in Entra's error shape (``error``, ``error_description`` "AADSTS<n>: ... Trace
ID ... Correlation ID ... Timestamp ...", ``error_codes``, ``timestamp``, ``trace_id``, ``correlation_id``,
``error_uri``): the form's parameters (AADSTS900144, 70003, 7000215 for any client secret: the sandbox knows none,
7000216); the tenant (AADSTS90002); the app in that tenant, i.e. registered and with a service principal there
(AADSTS700016; AADSTS7000229 once an admin deleted its service principal); the assertion: signed by this sandbox
(AADSTS50027), unexpired (AADSTS700024), issuer, subject and audience matching one of the app's federated
credentials (AADSTS70021); the scope, a single ``https://graph.microsoft.com/.default`` (AADSTS1002012, 500011); the
tenant's admin consent (AADSTS65001 once revoked). Consent and service principal are per tenant; revoking one
tenant's consent fails only that tenant.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from .identity import (
    ASSERTION_AUDIENCE,
    ASSERTION_ISSUER,
    DEFAULT_ROLES,
    GRAPH_AUDIENCES,
    GRAPH_RESOURCE,
    TokenError,
)

if TYPE_CHECKING:
    from .state import SandboxState
    from .store import Store

JWT_BEARER: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class EntraError(Exception):
    """An error answer of the token endpoint: AADSTS code, OAuth ``error``, HTTP status, message."""

    def __init__(self, status: int, error: str, code: int, message: str, **extra: str) -> None:
        super().__init__(f"AADSTS{code}: {message}")
        self.status = status
        self.error = error
        self.code = code
        self.message = message
        self.extra = extra

    def body(self, correlation_id: str) -> dict[str, Any]:
        trace_id = str(uuid.uuid4())
        timestamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.code}: {self.message}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}"
                f"\r\nTimestamp: {timestamp}"
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
            **self.extra,
        }


def _missing(name: str) -> EntraError:
    return EntraError(
        400, "invalid_request", 900144, f"The request body must contain the following parameter: '{name}'."
    )


@dataclass
class Consent:
    """A tenant's admin consent to an app: the app's service principal there and the Graph roles granted."""

    service_principal_id: str
    roles: tuple[str, ...]
    granted: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"servicePrincipalId": self.service_principal_id, "roles": list(self.roles), "granted": self.granted}


class Entra:
    """Multi-tenant app registrations (in the home tenant), consents per tenant, and the token endpoint's counters."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.apps: dict[str, dict[str, Any]] = {}
        self.consents: dict[tuple[str, str], Consent] = {}
        self.removed: set[tuple[str, str]] = set()
        """(tenant, app) whose service principal an admin deleted: AADSTS7000229 until consent is given again."""
        self.requests: Counter[str] = Counter()
        self.issued: Counter[str] = Counter()

    def register_app(self, app_id: str, settings: Any, mi_principal_id: str) -> dict[str, Any]:
        """Create or replace an app registration: ``{"displayName"?, "federatedCredentials"?: [{"name"?, "issuer",
        "subject", "audiences"?}]}``; by default it trusts the sandbox's managed identity as it is now."""
        if not isinstance(settings, dict) or set(settings) - {"displayName", "federatedCredentials"}:
            raise ValueError('an app takes {"displayName", "federatedCredentials"}')
        credentials = settings.get(
            "federatedCredentials",
            [{"name": "sandbox-managed-identity", "issuer": ASSERTION_ISSUER, "subject": mi_principal_id}],
        )
        if not isinstance(credentials, list):
            raise ValueError("federatedCredentials must be a list")
        app = {
            "appId": app_id,
            "displayName": settings.get("displayName", "Sandbox multi-tenant app"),
            "federatedCredentials": [_federated_credential(c) for c in credentials],
        }
        if not isinstance(app["displayName"], str):
            raise ValueError("displayName must be a string")
        self.apps[app_id] = app
        return app

    def grant(self, store: Store, tenant_id: str, app_id: str, roles: Any) -> Consent:
        """Admin consent in ``tenant_id``: the app's service principal appears there; tokens carry ``roles``."""
        app = self.apps.get(app_id)
        if app is None:
            raise LookupError(f"no app {app_id}: register it first")
        roles = DEFAULT_ROLES if roles is None else roles
        if not isinstance(roles, list | tuple) or not all(isinstance(r, str) for r in roles):
            raise ValueError("roles must be a list of strings")
        consent = self.consents.get((tenant_id, app_id))
        if consent is None:
            consent = self.consents[(tenant_id, app_id)] = Consent(str(uuid.uuid4()), tuple(roles))
            store.put_service_principal(
                {"id": consent.service_principal_id, "appId": app_id, "displayName": app["displayName"]}
            )
        consent.roles, consent.granted = tuple(roles), True
        self.removed.discard((tenant_id, app_id))
        return consent

    def revoke(self, store: Store, tenant_id: str, app_id: str, *, delete_service_principal: bool) -> None:
        """Revoke the tenant's consent (AADSTS65001 from then on) or also delete the app's service principal
        there (AADSTS7000229, the app missing its service principal in the tenant)."""
        consent = self.consents.get((tenant_id, app_id))
        if consent is None:
            raise LookupError(f"tenant {tenant_id} has no consent to app {app_id}")
        consent.granted = False
        if delete_service_principal:
            del self.consents[(tenant_id, app_id)]
            self.removed.add((tenant_id, app_id))
            store.remove_service_principal(consent.service_principal_id)

    def consents_of(self, tenant_id: str) -> dict[str, Any]:
        return {app: c.to_json() for (tenant, app), c in self.consents.items() if tenant == tenant_id}

    def counters(self) -> dict[str, Any]:
        """Token endpoint requests (whatever the answer) and tokens issued, in all and per tenant of the path."""
        return {
            "requests": sum(self.requests.values()),
            "issued": sum(self.issued.values()),
            "byTenant": {t: {"requests": n, "issued": self.issued[t]} for t, n in self.requests.items()},
        }


def _federated_credential(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict) or set(item) - {"name", "issuer", "subject", "audiences"}:
        raise ValueError('a federated credential takes {"name", "issuer", "subject", "audiences"}')
    for key in ("issuer", "subject"):
        if not isinstance(item.get(key), str) or not item[key]:
            raise ValueError(f"a federated credential needs a non-empty string {key!r}")
    audiences = item.get("audiences", [ASSERTION_AUDIENCE])
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise ValueError("audiences must be a list of strings")
    return {
        "name": item.get("name", "credential"),
        "issuer": item["issuer"],
        "subject": item["subject"],
        "audiences": audiences,
    }


def answer_token_request(state: SandboxState, tenant_id: str, form: Any) -> dict[str, Any]:
    """``POST /{tenant}/oauth2/v2.0/token``: Entra's success body, or a raised :class:`EntraError`."""
    entra = state.entra
    client_id, assertion = _read_form(form)
    store = state.tenants.get(tenant_id)
    if store is None:
        raise unknown_tenant(tenant_id, "invalid_request")
    app = entra.apps.get(client_id)
    consent = entra.consents.get((tenant_id, client_id))
    if app is not None and consent is None and (tenant_id, client_id) in entra.removed:
        raise EntraError(
            401,
            "invalid_client",
            7000229,
            f"The client application {client_id} is missing service principal in the tenant {tenant_id}. See "
            "instructions here: https://go.microsoft.com/fwlink/?linkid=2225119",
        )
    if app is None or consent is None:
        raise EntraError(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory '{tenant_id}'. This can happen "
            "if the application has not been installed by the administrator of the tenant or consented to by any "
            "user in the tenant. You may have sent your authentication request to the wrong tenant.",
        )
    _check_assertion(state, app, assertion)
    _check_scope(form["scope"], tenant_id)
    if not consent.granted:
        raise EntraError(
            400,
            "invalid_grant",
            65001,
            f"The user or administrator has not consented to use the application with ID '{client_id}' named "
            f"'{app['displayName']}'. Send an interactive authorization request for this user and resource.",
            suberror="consent_required",
        )
    roles = tuple(dict.fromkeys((*consent.roles, *sorted(store.granted_role_values(consent.service_principal_id)))))
    identity = state.identity
    token, _ = identity.issue(
        GRAPH_RESOURCE, client_id=client_id, roles=roles, tenant_id=tenant_id, object_id=consent.service_principal_id
    )
    entra.issued[tenant_id] += 1
    lifetime = identity.token_lifetime_seconds
    return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}


def _read_form(form: Any) -> tuple[str, str]:
    """The client-credentials form with an assertion: returns the client id and the assertion."""
    grant_type = form.get("grant_type")
    if not grant_type:
        raise _missing("grant_type")
    if grant_type != "client_credentials":
        raise EntraError(
            400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'."
        )
    for name in ("client_id", "scope"):
        if not form.get(name):
            raise _missing(name)
    client_id = form["client_id"]
    if "client_secret" in form:
        raise EntraError(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "
            f"not the client secret ID, for a secret added to app '{client_id}'.",
        )
    assertion = form.get("client_assertion")
    if not assertion:
        raise EntraError(
            401,
            "invalid_client",
            7000216,
            "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
        )
    if form.get("client_assertion_type") != JWT_BEARER:
        raise _missing("client_assertion_type")
    return client_id, assertion


def _check_assertion(state: SandboxState, app: dict[str, Any], assertion: str) -> None:
    try:
        claims = state.identity.claims(assertion)
    except (TokenError, ValueError, KeyError, TypeError):
        raise EntraError(400, "invalid_request", 50027, "JWT token is invalid or malformed.") from None
    now = int(time.time())
    expires = int(claims.get("exp", 0))
    if expires <= now:
        not_before = int(claims.get("nbf", 0))
        raise EntraError(
            400,
            "invalid_client",
            700024,
            f"Client assertion is not within its valid time range. Current time: {_utc(now)}, assertion valid from "
            f"{_utc(not_before)}, expiry time of assertion {_utc(expires)}.",
        )
    issuer, subject, audience = claims.get("iss"), claims.get("sub"), claims.get("aud")
    if not any(
        c["issuer"] == issuer and c["subject"] == subject and audience in c["audiences"]
        for c in app["federatedCredentials"]
    ):
        raise EntraError(
            400,
            "invalid_request",
            70021,
            f"No matching federated identity record found for presented assertion. Assertion Issuer: '{issuer}'. "
            f"Assertion Subject: '{subject}'. Assertion Audience: '{audience}'. "
            "https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation",
        )


def _check_scope(scope: str, tenant_id: str) -> None:
    resource, suffix, rest = scope.strip().rpartition("/.default")
    if not suffix or rest or " " in resource:
        raise EntraError(
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {scope} is not valid. Client credential flows must have a scope value "
            "with /.default suffixed to the resource identifier (application ID URI).",
        )
    if resource not in GRAPH_AUDIENCES:
        raise EntraError(
            400,
            "invalid_resource",
            500011,
            f"The resource principal named {resource} was not found in the tenant named {tenant_id}. This can happen "
            "if the application has not been installed by the administrator of the tenant or consented to by any "
            "user in the tenant. You might have sent your authentication request to the wrong tenant.",
        )


def _utc(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%m/%d/%Y %H:%M:%S")


def openid_configuration(base: str, tenant_id: str) -> dict[str, Any]:
    """``GET /{tenant}/v2.0/.well-known/openid-configuration``, the fields MSAL reads and a few more, with this
    sandbox's URLs where Entra has its own."""
    root = f"{base}/{tenant_id}"
    return {
        "token_endpoint": f"{root}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{root}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"https://login.microsoftonline.com/{tenant_id}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
        "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "msgraph_host": "graph.microsoft.com",
    }


def unknown_tenant(tenant_id: str, error: str) -> EntraError:
    """AADSTS90002; the token endpoint says ``invalid_request``, OpenID discovery ``invalid_tenant``."""
    return EntraError(
        400,
        error,
        90002,
        f"Tenant '{tenant_id}' not found. Check to make sure you have the correct tenant ID and are signing into the "
        "correct cloud. Check with your subscription administrator, this may happen if there are no active "
        "subscriptions for the tenant.",
    )
