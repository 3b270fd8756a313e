"""The HTTP front: requests to HTTP triggers served as the Functions host serves them.

``http://HOST:PORT/{routePrefix}/{route}`` (see :mod:`devtools.runner.routes`); of the functions whose route
matches, the first by route precedence whose methods allow the request runs, else 405 with ``Allow``, and 404 when
no route matches. Function keys (``?code=`` or ``x-functions-key``) are checked only when the runner has a key, as
``func start`` checks none locally. The function gets a body only with a Content-Length above 0 (a chunked request
reaches it empty, azure-functions-host#4926), repeated headers joined with ", " and repeated query parameters with
","; it answers 500 when it raises or returns what the host cannot send. ``/admin/host/status`` answers Running, so
that tools waiting for a host see this one start.
"""

from __future__ import annotations

import hmac
import logging
import socket
from collections.abc import Iterable
from typing import Any

import azure.functions as func
from aiohttp import web
from multidict import CIMultiDict

from devtools.runner.config import RunnerError
from devtools.runner.indexing import FunctionSpec
from devtools.runner.invocation import Invoker

log = logging.getLogger("devtools.runner")

MAX_REQUEST_BODY = 100 * 1024 * 1024  # the host's default maxRequestBodySize (~100 MB)


class HttpFront:
    """Serves the HTTP-triggered ``functions`` on one port, invoking them with ``invoker``."""

    def __init__(
        self,
        functions: Iterable[FunctionSpec],
        *,
        route_prefix: str,
        function_key: str | None,
        invoker: Invoker,
        shutdown_timeout: float,
    ) -> None:
        self._functions = sorted(
            (s for s in functions if s.trigger_type == "httpTrigger"),
            key=lambda s: s.route.precedence if s.route else (),
        )
        self._prefix = f"/{route_prefix}" if route_prefix else ""
        self._function_key = function_key
        self._invoker = invoker
        self._shutdown_timeout = shutdown_timeout
        self._web_runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self, host: str, port: int) -> None:
        """Listens on ``host:port`` (0: a free port, then in :attr:`port`); RunnerError when it cannot."""
        application = web.Application(client_max_size=MAX_REQUEST_BODY)
        application.router.add_route("*", "/{tail:.*}", self._handle)
        self._web_runner = web.AppRunner(
            application, access_log=None, handle_signals=False, shutdown_timeout=self._shutdown_timeout
        )
        await self._web_runner.setup()
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise RunnerError(f"cannot listen on {host}:{port}: {exc}") from exc
        await web.SockSite(self._web_runner, sock).start()
        self.port = sock.getsockname()[1]

    async def stop(self) -> None:
        """Stops listening and waits for the requests being handled."""
        if self._web_runner is not None:
            await self._web_runner.cleanup()
            self._web_runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.rel_url.raw_path.rstrip("/").lower() == "/admin/host/status":
            return web.json_response({"state": "Running", "runner": "devtools.runner"})
        path = self._route_path(request.rel_url.raw_path)
        if path is None:
            return web.Response(status=404)
        allowed: set[str] = set()
        for spec in self._functions:
            assert spec.route is not None
            route_params = spec.route.match(path)
            if route_params is None:
                continue
            if spec.methods is not None and request.method.upper() not in spec.methods:
                allowed.update(spec.methods)
                continue
            return await self._serve(spec, request, route_params)
        if allowed:
            return web.Response(status=405, headers={"Allow": ", ".join(sorted(allowed))})
        return web.Response(status=404)

    def _route_path(self, path: str) -> str | None:
        """The raw path below the route prefix, without slashes at either end; None when outside the prefix."""
        if self._prefix:
            if path.lower() != self._prefix.lower() and not path.lower().startswith(self._prefix.lower() + "/"):
                return None
            path = path[len(self._prefix) :]
        return path.strip("/")

    def _authorized(self, spec: FunctionSpec, request: web.Request) -> bool:
        if spec.auth_level == "ANONYMOUS" or self._function_key is None:
            return True
        given = request.query.get("code") or request.headers.get("x-functions-key") or ""
        return hmac.compare_digest(given.encode(), self._function_key.encode())

    async def _serve(
        self, spec: FunctionSpec, request: web.Request, route_params: dict[str, str]
    ) -> web.StreamResponse:
        if not self._authorized(spec, request):
            return web.Response(status=401)
        ok, result = await self._invoker.invoke(spec, await function_request(request, route_params), "HTTP request")
        if not ok:
            return web.Response(status=500)
        try:
            return to_web_response(result)
        except NotImplementedError as exc:
            log.error("Functions.%s: %s", spec.name, exc)
            return web.Response(status=500)


async def function_request(request: web.Request, route_params: dict[str, str]) -> func.HttpRequest:
    """The ``func.HttpRequest`` the worker passes for ``request``."""
    # The host passes a body only with a Content-Length above 0 (azure-functions-host#4926): a chunked request
    # reaches the function empty, its headers intact.
    body = await request.read() if (request.content_length or 0) > 0 else b""
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    params: dict[str, str] = {}
    for name, value in request.query.items():
        params[name] = f"{params[name]},{value}" if name in params else value
    return func.HttpRequest(
        method=request.method,
        url=str(request.url),
        headers=headers,
        params=params,
        route_params=route_params,
        body=body,
    )


def to_web_response(result: Any) -> web.Response:
    """The response the host sends for what an HTTP function returned (NotImplementedError when it cannot)."""
    if result is None:
        return web.Response(status=204)
    if isinstance(result, str):
        return web.Response(status=200, body=result.encode("utf-8"), content_type="text/plain", charset="utf-8")
    if not isinstance(result, func.HttpResponse):
        raise NotImplementedError(f"unsupported HTTP return type {type(result).__name__} (return func.HttpResponse)")
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in result.headers.items():
        if name.lower() in ("content-length", "transfer-encoding"):
            continue
        if name.lower() == "set-cookie" and hasattr(result.headers, "get_all"):
            for cookie in result.headers.get_all(name):
                headers.add(name, cookie)
            continue
        headers[name] = value
    if "content-type" not in headers:
        mimetype = result.mimetype or "text/plain"
        headers["Content-Type"] = f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
    return web.Response(status=int(result.status_code), headers=headers, body=result.get_body() or b"")
