"""The real `function_app.app`, indexed once, and helpers that invoke its functions as the Python worker does."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

import azure.functions as func


@cache
def indexed() -> dict[str, Any]:
    """The app's functions by name (get_functions() may be called only once per app object)."""
    import function_app

    return {f.get_function_name(): f for f in function_app.app.get_functions()}


class OutBinding(func.Out):
    """What the host gives an output binding: it remembers what the function set."""

    def __init__(self) -> None:
        self.value: Any = None

    def set(self, val: Any) -> None:
        self.value = val

    def get(self) -> Any:
        return self.value


@dataclass
class WebhookCall:
    status: int
    body: dict[str, Any]
    messages: list[str]
    headers: dict[str, str]


def call_webhook(registration_id: str, body: bytes | str, headers: dict[str, str]) -> WebhookCall:
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
    messages = out.value or []
    headers = {name.lower(): value for name, value in response.headers.items()}
    headers.setdefault("content-type", response.mimetype)  # the host turns mimetype into Content-Type
    return WebhookCall(response.status_code, json.loads(response.get_body() or b"null"), list(messages), headers)
