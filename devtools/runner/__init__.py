"""Local runner: drives a Python v2-model ``function_app.app`` the way the Azure Functions host does.

Azure Functions Core Tools cannot be installed everywhere this project is developed, so this runner
stands in for ``func start`` in local runs, tests and benchmarks. It uses only the public
introspection of the ``azure-functions`` library and mirrors the host where it matters:

* HTTP triggers on ``http://HOST:PORT/{routePrefix}/{route}`` (route templates with ``{name}``,
  ``{name?}``, ``{name=default}``, ``{name:constraint}``, ``{*rest}``), trigger methods (405 otherwise),
  function keys (``?code=`` / ``x-functions-key``; enforced only when a key is configured, like
  ``func start``, which does not enforce keys locally), 500 when the function raises; a body only
  with a Content-Length (a chunked request arrives empty).
* Queue triggers polled from Azure Storage / Azurite with ``host.json``'s ``extensions.queues``:
  batchSize, newBatchThreshold, maxPollingInterval back-off, visibilityTimeout, maxDequeueCount with
  ``<queue>-poison``, messageEncoding; a 10-minute lease renewed while an invocation runs. The
  ``QueueMessage`` is built from the trigger metadata the host sends, which a JSON message's
  top-level properties overwrite (``"id"`` becomes ``msg.id``).
* ``queue`` output bindings flushed after the function returns normally (nothing when it raises); a
  string that looks like JSON is rewritten as the host's Json.NET writes it (indented, dates
  reformatted, an array split into one message per element).
* ``def`` functions in a thread pool, ``async def`` functions on the runner's loop, ``functionTimeout``.

CLI: ``python -m devtools.runner --help``. Python API: :class:`Runner`, :func:`load_app`.
If Azure Functions Core Tools (``func``) is on PATH the CLI runs ``func start`` instead, unless
``--runner`` forces this runner.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import contextvars
import functools
import hmac
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import azure.functions as func
from aiohttp import web
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue.aio import QueueClient, QueueServiceClient
from multidict import CIMultiDict

from devtools.runner.config import (
    MIN_POLLING_INTERVAL,
    AppSettings,
    HostConfig,
    QueueOptions,
    RunnerError,
    expand_connection_string,
    load_local_settings,
    parse_timespan,
    resolve_binding_expression,
    resolve_connection_string,
)
from devtools.runner.indexing import (
    DEFAULT_APP,
    FunctionSpec,
    QueueOutputSpec,
    UnsupportedFunction,
    build_spec,
    index_functions,
    load_app,
)
from devtools.runner.messages import (
    bind_queue_trigger,
    decode_queue_body,
    encode_queue_values,
    host_queue_texts,
    message_properties,
    queue_trigger_metadata,
)
from devtools.runner.routes import RouteTemplate

log = logging.getLogger("devtools.runner")

DEFAULT_HTTP_PORT = 7071
FUNCTION_KEY_ENV = "CONNECTOR_RUNNER_FUNCTION_KEY"
LEASE_SECONDS = 600.0  # the host hides a message for 10 minutes while it is processed, renewing it
MAX_REQUEST_BODY = 100 * 1024 * 1024  # the host's default maxRequestBodySize (~100 MB)

__all__ = [
    "DEFAULT_APP",
    "AppSettings",
    "FunctionSpec",
    "HostConfig",
    "QueueOptions",
    "QueueOutputSpec",
    "RouteTemplate",
    "RunnerError",
    "UnsupportedFunction",
    "build_spec",
    "decode_queue_body",
    "encode_queue_values",
    "expand_connection_string",
    "host_queue_texts",
    "index_functions",
    "load_app",
    "load_local_settings",
    "message_properties",
    "parse_timespan",
    "queue_trigger_metadata",
    "resolve_binding_expression",
]



# ==================================================================================================
# Binding objects passed to functions
# ==================================================================================================


class OutBinding(func.Out):
    """What the worker passes for an output binding parameter."""

    def __init__(self) -> None:
        self._value: Any = None
        self.is_set = False

    def set(self, val: Any) -> None:
        self._value = val
        self.is_set = True

    def get(self) -> Any:
        return self._value


class _TraceContext:
    def __init__(self) -> None:
        self._parent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00"

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext:
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> Any:
        return None


class InvocationContext(func.Context):
    """The ``context`` argument (passed when a function declares a parameter named ``context``)."""

    _thread_local = threading.local

    def __init__(self, invocation_id: str, function_name: str, function_directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace = _TraceContext()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        return self._thread_local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> Any:
        return self._trace

    @property
    def retry_context(self) -> Any:
        return _RetryContext()


# ==================================================================================================


# ==================================================================================================
# Storage
# ==================================================================================================


class _Storage:
    """Async queue clients shared by pollers and output bindings (one service client per account)."""

    def __init__(self) -> None:
        self._services: dict[str, QueueServiceClient] = {}
        self._queues: dict[tuple[str, str], QueueClient] = {}
        self._existing: set[str] = set()
        self._session: aiohttp.ClientSession | None = None

    def _transport(self) -> Any:
        """One aiohttp session for every queue client, without `trust_env` (which reads ~/.netrc on every request,
        about a millisecond of CPU each): the host's own polling costs the app's process nothing in Azure, so the
        runner keeps its share small."""
        from azure.core.pipeline.transport import AioHttpTransport

        if self._session is None:
            self._session = aiohttp.ClientSession(
                trust_env=False, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
            )
        return AioHttpTransport(session=self._session, session_owner=False)

    def queue(self, connection_string: str, queue_name: str) -> QueueClient:
        key = (connection_string, queue_name)
        client = self._queues.get(key)
        if client is None:
            service = self._services.get(connection_string)
            if service is None:
                service = QueueServiceClient.from_connection_string(connection_string, transport=self._transport())
                self._services[connection_string] = service
            client = service.get_queue_client(queue_name)
            self._queues[key] = client
        return client

    @staticmethod
    def key(client: QueueClient) -> str:
        return client.url.rstrip("/").lower()

    async def send(self, client: QueueClient, text: str) -> None:
        """Send one message, creating the queue when it does not exist (as the host's output binding does)."""
        try:
            await client.send_message(text)
        except ResourceNotFoundError:
            await self.ensure_queue(client)
            await client.send_message(text)
        self._existing.add(self.key(client))

    async def ensure_queue(self, client: QueueClient) -> None:
        if self.key(client) in self._existing:
            return
        with contextlib.suppress(ResourceExistsError):
            await client.create_queue()
        self._existing.add(self.key(client))

    async def close(self) -> None:
        for service in self._services.values():
            with contextlib.suppress(Exception):
                await service.close()
        self._services.clear()
        self._queues.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None


class _Lease:
    """A received message's current pop receipt, renewed while the invocation runs."""

    def __init__(self, pop_receipt: str) -> None:
        self.pop_receipt = pop_receipt
        self.lock = asyncio.Lock()
        self.closed = False


# ==================================================================================================
# Runner
# ==================================================================================================


class Runner:
    """Runs an app's HTTP and queue triggers in-process.

    >>> runner = Runner(load_app("function_app:app", "."), port=0)
    >>> await runner.start(); print(runner.http_url); ...; await runner.stop()

    ``host_config`` is a HostConfig, a host.json dict or a path (default ``app_dir/host.json``).
    ``settings`` are app settings that take precedence over ``os.environ`` for the runner's own look-ups
    (connection strings, ``%expressions%``, ``AzureWebJobs.<name>.Disabled``); the app itself still sees
    ``os.environ`` only.
    ``stats`` counts ``(function, event)`` with events succeeded, failed, empty_polls, lease_renewed.
    ``min_polling_interval`` is the first idle back-off step (the host's 100 ms).
    """

    def __init__(
        self,
        app: Any,
        *,
        app_dir: Path | str | None = None,
        host: str = "127.0.0.1",
        port: int = DEFAULT_HTTP_PORT,
        function_key: str | None = None,
        host_config: HostConfig | Mapping[str, Any] | Path | str | None = None,
        settings: Mapping[str, str] | None = None,
        http: bool = True,
        queues: bool = True,
        lease_seconds: float = LEASE_SECONDS,
        thread_pool_size: int | None = None,
        shutdown_timeout: float = 30.0,
        min_polling_interval: float = MIN_POLLING_INTERVAL,
    ) -> None:
        self.app = app
        self.app_dir = Path(app_dir or Path.cwd()).resolve()
        self.host = host
        self.port = port
        self.function_key = function_key or None
        if isinstance(host_config, HostConfig):
            self.config = host_config
        elif isinstance(host_config, Mapping):
            self.config = HostConfig.from_json(host_config)
        else:
            self.config = HostConfig.load(Path(host_config) if host_config else self.app_dir / "host.json")
        self.settings: Mapping[str, str] = AppSettings(settings)
        self.enable_http = http
        self.enable_queues = queues
        self.lease_seconds = lease_seconds
        self.shutdown_timeout = shutdown_timeout
        self.min_polling_interval = min_polling_interval
        if thread_pool_size is None and os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "").isdigit():
            thread_pool_size = int(os.environ["PYTHON_THREADPOOL_THREAD_COUNT"]) or None
        self._thread_pool_size = thread_pool_size

        self.functions: list[FunctionSpec] = []
        self.skipped: dict[str, str] = {}
        self.stats: collections.Counter[tuple[str, str]] = collections.Counter()
        self._http_functions: list[FunctionSpec] = []
        self._executor: ThreadPoolExecutor | None = None
        self._storage = _Storage()
        self._web_runner: web.AppRunner | None = None
        self._bound_port: int | None = None
        self._stopping = asyncio.Event()
        self._kicks: dict[str, list[asyncio.Event]] = collections.defaultdict(list)
        self._pollers: list[asyncio.Task[None]] = []
        self._poll_errors: dict[str, int] = {}
        self._inflight: set[asyncio.Task[Any]] = set()
        self._trigger_clients: list[QueueClient] = []
        self._started = False
        self._stopped = False

    # ---------------------------------------------------------------------------------------------
    # lifecycle
    # ---------------------------------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        if self._bound_port is None:
            raise RuntimeError("the HTTP server is not running (call start() with http=True)")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._bound_port}"

    @property
    def http_port(self) -> int | None:
        return self._bound_port

    async def __aenter__(self) -> Runner:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("Runner.start() called twice")
        self._started = True
        self._index()
        self._executor = ThreadPoolExecutor(max_workers=self._thread_pool_size, thread_name_prefix="func-worker")
        try:
            if self.enable_http:
                await self._start_http()
            if self.enable_queues:
                for spec in self.functions:
                    if spec.trigger_type == "queueTrigger":
                        connection = resolve_connection_string(spec.connection, self.settings)
                        client = self._storage.queue(connection, spec.queue_name)
                        poison = self._storage.queue(connection, f"{spec.queue_name}-poison")
                        self._trigger_clients.append(client)
                        kick = asyncio.Event()
                        self._kicks[_Storage.key(client)].append(kick)
                        self._pollers.append(
                            asyncio.create_task(self._poll(spec, client, poison, kick), name=f"poll:{spec.name}")
                        )
        except BaseException:
            await self.stop()
            raise
        self._log_functions()

    async def stop(self, grace: float | None = None) -> None:
        """Stop gracefully: no new polls or requests, wait for in-flight invocations.

        Invocations still running after ``grace`` seconds (default ``shutdown_timeout``) are cancelled and their
        messages made visible again.
        """
        grace = self.shutdown_timeout if grace is None else grace
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        self._stopping.set()
        for kicks in self._kicks.values():
            for kick in kicks:
                kick.set()
        if self._web_runner is not None:
            await self._web_runner.cleanup()  # stops listening, waits for running handlers
            self._web_runner = None
        if self._pollers:
            _, pending = await asyncio.wait(self._pollers, timeout=grace)
            if pending:
                log.warning("stop: %d invocation(s) still running after %ss: cancelling", len(self._inflight), grace)
                for task in [*self._inflight, *pending]:
                    task.cancel()
                await asyncio.gather(*pending, *self._inflight, return_exceptions=True)
        await self._storage.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        log.info("runner stopped")

    async def drain(self, interval: float = 0.1) -> None:
        """Wait until every trigger queue is empty (visible or not) and nothing is in flight.

        Bound it with ``asyncio.timeout(...)``. Messages waiting out a visibilityTimeout count as not empty.
        """
        quiet = 0
        while True:
            busy = bool(self._inflight)
            if not busy:
                for client in self._trigger_clients:
                    try:
                        props = await client.get_queue_properties()
                    except ResourceNotFoundError:
                        continue
                    if props.approximate_message_count:
                        busy = True
                        break
            quiet = 0 if busy else quiet + 1
            if quiet >= 2:
                return
            await asyncio.sleep(interval)

    def _index(self) -> None:
        for function in index_functions(self.app):
            name = function.get_function_name()
            disabled = self.settings.get(f"AzureWebJobs.{name}.Disabled", "").lower() in ("true", "1")
            if disabled:
                self.skipped[name] = "disabled by AzureWebJobs.<name>.Disabled"
                log.info("function %s is disabled", name)
                continue
            try:
                spec = build_spec(function, self.settings)
            except UnsupportedFunction as exc:
                self.skipped[name] = str(exc)
                log.warning("skipping %s", exc)
                continue
            self.functions.append(spec)
        self._http_functions = sorted(
            (s for s in self.functions if s.trigger_type == "httpTrigger"),
            key=lambda s: s.route.precedence if s.route else (),
        )

    def _log_functions(self) -> None:
        lines = []
        for spec in self.functions:
            if spec.trigger_type == "httpTrigger" and self._bound_port is not None:
                assert spec.route is not None
                methods = ",".join(sorted(spec.methods)) if spec.methods else "*"
                prefix = f"/{self.config.route_prefix}" if self.config.route_prefix else ""
                lines.append(f"  {spec.name}: [{methods}] {self.http_url}{prefix}/{spec.route.template}")
            elif spec.trigger_type == "queueTrigger" and self.enable_queues:
                lines.append(f"  {spec.name}: queueTrigger ({spec.queue_name})")
        log.info("Functions:\n%s", "\n".join(lines) if lines else "  (none)")

    # ---------------------------------------------------------------------------------------------
    # invocation
    # ---------------------------------------------------------------------------------------------
    async def _invoke(self, spec: FunctionSpec, trigger_value: Any, reason: str) -> tuple[bool, Any]:
        """Run the function and flush its queue outputs. Returns (succeeded, return value)."""
        invocation_id = str(uuid.uuid4())
        outs = {o.name: OutBinding() for o in spec.queue_outputs if o.name != "$return"}
        kwargs: dict[str, Any] = {spec.trigger_name: trigger_value, **outs}
        if spec.wants_context:
            kwargs["context"] = InvocationContext(invocation_id, spec.name, spec.directory)
        log.debug("Executing 'Functions.%s' (Reason='%s', Id=%s)", spec.name, reason, invocation_id)
        started = time.perf_counter()
        timeout = self.config.function_timeout
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                result = await self._call(spec, kwargs)
            await self._flush(spec, outs, result)
        except TimeoutError:
            self._finish(spec, invocation_id, started, ok=False)
            if not deadline.expired():  # the function's own TimeoutError
                log.exception("Executed 'Functions.%s' (Failed, Id=%s)", spec.name, invocation_id)
                return False, None
            log.error(
                "Timeout value of %s exceeded by function 'Functions.%s' (Id: %s)%s",
                _format_seconds(timeout),
                spec.name,
                invocation_id,
                "" if spec.is_async else ": its worker thread keeps running",
            )
            return False, None
        except Exception:
            self._finish(spec, invocation_id, started, ok=False)
            log.exception("Executed 'Functions.%s' (Failed, Id=%s)", spec.name, invocation_id)
            return False, None
        self._finish(spec, invocation_id, started, ok=True)
        return True, result

    async def _call(self, spec: FunctionSpec, kwargs: dict[str, Any]) -> Any:
        if spec.is_async:
            return await spec.fn(**kwargs)
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, spec.fn, **kwargs)
        return await loop.run_in_executor(self._executor, call)

    def _finish(self, spec: FunctionSpec, invocation_id: str, started: float, *, ok: bool) -> None:
        self.stats[(spec.name, "succeeded" if ok else "failed")] += 1
        if ok:
            duration = (time.perf_counter() - started) * 1000
            log.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%.0fms)", spec.name, invocation_id, duration)

    async def _flush(self, spec: FunctionSpec, outs: Mapping[str, OutBinding], result: Any) -> None:
        encoding = self.config.queues.message_encoding
        pending: list[tuple[QueueClient, list[str]]] = []
        # Convert everything first, so a bad value sends nothing rather than part of the output.
        for output in spec.queue_outputs:
            value = result if output.name == "$return" else outs[output.name].get()
            texts = encode_queue_values(value, encoding)
            if texts:
                connection = resolve_connection_string(output.connection, self.settings)
                pending.append((self._storage.queue(connection, output.queue_name), texts))
        for client, texts in pending:
            for text in texts:
                await self._storage.send(client, text)
            for kick in self._kicks.get(_Storage.key(client), ()):  # a local listener polls at once
                kick.set()

    # ---------------------------------------------------------------------------------------------
    # HTTP
    # ---------------------------------------------------------------------------------------------
    async def _start_http(self) -> None:
        application = web.Application(client_max_size=MAX_REQUEST_BODY)
        application.router.add_route("*", "/{tail:.*}", self._handle_http)
        self._web_runner = web.AppRunner(
            application, access_log=None, handle_signals=False, shutdown_timeout=self.shutdown_timeout
        )
        await self._web_runner.setup()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise RunnerError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        site = web.SockSite(self._web_runner, sock)
        await site.start()
        self._bound_port = sock.getsockname()[1]

    async def _handle_http(self, request: web.Request) -> web.StreamResponse:
        path = request.rel_url.raw_path
        if path.rstrip("/").lower() == "/admin/host/status":
            return web.json_response({"state": "Running", "runner": "devtools.runner"})
        prefix = f"/{self.config.route_prefix}" if self.config.route_prefix else ""
        if prefix:
            if path.lower() != prefix.lower() and not path.lower().startswith(prefix.lower() + "/"):
                return web.Response(status=404)
            path = path[len(prefix) :]
        path = path.strip("/")
        allowed: set[str] = set()
        for spec in self._http_functions:
            assert spec.route is not None
            route_params = spec.route.match(path)
            if route_params is None:
                continue
            if spec.methods is not None and request.method.upper() not in spec.methods:
                allowed.update(spec.methods)
                continue
            return await self._serve_http(spec, request, route_params)
        if allowed:
            return web.Response(status=405, headers={"Allow": ", ".join(sorted(allowed))})
        return web.Response(status=404)

    def _authorized(self, spec: FunctionSpec, request: web.Request) -> bool:
        if spec.auth_level == "ANONYMOUS" or self.function_key is None:
            return True
        given = request.query.get("code") or request.headers.get("x-functions-key") or ""
        return hmac.compare_digest(given.encode(), self.function_key.encode())

    async def _serve_http(
        self, spec: FunctionSpec, request: web.Request, route_params: dict[str, str]
    ) -> web.StreamResponse:
        if not self._authorized(spec, request):
            return web.Response(status=401)
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
        http_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=headers,
            params=params,
            route_params=route_params,
            body=body,
        )
        ok, result = await self._invoke(spec, http_request, reason="HTTP request")
        if not ok:
            return web.Response(status=500)
        try:
            return _to_web_response(result)
        except NotImplementedError as exc:
            log.error("Functions.%s: %s", spec.name, exc)
            return web.Response(status=500)

    # ---------------------------------------------------------------------------------------------
    # Queues
    # ---------------------------------------------------------------------------------------------
    async def _poll(self, spec: FunctionSpec, client: QueueClient, poison: QueueClient, kick: asyncio.Event) -> None:
        options = self.config.queues
        delay = min(self.min_polling_interval, options.max_polling_interval)
        tasks: set[asyncio.Task[None]] = set()
        try:
            while not self._stopping.is_set():
                # Fetch a new batch only when at most newBatchThreshold messages are still in flight.
                while len(tasks) > options.new_batch_threshold and not self._stopping.is_set():
                    kick.clear()
                    waiter = asyncio.create_task(kick.wait())
                    try:
                        await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        waiter.cancel()
                if self._stopping.is_set():
                    break
                kick.clear()
                messages = await self._receive(spec, client, options.batch_size)
                if messages:
                    delay = min(self.min_polling_interval, options.max_polling_interval)
                    for message in messages:
                        task = asyncio.create_task(
                            self._process(spec, client, poison, message), name=f"{spec.name}:{message.id}"
                        )
                        tasks.add(task)
                        self._inflight.add(task)
                        task.add_done_callback(tasks.discard)
                        task.add_done_callback(self._inflight.discard)
                    continue
                self.stats[(spec.name, "empty_polls")] += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(kick.wait(), delay)
                delay = min(delay * 2, options.max_polling_interval)
        finally:
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _receive(self, spec: FunctionSpec, client: QueueClient, count: int) -> list[Any]:
        try:
            pages = client.receive_messages(
                messages_per_page=count, visibility_timeout=int(self.lease_seconds)
            ).by_page()
            try:
                page = await pages.__anext__()
            except StopAsyncIteration:
                return []
            messages = [m async for m in page]
        except ResourceNotFoundError:
            self._note_poll_error(spec, f"queue {spec.queue_name!r} does not exist (yet)", logging.INFO)
            return []
        except Exception as exc:
            self._note_poll_error(spec, f"polling {spec.queue_name!r} failed: {exc}", logging.WARNING)
            return []
        self._poll_errors.pop(spec.name, None)
        return messages

    def _note_poll_error(self, spec: FunctionSpec, message: str, level: int) -> None:
        count = self._poll_errors.get(spec.name, 0)
        self._poll_errors[spec.name] = count + 1
        if count == 0:  # once per streak, not on every back-off tick
            log.log(level, "%s: %s", spec.name, message)

    async def _process(self, spec: FunctionSpec, client: QueueClient, poison: QueueClient, message: Any) -> None:
        options = self.config.queues
        lease = _Lease(message.pop_receipt)
        renewer = asyncio.create_task(self._renew(spec.name, client, message.id, lease))
        try:
            try:
                body = decode_queue_body(message.content, options.message_encoding)
            except ValueError as exc:
                log.error(
                    "Functions.%s: message %s cannot be decoded as %s (%s): moving it to '%s-poison'",
                    spec.name, message.id, options.message_encoding, exc, spec.queue_name,
                )  # fmt: skip
                await self._close_lease(lease, renewer)
                await self._to_poison(client, poison, message, lease)
                return
            try:
                trigger = bind_queue_trigger(spec, message, body)
            except Exception as exc:
                log.error("Executed 'Functions.%s' (Failed): binding message %s failed: %r", spec.name, message.id, exc)
                self.stats[(spec.name, "failed")] += 1
                ok = False
            else:
                ok, _ = await self._invoke(spec, trigger, reason="New queue message")
            await self._close_lease(lease, renewer)
            if ok:
                await client.delete_message(message.id, lease.pop_receipt)
            elif (message.dequeue_count or 0) >= options.max_dequeue_count:
                log.warning(
                    "Message %s has reached MaxDequeueCount of %d. Moving message to queue '%s-poison'.",
                    message.id, options.max_dequeue_count, spec.queue_name,
                )  # fmt: skip
                await self._to_poison(client, poison, message, lease)
            else:
                await client.update_message(
                    message.id, lease.pop_receipt, visibility_timeout=int(options.visibility_timeout)
                )
        except asyncio.CancelledError:
            # Shutting down mid-invocation: give the message back rather than waiting for the lease.
            await self._close_lease(lease, renewer)
            with contextlib.suppress(Exception):
                await asyncio.shield(client.update_message(message.id, lease.pop_receipt, visibility_timeout=0))
            raise
        except Exception:
            log.exception("Functions.%s: completing message %s failed", spec.name, message.id)
        finally:
            renewer.cancel()

    async def _to_poison(self, client: QueueClient, poison: QueueClient, message: Any, lease: _Lease) -> None:
        await self._storage.send(poison, message.content or "")  # the same body, as stored
        await client.delete_message(message.id, lease.pop_receipt)
        for kick in self._kicks.get(_Storage.key(poison), ()):
            kick.set()

    async def _renew(self, spec_name: str, client: QueueClient, message_id: str, lease: _Lease) -> None:
        interval = max(self.lease_seconds / 2, 0.5)
        while True:
            await asyncio.sleep(interval)
            async with lease.lock:
                if lease.closed:
                    return
                try:
                    receipt = await client.update_message(
                        message_id, lease.pop_receipt, visibility_timeout=int(self.lease_seconds)
                    )
                    lease.pop_receipt = receipt.pop_receipt
                    self.stats[(spec_name, "lease_renewed")] += 1
                except Exception as exc:
                    log.warning("renewing the lease of message %s failed: %s", message_id, exc)

    @staticmethod
    async def _close_lease(lease: _Lease, renewer: asyncio.Task[None]) -> None:
        async with lease.lock:
            lease.closed = True
        renewer.cancel()


