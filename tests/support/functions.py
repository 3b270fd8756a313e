"""The real `function_app.app`, indexed once, and helpers that invoke its functions as the Python worker does."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

import azure.functions as func

from devtools.runner.indexing import index_functions
from devtools.runner.invocation import OutBinding


@cache
def indexed() -> dict[str, Any]:
    """The app's functions by name, from the runner's cache: get_functions() may be called once per app object,
    and the runner (used in-process by the soak and benchmarks) indexes the same app."""
    import function_app

    return {f.get_function_name(): f for f in index_functions(function_app.app)}


@dataclass
class HttpCall:
    status: int
    body: Any
    messages: list[str]
    headers: dict[str, str]


WebhookCall = HttpCall


async def call_http_async(
    function: str,
    method: str,
    route_params: dict[str, str],
    *,
    body: bytes | str = b"",
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> HttpCall:
    """Invokes an HTTP function as the worker does (awaiting it when it is async)."""
    import inspect

    data = body.encode() if isinstance(body, str) else body
    request = func.HttpRequest(
        method=method,
        url=f"http://localhost/api/{function}",
        headers=headers or {},
        params=params or {},
        route_params=route_params,
        body=data,
    )
    user_function = indexed()[function].get_user_function()
    outputs = [name for name in inspect.signature(user_function).parameters if name != "req"]
    out = OutBinding()
    result = user_function(request, *([out] if outputs else []))
    response = await result if inspect.isawaitable(result) else result
    return _http_call(response, out)


def call_webhook(registration_id: str, body: bytes | str, headers: dict[str, str]) -> HttpCall:
    data = body.encode() if isinstance(body, str) else body
    request = func.HttpRequest(
        method="POST",
        url=f"http://localhost/api/providers/{registration_id}/course-activities",
        headers=headers,
        params={},
        route_params={"registrationId": registration_id},
        body=data,
    )
    out = OutBinding()
    response = indexed()["course_activity_webhook"].get_user_function()(request, out)
    return _http_call(response, out)


def _http_call(response: func.HttpResponse, out: OutBinding) -> HttpCall:
    headers = {name.lower(): value for name, value in response.headers.items()}
    if response.mimetype:
        headers.setdefault("content-type", response.mimetype)  # the host turns mimetype into Content-Type
    raw = response.get_body()
    return HttpCall(response.status_code, json.loads(raw) if raw else None, list(out.get() or []), headers)
