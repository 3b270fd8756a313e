"""Invoking one function as the host and the Python worker do.

The worker's calling convention: the trigger value under its parameter name, an :class:`OutBinding` per output
binding, an :class:`InvocationContext` when the function declares ``context``; ``def`` functions in a thread pool
(``PYTHON_THREADPOOL_THREAD_COUNT`` threads) with the caller's contextvars, ``async def`` functions on the runner's
event loop. The host's rules around a call: ``functionTimeout`` fails the invocation (a ``def`` function's thread
cannot be stopped and keeps running, as in the worker); outputs are sent only after the function returned normally,
nothing when it raised; the host's log lines ("Executed 'Functions.name' (Succeeded, Id=..., Duration=...ms)").

Imports neither aiohttp nor the storage SDK, so that the unit tier can call functions with :class:`OutBinding`:
the :class:`Invoker` is given what sends the outputs (see :mod:`devtools.runner.queues`).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import functools
import logging
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import azure.functions as func

from devtools.runner.config import format_timespan
from devtools.runner.indexing import FunctionSpec

log = logging.getLogger("devtools.runner")


class OutBinding(func.Out[Any]):
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


def worker_threads(given: int | None) -> int | None:
    """The size of the worker's thread pool: ``given``, else ``PYTHON_THREADPOOL_THREAD_COUNT``, else None (Python's
    default)."""
    if given is None and os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "").isdigit():
        return int(os.environ["PYTHON_THREADPOOL_THREAD_COUNT"]) or None
    return given


SendOutputs = Callable[[FunctionSpec, Mapping[str, OutBinding], Any], Awaitable[None]]


class Invoker:
    """Runs invocations, counted in ``stats`` as ``(function, "succeeded" | "failed")``."""

    def __init__(
        self,
        *,
        function_timeout: float | None,
        send_outputs: SendOutputs,
        stats: collections.Counter[tuple[str, str]],
        thread_pool_size: int | None,
    ) -> None:
        self.function_timeout = function_timeout
        self.stats = stats
        self._send_outputs = send_outputs
        self._executor = ThreadPoolExecutor(max_workers=thread_pool_size, thread_name_prefix="func-worker")

    async def invoke(self, spec: FunctionSpec, trigger_value: Any, reason: str) -> tuple[bool, Any]:
        """Run the function and send its outputs. Returns (succeeded, return value)."""
        invocation_id = str(uuid.uuid4())
        outs = {o.name: OutBinding() for o in spec.queue_outputs if o.name != "$return"}
        kwargs: dict[str, Any] = {spec.trigger_name: trigger_value, **outs}
        if spec.wants_context:
            kwargs["context"] = InvocationContext(invocation_id, spec.name, spec.directory)
        log.debug("Executing 'Functions.%s' (Reason='%s', Id=%s)", spec.name, reason, invocation_id)
        started = time.perf_counter()
        deadline = asyncio.timeout(self.function_timeout)
        try:
            async with deadline:
                result = await self._call(spec, kwargs)
            await self._send_outputs(spec, outs, result)
        except TimeoutError:
            self._failed(spec, invocation_id, timed_out=deadline.expired())
            return False, None
        except Exception:
            self._failed(spec, invocation_id, timed_out=False)
            return False, None
        self.stats[(spec.name, "succeeded")] += 1
        duration = (time.perf_counter() - started) * 1000
        log.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%.0fms)", spec.name, invocation_id, duration)
        return True, result

    async def _call(self, spec: FunctionSpec, kwargs: dict[str, Any]) -> Any:
        if spec.is_async:
            return await spec.fn(**kwargs)
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, spec.fn, **kwargs)
        return await loop.run_in_executor(self._executor, call)

    def _failed(self, spec: FunctionSpec, invocation_id: str, *, timed_out: bool) -> None:
        """Counts and logs a failed invocation (called while its exception is handled)."""
        self.stats[(spec.name, "failed")] += 1
        if not timed_out:  # the function raised, its own TimeoutError included
            log.exception("Executed 'Functions.%s' (Failed, Id=%s)", spec.name, invocation_id)
            return
        log.error(
            "Timeout value of %s exceeded by function 'Functions.%s' (Id: %s)%s",
            format_timespan(self.function_timeout),
            spec.name,
            invocation_id,
            "" if spec.is_async else ": its worker thread keeps running",
        )

    def close(self) -> None:
        """Stops the thread pool without waiting for threads still running (timed out invocations)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