def _to_web_response(result: Any) -> web.Response:
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


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    text = f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    if seconds != whole:
        text += f".{round((seconds - whole) * 1000):03d}"
    return text


# ==================================================================================================
# CLI
# ==================================================================================================


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s.%(msecs)03d %(levelname)-5s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # Azure SDK HTTP logging is one INFO line per request: too much next to a polling loop.
    logging.getLogger("azure").setLevel(logging.WARNING)


def _print_ready(http_url: str | None) -> None:
    sys.stdout.write(json.dumps({"http": http_url}) + "\n")
    sys.stdout.flush()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def run_func(func_path: str, *, app_dir: Path, host: str, port: int, extra: list[str]) -> int:
    """Run Azure Functions Core Tools' ``func start`` and print the ready line once it listens."""
    if port == 0:
        port = _free_port(host)
    command = [func_path, "start", "--port", str(port), *extra]
    log.info("Azure Functions Core Tools found: running %s (use --runner to force the local runner)", command)
    process = subprocess.Popen(command, cwd=app_dir)  # noqa: S603 - the user's func, no shell
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)

    for sig in previous:
        signal.signal(sig, forward)
    try:
        url_host = f"[{host}]" if ":" in host else host
        while process.poll() is None:
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    _print_ready(f"http://{url_host}:{port}")
                    break
            except OSError:
                time.sleep(0.2)
        return process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def _drain_with_timeout(runner: Runner, seconds: float | None) -> None:
    async with asyncio.timeout(seconds):
        await runner.drain()


