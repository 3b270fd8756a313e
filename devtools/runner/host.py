"""The :class:`Runner`: one app's functions run in-process with the host's lifecycle.

Start: index the app once, listen for HTTP triggers, start one listener per queue trigger, then print the host's
"Functions:" list. Stop, as the host shuts down: no new requests or polls, wait for the invocations in flight for a
grace period, then cancel the rest (their messages become visible again at once). ``drain`` waits until every
trigger queue is empty and nothing runs, for ``--once`` and for tests. The parts it composes: the HTTP front
(:mod:`devtools.runner.http`), queue listeners and outputs (:mod:`devtools.runner.queues`), invocations
(:mod:`devtools.runner.invocation`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devtools.runner.config import (
    MIN_POLLING_INTERVAL,
    AppSettings,
    HostConfig,
    resolve_connection_string,
)
from devtools.runner.http import HttpFront
from devtools.runner.indexing import FunctionSpec, runnable_functions
from devtools.runner.invocation import Invoker, worker_threads
from devtools.runner.queues import LEASE_SECONDS, QueueListener, QueueOutputs, QueueStorage

log = logging.getLogger("devtools.runner")

DEFAULT_HTTP_PORT = 7071


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
        self.config = HostConfig.resolve(host_config, self.app_dir)
        self.settings: Mapping[str, str] = AppSettings(settings)
        self.enable_http = http
        self.enable_queues = queues
        self.lease_seconds = lease_seconds
        self.shutdown_timeout = shutdown_timeout
        self.min_polling_interval = min_polling_interval
        self._thread_pool_size = worker_threads(thread_pool_size)

        self.functions: list[FunctionSpec] = []
        self.skipped: dict[str, str] = {}
        self.stats: collections.Counter[tuple[str, str]] = collections.Counter()
        self._storage = QueueStorage()
        self._invoker: Invoker | None = None
        self._http: HttpFront | None = None
        self._listeners: list[QueueListener] = []
        self._pollers: list[asyncio.Task[None]] = []
        self._started = False
        self._stopped = False

    @property
    def http_url(self) -> str:
        if self.http_port is None:
            raise RuntimeError("the HTTP server is not running (call start() with http=True)")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.http_port}"

    @property
    def http_port(self) -> int | None:
        return self._http.port if self._http is not None else None

    async def __aenter__(self) -> Runner:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("Runner.start() called twice")
        self._started = True
        self.functions, self.skipped = runnable_functions(self.app, self.settings)
        outputs = QueueOutputs(self._storage, self.settings, self.config.queues.message_encoding)
        self._invoker = Invoker(
            function_timeout=self.config.function_timeout,
            send_outputs=outputs.send,
            stats=self.stats,
            thread_pool_size=self._thread_pool_size,
        )
        try:
            if self.enable_http:
                await self._start_http(self._invoker)
            if self.enable_queues:
                self._start_listeners(self._invoker)
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
        for listener in self._listeners:
            listener.stop()
        if self._http is not None:
            await self._http.stop()  # stops listening, waits for running handlers
        await self._stop_listeners(grace)
        await self._storage.close()
        if self._invoker is not None:
            self._invoker.close()
        log.info("runner stopped")

    async def drain(self, interval: float = 0.1) -> None:
        """Wait until every trigger queue is empty (visible or not) and nothing is in flight.

        Bound it with ``asyncio.timeout(...)``. Messages waiting out a visibilityTimeout count as not empty.
        """
        quiet = 0
        while True:
            busy = bool(self._in_flight()) or await self._any_messages()
            quiet = 0 if busy else quiet + 1
            if quiet >= 2:
                return
            await asyncio.sleep(interval)

    async def _start_http(self, invoker: Invoker) -> None:
        self._http = HttpFront(
            self.functions,
            route_prefix=self.config.route_prefix,
            function_key=self.function_key,
            invoker=invoker,
            shutdown_timeout=self.shutdown_timeout,
        )
        await self._http.start(self.host, self.port)

    def _start_listeners(self, invoker: Invoker) -> None:
        for spec in self.functions:
            if spec.trigger_type != "queueTrigger":
                continue
            listener = QueueListener(
                spec,
                resolve_connection_string(spec.connection, self.settings),
                storage=self._storage,
                invoker=invoker,
                options=self.config.queues,
                lease_seconds=self.lease_seconds,
                min_polling_interval=self.min_polling_interval,
            )
            self._listeners.append(listener)
            self._pollers.append(asyncio.create_task(listener.run(), name=f"poll:{spec.name}"))

    async def _stop_listeners(self, grace: float) -> None:
        if not self._pollers:
            return
        _, pending = await asyncio.wait(self._pollers, timeout=grace)
        if pending:
            in_flight = self._in_flight()
            log.warning("stop: %d invocation(s) still running after %ss: cancelling", len(in_flight), grace)
            for task in [*in_flight, *pending]:
                task.cancel()
            await asyncio.gather(*pending, *in_flight, return_exceptions=True)

    def _in_flight(self) -> list[asyncio.Task[None]]:
        return [task for listener in self._listeners for task in listener.in_flight]

    async def _any_messages(self) -> bool:
        for listener in self._listeners:
            if await listener.has_messages():
                return True
        return False

    def _log_functions(self) -> None:
        lines = []
        for spec in self.functions:
            if spec.trigger_type == "httpTrigger" and self.http_port is not None:
                assert spec.route is not None
                methods = ",".join(sorted(spec.methods)) if spec.methods else "*"
                prefix = f"/{self.config.route_prefix}" if self.config.route_prefix else ""
                lines.append(f"  {spec.name}: [{methods}] {self.http_url}{prefix}/{spec.route.template}")
            elif spec.trigger_type == "queueTrigger" and self.enable_queues:
                lines.append(f"  {spec.name}: queueTrigger ({spec.queue_name})")
        log.info("Functions:\n%s", "\n".join(lines) if lines else "  (none)")
