"""Tokens the sandbox issues and verifies, and the App Service managed-identity protocol.

Tokens are HS256 JWTs (Graph's are RS256 JWTs, so code that peeks at claims such as ``roles`` works on both)
signed with a per-process random key: nothing outside this process can mint one, and they die with it.
The managed-identity answer follows what ``azure.identity`` (App Service source, api-version 2019-08-01)
sends and parses.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any, Final

from .seed import DEFAULT_MI_CLIENT_ID, DEFAULT_MI_PRINCIPAL_ID, GRAPH_APP_ID, TENANT_ID

GRAPH_RESOURCE: Final = "https://graph.microsoft.com"
GRAPH_AUDIENCES: Final = frozenset({GRAPH_RESOURCE, GRAPH_RESOURCE + "/", GRAPH_APP_ID})
# The audience of a managed-identity token meant as a federated client assertion, and its issuer (Entra's v2.0
# issuer of the identity's tenant), which a federated identity credential names.
ASSERTION_AUDIENCE: Final = "api://AzureADTokenExchange"
ASSERTION_ISSUER: Final = f"https://login.microsoftonline.com/{TENANT_ID}/v2.0"
DEFAULT_ROLES: Final = (
    "LearningAssignedCourse.ReadWrite.All",
    "LearningSelfInitiatedCourse.ReadWrite.All",
    "User.Read.All",
    "LearningContent.Read.All",
)
DEFAULT_TOKEN_LIFETIME_SECONDS: Final = 3600
MSI_API_VERSION: Final = "2019-08-01"
_JWT_HEADER: Final = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT","kid":"sandbox"}').rstrip(b"=")
_CACHE_LIMIT: Final = 10_000


class TokenError(Exception):
    """A bearer token Graph would refuse; the message is Graph's for that case."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What the routes need from a verified token."""

    roles: frozenset[str]
    expires_on: int
    app_id: str
    audience: str
    tenant_id: str


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