async def _serve(runner: Runner, *, once: bool, once_timeout: float | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await runner.start()
    _print_ready(runner.http_url if runner.enable_http else None)
    code = 0
    try:
        if once:
            drain = asyncio.create_task(_drain_with_timeout(runner, once_timeout))
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait([drain, stopper], return_when="FIRST_COMPLETED")
            stopper.cancel()
            if drain.done():
                try:
                    drain.result()
                    log.info("--once: queues drained")
                except TimeoutError:
                    log.error("--once: queues not drained within %ss", once_timeout)
                    code = 1
            else:
                drain.cancel()
                code = 130
        else:
            await stop.wait()
            log.info("stopping (waiting for in-flight invocations)")
    finally:
        await runner.stop()
    failed = sum(v for (_, outcome), v in runner.stats.items() if outcome == "failed")
    if once and failed:
        log.info("--once: %d failed invocation(s)", failed)
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.runner",
        description="Run the Functions app locally (HTTP + queue triggers on Azurite), like `func start`.",
    )
    parser.add_argument("--app", default=DEFAULT_APP, help="module:attribute of the FunctionApp (default %(default)s)")
    parser.add_argument("--app-dir", type=Path, default=None, help="folder of the app, host.json (default: cwd)")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP listen address (default %(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="HTTP port; 0 = free port (default: local.settings.json Host.LocalHttpPort or 7071)",
    )
    parser.add_argument(
        "--settings", type=Path, default=None, help="local.settings.json path (default: APP_DIR/local.settings.json)"
    )
    parser.add_argument(
        "--function-key",
        default=None,
        help=f"require this key for FUNCTION/ADMIN-level routes (default: ${FUNCTION_KEY_ENV}; none = no check)",
    )
    parser.add_argument("--no-http", action="store_true", help="do not serve HTTP triggers")
    parser.add_argument("--no-queues", action="store_true", help="do not poll queue triggers")
    parser.add_argument(
        "--once", action="store_true", help="process the trigger queues until they are empty, then exit"
    )
    parser.add_argument("--timeout", type=float, default=None, help="with --once: give up after this many seconds")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--use-func", dest="mode", action="store_const", const="func", help="require Core Tools' `func start`"
    )
    mode.add_argument(
        "--runner",
        "--no-func",
        dest="mode",
        action="store_const",
        const="runner",
        help="use this runner even if `func` is installed",
    )
    parser.set_defaults(mode="auto")
    parser.add_argument("--log-level", default=os.environ.get("RUNNER_LOG_LEVEL", "INFO"), help="default %(default)s")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    app_dir = (args.app_dir or Path.cwd()).resolve()
    settings_path = args.settings or app_dir / "local.settings.json"

    func_path = shutil.which("func")
    if args.mode == "func" and not func_path:
        log.error("--use-func: Azure Functions Core Tools (`func`) is not on PATH")
        return 2
    use_func = func_path is not None and args.mode != "runner"
    if use_func and args.mode == "auto" and (args.once or args.app != DEFAULT_APP or args.no_http or args.no_queues):
        log.info("options for the local runner given: not using `func start`")
        use_func = False

    try:
        local = load_local_settings(settings_path)
        port = args.port
        if port is None:
            port = int((local.get("Host") or {}).get("LocalHttpPort") or DEFAULT_HTTP_PORT)
        if use_func:
            if args.function_key:
                log.warning("--function-key is ignored by `func start` (it does not check keys locally)")
            assert func_path is not None
            return run_func(func_path, app_dir=app_dir, host=args.host, port=port, extra=[])
        app = load_app(args.app, app_dir)
        runner = Runner(
            app,
            app_dir=app_dir,
            host=args.host,
            port=port,
            function_key=args.function_key or os.environ.get(FUNCTION_KEY_ENV) or None,
            http=not args.no_http,
            queues=not args.no_queues,
        )
        return asyncio.run(_serve(runner, once=args.once, once_timeout=args.timeout))
    except RunnerError as exc:
        log.error("%s", exc)
        return 2


