"""The aiohttp application: one entry for all of Graph, the managed-identity endpoint, Entra's token endpoint
and the admin API.

Built for benchmarks: no middleware, no per-request logging unless asked, one ``transport.write`` per
response (aiohttp buffers the headers until the body and sets TCP_NODELAY), O(1) routing by hand, token
verification cached per token, and sleeps (latency) only through ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import time
import traceback
import uuid
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from . import admin_api
from .entra import EntraError, answer_token_request, openid_configuration, unknown_tenant
from .faults import HTML_GATEWAY_PAGE, FaultRule
from .graph_api import INVALID_BODY, GraphCall, dispatch
from .identity import TokenError, TokenInfo
from .odata import split_path
from .requestlog import redact_headers, utc_now_iso
from .rules import PREFER_UNKNOWN_ENUMS, GraphError, error_body
from .state import SandboxState

STATE_KEY: Final = web.AppKey("sandbox_state", SandboxState)
GRAPH_PREFIX: Final = "/v1.0"
GRAPH_JSON: Final = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
ERROR_JSON: Final = "application/json"
WWW_AUTHENTICATE: Final = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
    'client_id="00000003-0000-0000-c000-000000000000"'
)
_log = logging.getLogger("sandbox")


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _retry_after_value(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def fault_response(rule: FaultRule, target: str, request_id: str, client_request_id: str) -> web.Response:
    """The answer of a rule with a status: Graph's error body, App Service's for identity, Entra's for entra
    (AADSTS90033 unless the rule names another message), or a gateway page."""
    assert rule.status is not None
    headers = {"request-id": request_id, "client-request-id": client_request_id}
    if rule.retry_after is not None:
        headers["Retry-After"] = _retry_after_value(rule.retry_after)
    if rule.body is not None:
        body = rule.body.encode()
        headers["Content-Type"] = "text/html; charset=utf-8" if rule.html else "text/plain; charset=utf-8"
    elif rule.html:
        try:
            reason = http.HTTPStatus(rule.status).phrase
        except ValueError:
            reason = "Error"
        body = HTML_GATEWAY_PAGE.format(status=rule.status, reason=reason).encode()
        headers["Content-Type"] = "text/html; charset=utf-8"
    elif target == "identity":
        _code, message = rule.code_and_message()
        body = dumps({"statusCode": rule.status, "message": message, "correlationId": request_id})
        headers["Content-Type"] = ERROR_JSON
    elif target == "entra":
        error = rule.code or ("temporarily_unavailable" if rule.status >= 429 else "invalid_request")
        message = rule.message or "A transient error has occurred. Please try again."
        body = dumps(EntraError(rule.status, error, 90033, message).body(request_id))
        headers["Content-Type"] = ERROR_JSON
    else:
        code, message = rule.code_and_message()
        body = dumps(error_body(code, message, request_id, client_request_id))
        headers["Content-Type"] = ERROR_JSON
    return web.Response(status=rule.status, body=body, headers=headers)


def _drop(request: web.Request) -> None:
    """Close the connection without a byte of response (what a dead gateway or a reset looks like)."""
    transport = request.transport
    if transport is not None:
        transport.abort()


def _authenticate(state: SandboxState, headers: Any) -> TokenInfo:
    value = headers.get("Authorization")
    if not value:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
    scheme, _, token = value.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
    try:
        return state.identity.verify(token)
    except TokenError as exc:
        raise GraphError(401, "InvalidAuthenticationToken", str(exc)) from None
    except (ValueError, KeyError, TypeError):
        raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.") from None


async def graph_entry(request: web.Request) -> web.StreamResponse:
    """Every ``/v1.0/...`` request: latency, faults, token, rate limit, route, request log, counters."""
    state = request.app[STATE_KEY]
    stats = state.stats
    stats.in_flight += 1
    if stats.in_flight > stats.max_in_flight:
        stats.max_in_flight = stats.in_flight
    try:
        return await _graph(request, state)
    finally:
        stats.in_flight -= 1


@dataclass(slots=True)
class _Exchange:
    """One Graph request as the handler sees it, for the router and the request log."""

    request: web.Request
    method: str
    raw_path: str  # after /v1.0, still percent-encoded
    path: str  # decoded segments joined: what fault rules and the log match on
    segments: list[str]
    raw_body: bytes
    body: Any  # parsed JSON, None when empty, INVALID_BODY when not JSON
    request_id: str
    client_request_id: str
    started: float
    throttled: bool = False  # answered 429 by the rate limit
    tenant: str | None = None  # the token's tenant, once verified


async def _graph(request: web.Request, state: SandboxState) -> web.StreamResponse:
    started = time.perf_counter()
    raw_path = request.raw_path.partition("?")[0][len(GRAPH_PREFIX) :]
    raw_body = await request.read() if request.can_read_body else b""
    body: Any = None
    if raw_body:
        try:
            body = json.loads(raw_body)
        except ValueError:
            body = INVALID_BODY
    segments = split_path(raw_path)
    ex = _Exchange(
        request=request,
        method=request.method,
        raw_path=raw_path,
        path="/" + "/".join(segments),
        segments=segments,
        raw_body=raw_body,
        body=body,
        request_id=str(uuid.uuid4()),
        client_request_id=request.headers.get("client-request-id") or str(uuid.uuid4()),
        started=started,
    )
    faults = state.faults
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)
    rule = faults.select("graph", ex.method, ex.path) if faults.rules else None
    response: web.Response | None = None
    if rule is not None:
        if rule.latency_ms:
            await asyncio.sleep(rule.latency_ms / 1000)
        if rule.drop or rule.drop_after_applying:
            if rule.drop_after_applying:
                _answer(state, ex)  # Graph does the work; its answer never leaves
            state.stats.dropped += 1
            _record(state, ex, None, rule)
            _drop(request)
            # aiohttp finds the transport closed and skips writing; nothing reaches the client.
            return web.Response(status=499)
        if rule.status is not None:
            response = fault_response(rule, "graph", ex.request_id, ex.client_request_id)
    if response is None:
        response = _answer(state, ex)
    _record(state, ex, response.status, rule)
    return response


def _prefers_unknown_enums(headers: Any) -> bool:
    """``Prefer: include-unknown-enum-members`` among the request's preferences (comma-separated, repeatable)."""
    return any(
        part.strip().lower() == PREFER_UNKNOWN_ENUMS
        for value in headers.getall("Prefer", ())
        for part in value.split(",")
    )


