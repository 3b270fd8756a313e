"""Loading the app and indexing its functions, as the Python worker indexes a v2-model ``FunctionApp``.

``app.get_functions()`` is called once per app object (the library raises on a second call) and cached here, so
every user of an app in one process (the runner, tests/support/functions.py, the benchmarks) shares the one index.
Each function is described from its raw binding JSON, the form the host receives: its trigger (HTTP or queue), its
queue outputs with ``%AppSetting%`` resolved, whether it takes a ``context``; a function the runner cannot drive
(another trigger or binding type, parameters without bindings) is reported with the reason instead.

Imports neither aiohttp nor the storage SDK, so that the unit tier can index the app without them.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import json
import logging
import sys
import threading
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from devtools.runner.config import RunnerError, resolve_binding_expression
from devtools.runner.routes import RouteTemplate

log = logging.getLogger("devtools.runner")

DEFAULT_APP = "function_app:app"

_INDEXED: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()
_INDEX_LOCK = threading.Lock()


def load_app(spec: str = DEFAULT_APP, app_dir: Path | str | None = None) -> Any:
    """Import ``module:attr`` (default ``function_app:app``) with ``app_dir`` (default cwd) on sys.path."""
    module_name, _, attr = spec.partition(":")
    attr = attr or "app"
    app_dir = Path(app_dir or Path.cwd()).resolve()
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise RunnerError(f"cannot import {module_name!r} from {app_dir} (is there a {module_name}.py?)") from exc
        raise
    try:
        return functools.reduce(getattr, attr.split("."), module)
    except AttributeError as exc:
        raise RunnerError(f"{module_name} has no attribute {attr!r}") from exc


def index_functions(app: Any) -> list[Any]:
    """``app.get_functions()``, called once per app object (a second call raises in the library)."""
    with _INDEX_LOCK:
        try:
            return _INDEXED[app]
        except KeyError:
            pass
        functions = list(app.get_functions())
        _INDEXED[app] = functions
        return functions


@dataclasses.dataclass
class QueueOutputSpec:
    name: str
    queue_name: str
    connection: str | None


@dataclasses.dataclass
class FunctionSpec:
    """One function of the app, as the runner drives it."""

    name: str
    fn: Callable[..., Any]
    is_async: bool
    trigger_type: str  # "httpTrigger" | "queueTrigger"
    trigger_name: str
    trigger: dict[str, Any]
    bindings: list[dict[str, Any]]
    queue_outputs: list[QueueOutputSpec]
    wants_context: bool
    trigger_annotation: Any
    directory: str
    route: RouteTemplate | None = None
    methods: frozenset[str] | None = None
    auth_level: str = "FUNCTION"

    @property
    def queue_name(self) -> str:
        return self.trigger["queueName"]

    @property
    def connection(self) -> str | None:
        return self.trigger.get("connection")


class UnsupportedFunction(Exception):
    pass


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    try:
        return inspect.signature(fn, eval_str=True)
    except Exception:
        return inspect.signature(fn)


def build_spec(function: Any, settings: Mapping[str, str]) -> FunctionSpec:
    """Describe one indexed ``azure.functions`` Function; raises UnsupportedFunction if it can't run here."""
    name = function.get_function_name()
    fn = function.get_user_function()
    bindings = [json.loads(raw) for raw in function.get_raw_bindings()]
    trigger = _trigger(name, bindings)
    queue_outputs = _queue_outputs(name, bindings, trigger, settings)
    if trigger["type"] == "queueTrigger":
        trigger = {**trigger, "queueName": resolve_binding_expression(trigger["queueName"], settings).lower()}
    params = _signature(fn).parameters
    wants_context = _wants_context(name, params, bindings)  # first: it checks that the trigger has a parameter
    spec = FunctionSpec(
        name=name,
        fn=fn,
        is_async=inspect.iscoroutinefunction(fn),
        trigger_type=trigger["type"],
        trigger_name=trigger["name"],
        trigger=trigger,
        bindings=bindings,
        queue_outputs=queue_outputs,
        wants_context=wants_context,
        trigger_annotation=params[trigger["name"]].annotation,
        directory=_directory(fn),
    )
    if spec.trigger_type == "httpTrigger":
        route = trigger.get("route")
        spec.route = RouteTemplate(route if route is not None else name)
        methods = trigger.get("methods")
        spec.methods = frozenset(m.upper() for m in methods) if methods else None
        spec.auth_level = str(trigger.get("authLevel") or "FUNCTION").upper()
    return spec


def _trigger(name: str, bindings: list[dict[str, Any]]) -> dict[str, Any]:
    trigger = next((b for b in bindings if b.get("type", "").endswith("Trigger")), None)
    if trigger is None:
        raise UnsupportedFunction(f"function {name!r} has no trigger")
    if trigger["type"] not in ("httpTrigger", "queueTrigger"):
        raise UnsupportedFunction(f"function {name!r}: {trigger['type']} is not supported by the local runner")
    return trigger


def _queue_outputs(
    name: str, bindings: list[dict[str, Any]], trigger: dict[str, Any], settings: Mapping[str, str]
) -> list[QueueOutputSpec]:
    """The queue output bindings; UnsupportedFunction for any other binding but an HTTP trigger's response."""
    queue_outputs: list[QueueOutputSpec] = []
    for binding in bindings:
        if binding is trigger:
            continue
        btype, direction = binding.get("type"), str(binding.get("direction", "")).upper()
        if btype == "http" and direction == "OUT" and trigger["type"] == "httpTrigger":
            continue
        if btype == "queue" and direction == "OUT":
            queue_outputs.append(
                QueueOutputSpec(
                    name=binding["name"],
                    queue_name=resolve_binding_expression(binding["queueName"], settings).lower(),
                    connection=binding.get("connection"),
                )
            )
            continue
        raise UnsupportedFunction(
            f"function {name!r}: {direction.lower()} binding {btype!r} ({binding.get('name')}) "
            "is not supported by the local runner"
        )
    return queue_outputs


def _wants_context(name: str, params: Mapping[str, inspect.Parameter], bindings: list[dict[str, Any]]) -> bool:
    """Whether the function takes ``context``; UnsupportedFunction when parameters and bindings do not pair up."""
    binding_names = {b["name"] for b in bindings if b.get("name") != "$return"}
    unknown = [p for p in params if p not in binding_names and p != "context"]
    missing = [b for b in binding_names if b not in params]
    if unknown or missing:
        raise UnsupportedFunction(
            f"function {name!r}: parameters {unknown} have no binding / bindings {missing} have no parameter"
        )
    return "context" in params and "context" not in binding_names


def _directory(fn: Callable[..., Any]) -> str:
    try:
        return str(Path(inspect.getfile(fn)).parent)
    except TypeError:
        return str(Path.cwd())


def runnable_functions(app: Any, settings: Mapping[str, str]) -> tuple[list[FunctionSpec], dict[str, str]]:
    """The app's functions the runner drives, and the others by name with the reason: disabled by the app setting
    ``AzureWebJobs.<name>.Disabled``, as the host honours it, or not supported here."""
    functions: list[FunctionSpec] = []
    skipped: dict[str, str] = {}
    for function in index_functions(app):
        name = function.get_function_name()
        if settings.get(f"AzureWebJobs.{name}.Disabled", "").lower() in ("true", "1"):
            skipped[name] = "disabled by AzureWebJobs.<name>.Disabled"
            log.info("function %s is disabled", name)
            continue
        try:
            functions.append(build_spec(function, settings))
        except UnsupportedFunction as exc:
            skipped[name] = str(exc)
            log.warning("skipping %s", exc)
    return functions, skipped