class Identity:
    """The managed identity the sandbox pretends the product runs as, and the token authority."""

    def __init__(self, header_secret: str | None = None) -> None:
        self.header_secret = header_secret or secrets.token_urlsafe(24)
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, TokenInfo] = {}
        self.reset()

    def reset(self) -> None:
        """Back to the default roles, lifetime and client id; the header secret and signing key stay."""
        self.roles: tuple[str, ...] = DEFAULT_ROLES
        self.token_lifetime_seconds = DEFAULT_TOKEN_LIFETIME_SECONDS
        self.client_id = DEFAULT_MI_CLIENT_ID
        self.principal_id = DEFAULT_MI_PRINCIPAL_ID
        self.tokens_issued = 0

    def configure(self, settings: dict[str, Any]) -> None:
        """Apply ``{"roles", "tokenLifetimeSeconds", "clientId", "principalId"}`` (each optional)."""
        unknown = set(settings) - {"roles", "tokenLifetimeSeconds", "clientId", "principalId"}
        if unknown:
            raise ValueError(f"unknown identity settings: {sorted(unknown)}")
        roles = settings.get("roles", self.roles)
        if not isinstance(roles, list | tuple) or not all(isinstance(r, str) for r in roles):
            raise ValueError("roles must be a list of strings")
        lifetime = settings.get("tokenLifetimeSeconds", self.token_lifetime_seconds)
        if type(lifetime) is not int or lifetime < 1:
            raise ValueError("tokenLifetimeSeconds must be a positive integer")
        for key in ("clientId", "principalId"):
            if key in settings and (not isinstance(settings[key], str) or not settings[key]):
                raise ValueError(f"{key} must be a non-empty string")
        self.roles = tuple(roles)
        self.token_lifetime_seconds = lifetime
        self.client_id = settings.get("clientId", self.client_id)
        self.principal_id = settings.get("principalId", self.principal_id)

    def describe(self) -> dict[str, Any]:
        return {
            "roles": list(self.roles),
            "tokenLifetimeSeconds": self.token_lifetime_seconds,
            "clientId": self.client_id,
            "principalId": self.principal_id,
            "tenantId": TENANT_ID,
            "tokensIssued": self.tokens_issued,
        }

    def issue(
        self,
        audience: str,
        *,
        client_id: str | None = None,
        roles: tuple[str, ...] | list[str] | None = None,
        lifetime_seconds: int | None = None,
        tenant_id: str = TENANT_ID,
        object_id: str | None = None,
    ) -> tuple[str, int]:
        """Sign a token; returns it with its expiry (epoch seconds). A negative lifetime makes an expired one.

        ``tenant_id`` and ``object_id`` (the caller's service principal there) default to the managed identity's.
        A token for ``api://AzureADTokenExchange`` is shaped like Entra's v2.0 one: the issuer a federated
        credential names, no roles."""
        now = int(time.time())
        expires_on = now + (self.token_lifetime_seconds if lifetime_seconds is None else lifetime_seconds)
        exchange = audience == ASSERTION_AUDIENCE
        principal_id = object_id or self.principal_id
        claims = {
            "aud": audience,
            "iss": ASSERTION_ISSUER if exchange else f"https://sts.windows.net/{tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": expires_on,
            "appid": client_id or self.client_id,
            "idtyp": "app",
            "oid": principal_id,
            "sub": principal_id,
            "tid": tenant_id,
            "roles": [] if exchange else list(self.roles if roles is None else roles),
            "uti": uuid.uuid4().hex,
            "ver": "2.0" if exchange else "1.0",
        }
        signing_input = _JWT_HEADER + b"." + _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self._key, signing_input, hashlib.sha256).digest()
        return (signing_input + b"." + _b64(signature)).decode("ascii"), expires_on

    def verify(self, token: str) -> TokenInfo:
        """Check signature, expiry and audience (Graph's three); cached by token since tokens are reused."""
        info = self._verified.get(token)
        if info is None:
            info = self._decode(token)
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified.clear()
            self._verified[token] = info
        if info.expires_on <= time.time():
            raise TokenError("Lifetime validation failed, the token is expired.")
        if info.audience not in GRAPH_AUDIENCES:
            raise TokenError("Invalid audience.")
        return info

    def claims(self, token: str) -> dict[str, Any]:
        """The claims of a token this sandbox signed (TokenError otherwise); nothing else is checked."""
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("IDX14100: JWT is not well formed, there are no dots (.).")
        signing_input = f"{parts[0]}.{parts[1]}".encode("ascii", "replace")
        expected = _b64(hmac.new(self._key, signing_input, hashlib.sha256).digest())
        if not hmac.compare_digest(expected, parts[2].encode("ascii", "replace")):
            raise TokenError("Access token validation failure.")
        return json.loads(_unb64(parts[1]))

    def _decode(self, token: str) -> TokenInfo:
        claims = self.claims(token)
        return TokenInfo(
            roles=frozenset(claims.get("roles", ())),
            expires_on=int(claims["exp"]),
            app_id=str(claims.get("appid", "")),
            audience=str(claims.get("aud", "")),
            tenant_id=str(claims.get("tid", "")),
        )

    def answer_msi(
        self, query: dict[str, str], header_value: str | None, granted: set[str] | frozenset[str] = frozenset()
    ) -> tuple[int, dict[str, Any]]:
        """The App Service managed-identity endpoint: ``GET ?api-version=2019-08-01&resource=...[&client_id=]``
        with ``X-IDENTITY-HEADER``. Returns (status, JSON body). ``granted``: roles granted to the identity's
        service principal through appRoleAssignedTo, which its tokens carry besides the configured roles.
        ``resource=api://AzureADTokenExchange`` gives the client assertion of the multi-tenant flow (entra.py)."""
        if header_value is None or not hmac.compare_digest(header_value.encode(), self.header_secret.encode()):
            return 401, _msi_error(401, "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.")
        if query.get("api-version") != MSI_API_VERSION:
            return 400, _msi_error(400, f"Unsupported or missing api-version; this endpoint speaks {MSI_API_VERSION}.")
        resource = query.get("resource")
        if not resource:
            return 400, _msi_error(400, "The resource parameter is required.")
        client_id = query.get("client_id") or self.client_id
        self.tokens_issued += 1
        roles = tuple(dict.fromkeys((*self.roles, *sorted(granted))))
        token, expires_on = self.issue(resource, client_id=client_id, roles=roles)
        return 200, {
            "access_token": token,
            "expires_on": str(expires_on),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id,
        }


def _msi_error(status: int, message: str) -> dict[str, Any]:
    # App Service's identity endpoint answers errors in this shape (not Graph's).
    return {"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())}