def _answer(state: SandboxState, ex: _Exchange) -> web.Response:
    request_headers = ex.request.headers
    headers = {"request-id": ex.request_id, "client-request-id": ex.client_request_id}
    try:
        token = _authenticate(state, request_headers)
        store = state.tenants.get(token.tenant_id)
        if store is None:  # a tenant the last reset removed
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid tenant.")
        ex.tenant = token.tenant_id
        if state.rate_limiter.active:
            throttled = state.rate_limiter.spend(token.tenant_id, token.app_id)
            if throttled is not None:
                ex.throttled = True
                raise throttled
        call = GraphCall(
            store=store,
            graph_url=state.graph_url,
            token=token,
            create_answers=state.create_answers,
            include_unknown_enums="Prefer" in request_headers and _prefers_unknown_enums(request_headers),
        )
        status, payload = dispatch(call, ex.method, ex.segments, ex.request.query, ex.body)
    except GraphError as exc:
        headers["Content-Type"] = ERROR_JSON
        if exc.status == 401:
            headers["WWW-Authenticate"] = WWW_AUTHENTICATE
        if exc.headers:
            headers.update(exc.headers)
        body = error_body(exc.code, exc.message, ex.request_id, ex.client_request_id)
        return web.Response(status=exc.status, body=dumps(body), headers=headers)
    except Exception:  # a sandbox bug must still answer like Graph, and say where it broke
        traceback.print_exc()
        headers["Content-Type"] = ERROR_JSON
        body = error_body("internalServerError", "Internal server error.", ex.request_id, ex.client_request_id)
        return web.Response(status=500, body=dumps(body), headers=headers)
    if call.include_unknown_enums:
        headers["Preference-Applied"] = PREFER_UNKNOWN_ENUMS
    if payload is None:
        return web.Response(status=status, headers=headers)
    headers["Content-Type"] = GRAPH_JSON
    return web.Response(status=status, body=dumps(payload), headers=headers)


