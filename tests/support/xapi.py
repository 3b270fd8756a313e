"""Statements shaped like those real platforms send (see the project notes on learning events)."""

from __future__ import annotations

import uuid
from typing import Any

ADL = "http://adlnet.gov/expapi/verbs/"
CMI5_PROGRESS = "https://w3id.org/xapi/cmi5/result/extensions/progress"
VIDEO_PROGRESS = "https://w3id.org/xapi/video/extensions/progress"
COURSE_IRI = "https://lms.example.com/courses/course-101"


def statement(
    verb: str,
    *,
    actor: dict[str, Any] | None = None,
    activity: str = COURSE_IRI,
    timestamp: str = "2026-11-20T10:00:00Z",
    registration: str | None = None,
    result: dict[str, Any] | None = None,
    statement_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": statement_id or str(uuid.uuid4()),
        "actor": actor or {"objectType": "Agent", "name": "Ada", "mbox": "mailto:ada.learner@contoso.example"},
        "verb": {"id": verb if "://" in verb else ADL + verb, "display": {"en-US": verb}},
        "object": {"objectType": "Activity", "id": activity},
        "timestamp": timestamp,
        **extra,
    }
    if registration:
        body["context"] = {"registration": registration}
    if result is not None:
        body["result"] = result
    return body


def progressed(percent: Any, **kwargs: Any) -> dict[str, Any]:
    return statement("progressed", result={"extensions": {CMI5_PROGRESS: percent}}, **kwargs)


XAPI_KEY = "lms-connector"
# As `python -m connector new-secret --xapi` prints them (secrets.token_urlsafe(32): 43 URL-safe characters).
XAPI_SECRET = "n7GQ0hbO1m4Lr_VfJ8yXo2kTqW5sE-uZc3dPaHi9vBY"
ROTATED_SECRET = "Vd2-Kp9sLx4Qm7Tz_Rb1Nc8Hf5Wj0Gy3Ae6Uo-Ii2Sk"
CREATING_PROVIDER = "2b7c3f0e-8d1a-4c55-9e0b-7a1f2d3c4b5a"


def basic(key: str = XAPI_KEY, secret: str = XAPI_SECRET) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
