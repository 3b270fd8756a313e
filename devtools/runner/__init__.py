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

One module per concern, each saying what of the host it reproduces: ``config`` (host.json, local.settings.json,
connection strings), ``routes`` (route templates), ``indexing`` (loading and indexing the app), ``messages`` (queue
message texts as the host reads and writes them) with ``newtonsoft`` (Json.NET's rules), ``invocation`` (calling a
function), ``http`` (the HTTP front), ``queues`` (listeners, leases, poison queue, outputs), ``host`` (the
:class:`Runner`'s lifecycle) and ``cli``. Only ``http``, ``queues``, ``host`` and ``cli`` import aiohttp and the
storage SDK; the names below are imported from their module on first use, so that importing a light module (the
unit tier's ``indexing`` and ``invocation``) does not import them.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "cli": ("main",),
    "config": (
        "HostConfig",
        "QueueOptions",
        "RunnerError",
        "expand_connection_string",
        "load_local_settings",
        "parse_timespan",
        "resolve_binding_expression",
        "resolve_connection_string",
    ),
    "host": ("Runner",),
    "indexing": ("FunctionSpec", "UnsupportedFunction", "build_spec", "index_functions", "load_app"),
    "invocation": ("InvocationContext", "OutBinding"),
    "messages": (
        "decode_queue_body",
        "encode_queue_values",
        "host_queue_texts",
        "message_properties",
        "queue_trigger_metadata",
    ),
    "routes": ("RouteTemplate",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