def _record(state: SandboxState, ex: _Exchange, status: int | None, rule: FaultRule | None) -> None:
    """Count the request and append it to the log (status None: the connection was dropped)."""
    state.stats.count(ex.method, status)
    log = state.log
    if log.limit <= 0:
        return
    body = ex.raw_body.decode("utf-8", "replace") if ex.body is INVALID_BODY else ex.body
    fault = "rateLimit" if ex.throttled else None
    if rule is not None:
        dropped = rule.drop or rule.drop_after_applying
        fault = "drop" if dropped else ("status" if rule.status is not None else "latency")
    log.add(
        {
            "seq": log.next_seq(),
            "method": ex.method,
            "path": ex.path,
            "rawPath": ex.raw_path,
            "query": dict(ex.request.query),
            "headers": redact_headers(ex.request.headers),
            "body": body,
            "status": status,
            "requestId": ex.request_id,
            "clientRequestId": ex.client_request_id,
            "fault": fault,
            "tenant": ex.tenant,
            "durationMs": round((time.perf_counter() - ex.started) * 1000, 3),
            "at": utc_now_iso(),
        }
    )


async def _token_endpoint_fault(
    request: web.Request, state: SandboxState, target: str, request_id: str
) -> web.StreamResponse | None:
    """What a fault rule makes a token endpoint answer (after its latency): a dropped connection, a status, or
    None to go on."""
    rule = state.faults.select(target, request.method, request.path) if state.faults.rules else None
    if rule is None:
        return None
    if rule.latency_ms:
        await asyncio.sleep(rule.latency_ms / 1000)
    if rule.drop:
        _drop(request)
        return web.Response(status=499)
    return None if rule.status is None else fault_response(rule, target, request_id, request_id)


async def msi_token(request: web.Request) -> web.StreamResponse:
    """The App Service managed-identity endpoint (``IDENTITY_ENDPOINT``)."""
    state = request.app[STATE_KEY]
    state.stats.token_requests += 1
    request_id = str(uuid.uuid4())
    faulty = await _token_endpoint_fault(request, state, "identity", request_id)
    if faulty is not None:
        return faulty
    granted = state.store.granted_role_values(state.identity.principal_id)
    status, payload = state.identity.answer_msi(dict(request.query), request.headers.get("X-IDENTITY-HEADER"), granted)
    headers = {"Content-Type": "application/json", "request-id": request_id}
    return web.Response(status=status, body=dumps(payload), headers=headers)


async def entra_token(request: web.Request) -> web.StreamResponse:
    """Entra's ``POST /{tenant}/oauth2/v2.0/token`` (client credentials with a federated assertion)."""
    state = request.app[STATE_KEY]
    tenant_id = request.match_info["tenant"]
    state.entra.requests[tenant_id] += 1
    correlation_id = request.headers.get("client-request-id") or str(uuid.uuid4())
    faulty = await _token_endpoint_fault(request, state, "entra", correlation_id)
    if faulty is not None:
        return faulty
    try:
        status, body = 200, answer_token_request(state, tenant_id, await request.post())
    except EntraError as exc:
        status, body = exc.status, exc.body(correlation_id)
    return _entra_response(status, body, correlation_id)


async def entra_openid_configuration(request: web.Request) -> web.StreamResponse:
    """``GET /{tenant}/v2.0/.well-known/openid-configuration``, what MSAL reads before its first token request."""
    state = request.app[STATE_KEY]
    tenant_id = request.match_info["tenant"]
    correlation_id = request.headers.get("client-request-id") or str(uuid.uuid4())
    if tenant_id not in state.tenants:
        return _entra_response(400, unknown_tenant(tenant_id, "invalid_tenant").body(correlation_id), correlation_id)
    return _entra_response(200, openid_configuration(f"{request.scheme}://{request.host}", tenant_id), correlation_id)


def _entra_response(status: int, body: dict[str, Any], correlation_id: str) -> web.Response:
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Cache-Control": "no-store, no-cache",
        "client-request-id": correlation_id,
    }
    return web.Response(status=status, body=dumps(body), headers=headers)


def create_app(state: SandboxState) -> web.Application:
    """The sandbox as an aiohttp application (no middleware: every layer costs throughput)."""
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[STATE_KEY] = state
    app.router.add_route("*", GRAPH_PREFIX + "/{tail:.*}", graph_entry)
    app.router.add_get("/msi/token", msi_token)
    app.router.add_post("/{tenant}/oauth2/v2.0/token", entra_token)
    app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", entra_openid_configuration)
    admin_api.add_routes(app, STATE_KEY)
    return app
