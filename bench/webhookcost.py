"""Webhook cost: CPU per event to check the signature, validate and build the queue messages, for one event and
for a batch of 100, against the bare HMAC-SHA256 of the signed content plus ``json.loads`` of the same bytes.

Measured in one process with ``time.process_time()``, no I/O (the queue write is the host's output binding):

- ``receive``: ``connector.app.webhook.receive(settings, registrationId, headers, body)``;
- ``function``: the indexed HTTP function as the worker calls it (a prepared ``func.HttpRequest`` and an output
  collector, answer serialised), which adds the header copy and the JSON answer;
- ``bare``: ``hmac.new(key, "{id}.{timestamp}.{body}", sha256)``, the constant-time compare of its base64, and
  ``json.loads(body)``.

Each run times a loop over the same signed request (signatures stay within the 5-minute tolerance); the
figure is the median over runs, per event (a batch's time is divided by its 100 events).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from bench.common import (
    REGISTRATION_ID,
    SECRET_BYTES,
    Infra,
    Out,
    Profile,
    app_functions,
    child_main,
    event,
    http_request,
    median,
    signed_headers,
)


def _bare(headers: dict[str, str], body: bytes) -> Any:
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(SECRET_BYTES, signed, hashlib.sha256).digest()).decode()
    if not any(hmac.compare_digest(s.partition(",")[2], expected) for s in headers["webhook-signature"].split()):
        raise RuntimeError("bad signature")
    return json.loads(body)


def _time_loop(call: Any, loops: int) -> float:
    started = time.process_time()
    for _ in range(loops):
        call()
    return (time.process_time() - started) / loops


def run(_infra: Infra, params: dict[str, Any]) -> dict[str, Any]:
    import function_app
    from connector import bootstrap
    from connector.app import webhook

    runs = int(params.get("runs", 9))
    settings = bootstrap.settings()
    function = app_functions(function_app.app)["course_activity_webhook"]
    cases: dict[str, tuple[bytes, int]] = {
        "single": (json.dumps(event("webhook-cost-0", 42)).encode(), 1),
        "batch100": (json.dumps([event(f"webhook-cost-{i}", i) for i in range(100)]).encode(), 100),
    }
    loops = {"single": int(params.get("singleLoops", 2000)), "batch100": int(params.get("batchLoops", 40))}
    figures: dict[str, Any] = {}
    for case, (body, events) in cases.items():
        headers = signed_headers(body, f"wh-cost-{case}")
        request = http_request(body, headers)

        def receive(body: bytes = body, headers: dict[str, str] = headers, events: int = events) -> None:
            reply = webhook.receive(settings, REGISTRATION_ID, headers, body)
            assert reply.status == 202, reply.body
            assert len(reply.messages) == events

        def through_function(request: Any = request) -> None:
            response = function(request, Out())
            assert response.status_code == 202

        def bare(body: bytes = body, headers: dict[str, str] = headers) -> None:
            _bare(headers, body)

        for call in (receive, through_function, bare):  # warm-up: first-use costs are cold start's business
            _time_loop(call, 3)
        samples: dict[str, list[float]] = {"receive": [], "function": [], "bare": []}
        for _ in range(runs):  # interleaved, so that drift hits all three alike
            samples["receive"].append(_time_loop(receive, loops[case]) / events)
            samples["function"].append(_time_loop(through_function, loops[case]) / events)
            samples["bare"].append(_time_loop(bare, loops[case]) / events)
        figures[case] = {
            "bodyBytes": len(body),
            "loops": loops[case],
            **{
                name: {"median": median(v) * 1e6, "min": min(v) * 1e6, "max": max(v) * 1e6}
                for name, v in samples.items()
            },
        }
    if params.get("profile"):
        figures["profile"] = _profile(webhook, settings, cases["batch100"][0])
    return {"runs": runs, "unit": "microseconds per event", "cases": figures}


def _profile(webhook: Any, settings: Any, body: bytes) -> str:
    headers = signed_headers(body, "wh-cost-profile")
    profile = Profile()
    profile.start()
    for _ in range(100):
        webhook.receive(settings, REGISTRATION_ID, headers, body)
    profile.stop()
    return "100 requests of a 100-event batch through connector.app.webhook.receive\n" + profile.text()


if __name__ == "__main__":
    child_main(run)
